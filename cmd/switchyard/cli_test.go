package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// runApp runs the CLI in-process as main does (arguments reordered) and
// returns what it wrote and the error main would print.
func runApp(t *testing.T, args ...string) (string, error) {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	err := app.Run(reorderArgs(app, append([]string{"switchyard"}, args...)))
	return out.String(), err
}

// commandPaths lists every command, at every depth, as its arguments.
func commandPaths(prefix []string, cmds []*cli.Command) [][]string {
	var out [][]string
	for _, c := range cmds {
		p := append(append([]string{}, prefix...), c.Name)
		out = append(out, p)
		out = append(out, commandPaths(p, c.Subcommands)...)
	}
	return out
}

// Every --help gives each flag's default once: not "(default 24h)
// (default: 0s)".
func TestHelpShowsEachDefaultOnce(t *testing.T) {
	paths := append(commandPaths(nil, newApp().Commands), nil)
	twice := regexp.MustCompile(`\(default.*\(default`)
	for _, p := range paths {
		out, err := runApp(t, append(p, "--help")...)
		if err != nil {
			t.Fatalf("%v --help: %v", p, err)
		}
		if !strings.Contains(out, "USAGE:") {
			t.Fatalf("%v --help printed no help:\n%s", p, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if twice.MatchString(line) {
				t.Errorf("switchyard %s --help: default given twice:\n%s", strings.Join(p, " "), line)
			}
		}
	}
}

// A usage error is one line naming the bad input and pointing at
// --help, exit status 2; no help page is printed.
func TestUsageErrorIsOneLine(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"network", "create", "web", "--bogus"}, []string{"network create: ", "-bogus", "'switchyard network create --help'"}},
		{[]string{"--bogus", "network", "ls"}, []string{"-bogus", "'switchyard --help'"}},
		{[]string{"connect", "web", "--pid", "x"}, []string{"connect: ", `"x"`, "'switchyard connect --help'"}},
	} {
		out, err := runApp(t, c.args...)
		if out != "" {
			t.Errorf("%v: printed %q; want nothing but the error", c.args, out)
		}
		var ec cli.ExitCoder
		if !errors.As(err, &ec) || ec.ExitCode() != 2 {
			t.Fatalf("%v: error %v, want exit status 2", c.args, err)
		}
		msg := err.Error()
		for _, w := range c.want {
			if !strings.Contains(msg, w) || strings.Contains(msg, "\n") {
				t.Errorf("%v: error %q: want one line with %q", c.args, msg, w)
			}
		}
	}
}

// The global flags work after the command too, as the README writes
// `switchyard daemon --log-format json`.
func TestGlobalFlagsAfterCommand(t *testing.T) {
	_, err := runApp(t, "daemon", "--log-format", "yaml")
	if err == nil || !strings.Contains(err.Error(), `invalid --log-format "yaml"`) {
		t.Fatalf("daemon --log-format yaml: %v, want the value refused by the logger set-up", err)
	}
	sock := filepath.Join(t.TempDir(), "none.sock")
	_, err = runApp(t, "network", "ls", "--socket", sock)
	if !errors.Is(err, api.ErrUnreachable) || !strings.Contains(err.Error(), sock) {
		t.Fatalf("network ls --socket %s: %v, want that socket unreachable", sock, err)
	}
}

// fakeDaemon answers every request on a unix socket with body and
// status code.
func fakeDaemon(t *testing.T, code int, body any) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(body)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// The daemon names API fields; the CLI prints its own flags for them,
// fields inside the text included.
func TestValidationErrorNamesFlags(t *testing.T) {
	verr := api.Validate(api.NetworkCreate{}, []api.FieldError{
		{Field: "vni", Value: "16777216", Problem: "out of range", Accepted: "0-16777215"},
		{Field: "key_file", Problem: "only for `tunnel` secure", Accepted: "no `key_file`"},
		{Field: "peers", Value: "0.0.0.0", Problem: "not another host's address"},
		{Field: "name", Value: "a b", Problem: "not a valid network name"},
	})
	code, body := api.Body(verr)
	sock := fakeDaemon(t, code, body)
	_, err := runApp(t, "--socket", sock, "network", "create", "a b")
	if !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("error %v, want an api.ErrInvalid", err)
	}
	want := "invalid request:\n" +
		`  name "a b": not a valid network name` + "\n" +
		`  --vni "16777216": out of range; want 0-16777215` + "\n" +
		`  --peer "0.0.0.0": not another host's address` + "\n" +
		`  --key-file: only for --tunnel secure; want no --key-file`
	if err.Error() != want {
		t.Fatalf("error:\n%s\nwant:\n%s", err, want)
	}

	one := api.Validate(api.EndpointCreate{}, []api.FieldError{{Field: "aliases", Value: "-x", Problem: "not a DNS name"}})
	code, body = api.Body(one)
	sock = fakeDaemon(t, code, body)
	_, err = runApp(t, "--socket", sock, "connect", "web", "--pid", "1")
	if want := `invalid --alias "-x": not a DNS name`; err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
}
