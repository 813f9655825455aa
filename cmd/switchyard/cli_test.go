package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"

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
