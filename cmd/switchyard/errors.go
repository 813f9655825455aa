package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// How the CLI reports errors. main prints every error once, as
// "switchyard: MESSAGE" on stderr: urfave/cli's own printing (the whole
// help and the error, then the error again) is switched off. A usage
// error is one line naming the bad input and pointing at --help; a
// daemon's validation error names this command's flags, not the API's
// fields.

// prepareCommands gives every command, at every depth, the CLI's usage
// error and the translation of validation errors into flag names.
func prepareCommands(cmds []*cli.Command) {
	for _, cmd := range cmds {
		cmd.OnUsageError = usageError
		if action := cmd.Action; action != nil {
			cmd.Action = func(c *cli.Context) error { return inFlagWords(c, action(c)) }
		}
		prepareCommands(cmd.Subcommands)
	}
}

// usageError is a cli.OnUsageErrorFunc: one line, exit status 2.
func usageError(c *cli.Context, err error, _ bool) error {
	path := commandPath(c)
	if path == "" {
		return cli.Exit(fmt.Sprintf("%v (see 'switchyard --help')", err), 2)
	}
	return cli.Exit(fmt.Sprintf("%s: %v (see 'switchyard %s --help')", path, err, path), 2)
}

// flagWordsError is an error whose text was rewritten in the CLI's words;
// it still wraps the original.
type flagWordsError struct {
	msg string
	err error
}

func (e *flagWordsError) Error() string { return e.msg }
func (e *flagWordsError) Unwrap() error { return e.err }

// inFlagWords renders a validation error from the daemon with the flags
// of c's command in place of the API's field names; other errors pass
// unchanged.
func inFlagWords(c *cli.Context, err error) error {
	var ve *api.ValidationError
	if !errors.As(err, &ve) || c.Command == nil {
		return err
	}
	lines := make([]string, len(ve.Fields))
	for i, f := range ve.Fields {
		f.Problem = flagRefs(c.Command, f.Problem)
		f.Accepted = flagRefs(c.Command, f.Accepted)
		lines[i] = f.Render(flagFor(c.Command, f.Field))
	}
	if len(lines) == 1 {
		return &flagWordsError{"invalid " + lines[0], err}
	}
	return &flagWordsError{"invalid request:\n  " + strings.Join(lines, "\n  "), err}
}

// fieldRef is a field named inside a problem's text, like `tunnel`.
var fieldRef = regexp.MustCompile("`([a-z0-9_]+)`")

// flagRefs replaces the fields named in s by cmd's flags.
func flagRefs(cmd *cli.Command, s string) string {
	return fieldRef.ReplaceAllStringFunc(s, func(ref string) string {
		return flagFor(cmd, strings.Trim(ref, "`"))
	})
}

// flagFor returns the flag of cmd that sets an API field: "key_file" is
// --key-file, a list's field in the plural ("peers", "aux_addresses",
// "aliases") the repeatable flag in the singular. A field with no flag
// (an argument, like a network's name) keeps its name.
func flagFor(cmd *cli.Command, field string) string {
	name := strings.ReplaceAll(field, "_", "-")
	for _, cand := range []string{name, strings.TrimSuffix(name, "es"), strings.TrimSuffix(name, "s")} {
		for _, f := range cmd.Flags {
			for _, n := range f.Names() {
				if n == cand && len(n) > 1 {
					return "--" + n
				}
			}
		}
	}
	return field
}
