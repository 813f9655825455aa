package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// reorderArgs lets flags follow positional arguments, as Docker's CLI
// does (`network create web --subnet 10.0.0.0/24`): urfave/cli v2 stops
// parsing flags at the first positional argument. It finds the command the
// arguments name and moves that command's flags (with their values) ahead
// of its positional arguments. The global flags (--socket, --log-level,
// --log-format) may follow the command too (`daemon --log-format json`):
// unless the command has a flag of the same name, they move ahead of the
// command. Everything after a literal "--" is left alone, so a command
// line for another program passes through untouched.
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	globals, path, leaf, i := commandLine(app, args)
	if leaf == nil {
		return args
	}
	late, flags, positional := leafArgs(app.Flags, leaf.Flags, args[i:])
	out := append([]string{args[0]}, globals...)
	out = append(out, late...)
	out = append(out, path...)
	out = append(out, flags...)
	return append(out, positional...)
}

// commandLine reads the global flags and the command path at the start
// of args. It returns the command the path ends at (nil if there is none,
// or a "--" comes first) and the index of the first argument after it.
func commandLine(app *cli.App, args []string) (globals, path []string, leaf *cli.Command, i int) {
	cmds := app.Commands
	for i = 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return nil, nil, nil, i
		}
		if strings.HasPrefix(a, "-") {
			globals = append(globals, a)
			if takesValue(app.Flags, a) && !strings.Contains(a, "=") && i+1 < len(args) {
				globals = append(globals, args[i+1])
				i++
			}
			continue
		}
		c := findCommand(cmds, a)
		if c == nil {
			break
		}
		path = append(path, a)
		leaf = c
		if len(c.Subcommands) == 0 {
			return globals, path, leaf, i + 1
		}
		cmds = c.Subcommands
	}
	return globals, path, leaf, i
}

// leafArgs sorts the arguments after the command into global flags,
// the command's own flags and positional arguments.
func leafArgs(global, own []cli.Flag, args []string) (late, flags, positional []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		dst, set := &flags, own
		if !hasFlag(own, a) && hasFlag(global, a) {
			dst, set = &late, global
		}
		*dst = append(*dst, a)
		if takesValue(set, a) && !strings.Contains(a, "=") && i+1 < len(args) {
			*dst = append(*dst, args[i+1])
			i++
		}
	}
	return late, flags, positional
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.Name == name {
			return c
		}
		for _, al := range c.Aliases {
			if al == name {
				return c
			}
		}
	}
	return nil
}

// flagName is the name in arg, like "subnet" in "--subnet=x".
func flagName(arg string) string {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	return name
}

// hasFlag reports whether arg (like "--subnet" or "-p") names a flag in
// flags.
func hasFlag(flags []cli.Flag, arg string) bool {
	return findFlag(flags, arg) != nil
}

func findFlag(flags []cli.Flag, arg string) cli.Flag {
	name := flagName(arg)
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// takesValue reports whether arg (like "--subnet" or "-p") names a flag
// in flags that takes a value.
func takesValue(flags []cli.Flag, arg string) bool {
	dg, ok := findFlag(flags, arg).(cli.DocGenerationFlag)
	return ok && dg.TakesValue()
}
