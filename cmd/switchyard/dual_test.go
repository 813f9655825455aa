package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// recordingDaemon answers every request with reply and keeps the last
// request body.
func recordingDaemon(t *testing.T, reply any) (string, *[]byte) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var body []byte
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m json.RawMessage
		json.NewDecoder(r.Body).Decode(&m)
		body = m
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(reply)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock, &body
}

// --subnet, --gateway and --ip-range repeat, one per family; --ipv6 and
// --ipv4=false reach the daemon; --ipv4 left alone is left unset.
func TestNetworkCreateDualStackFlags(t *testing.T) {
	dual := api.Network{Name: "d", Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1"),
		Subnets: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("fd00:1::/64")},
		Subnet6: netip.MustParsePrefix("fd00:1::/64"), Gateway6: netip.MustParseAddr("fd00:1::fe"),
		IPRange6: netip.MustParsePrefix("fd00:1::/64")}
	sock, body := recordingDaemon(t, dual)
	if _, err := runApp(t, "--socket", sock, "network", "create", "d", "--subnet", "10.1.0.0/24", "--subnet", "fd00:1::/64",
		"--gateway", "fd00:1::fe", "--ip-range", "10.1.0.128/25", "--ipv6"); err != nil {
		t.Fatal(err)
	}
	var req api.NetworkCreate
	if err := json.Unmarshal(*body, &req); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(req.Subnets, []string{"10.1.0.0/24", "fd00:1::/64"}) || !slices.Equal(req.Gateways, []string{"fd00:1::fe"}) ||
		!slices.Equal(req.IPRanges, []string{"10.1.0.128/25"}) || !req.IPv6 || req.IPv4 != nil || req.Subnet != "" {
		t.Fatalf("request %s", *body)
	}
	if _, err := runApp(t, "--socket", sock, "network", "create", "v6", "--ipv4=false"); err != nil {
		t.Fatal(err)
	}
	req = api.NetworkCreate{}
	if err := json.Unmarshal(*body, &req); err != nil {
		t.Fatal(err)
	}
	if req.IPv4 == nil || *req.IPv4 {
		t.Fatalf("--ipv4=false sent %s", *body)
	}

	out, err := runApp(t, "--socket", sock, "network", "inspect", "d")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"10.1.0.0/24,fd00:1::/64", "10.1.0.1,fd00:1::fe"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect does not show %q:\n%s", want, out)
		}
	}
}

// The daemon's errors about the lists name the repeatable flags.
func TestDualStackErrorsNameFlags(t *testing.T) {
	verr := api.Validate(api.NetworkCreate{}, []api.FieldError{
		{Field: "subnets", Value: "10.2.0.0/24", Problem: "a second IPv4 subnet (the first is 10.1.0.0/24)", Accepted: "one subnet per address family"},
		{Field: "ip_ranges", Value: "fd00:2::/80", Problem: "outside"},
		{Field: "ipv4", Value: "false", Problem: "x", Accepted: "`ipv6` true"},
	})
	code, body := api.Body(verr)
	sock := fakeDaemon(t, code, body)
	_, err := runApp(t, "--socket", sock, "network", "create", "d")
	want := "invalid request:\n" +
		`  --subnet "10.2.0.0/24": a second IPv4 subnet (the first is 10.1.0.0/24); want one subnet per address family` + "\n" +
		`  --ip-range "fd00:2::/80": outside` + "\n" +
		`  --ipv4 "false": x; want --ipv6 true`
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n%v\nwant:\n%s", err, want)
	}
}

// connect --ip6 reaches the daemon; connect and endpoint ls print both
// addresses of a dual-stack endpoint.
func TestConnectIP6AndEndpointLs(t *testing.T) {
	ep := api.Endpoint{Network: "d", Name: "a", IfName: "eth0", MAC: "02:42:0a:01:00:02", Kind: "netns",
		Address: netip.MustParsePrefix("10.1.0.2/24"), Gateway: netip.MustParseAddr("10.1.0.1"),
		Address6: netip.MustParsePrefix("fd00:1::9/64"), Gateway6: netip.MustParseAddr("fd00:1::1")}
	sock, body := recordingDaemon(t, ep)
	out, err := runApp(t, "--socket", sock, "connect", "d", "--pid", "1", "--ip6", "fd00:1::9")
	if err != nil {
		t.Fatal(err)
	}
	var req api.EndpointCreate
	if err := json.Unmarshal(*body, &req); err != nil || req.IP6 != "fd00:1::9" {
		t.Fatalf("request %s (%v), want ip6 fd00:1::9", *body, err)
	}
	if !strings.Contains(out, "10.1.0.2/24,fd00:1::9/64") || !strings.Contains(out, "gateway 10.1.0.1,fd00:1::1") {
		t.Errorf("connect printed %q, want both addresses and gateways", out)
	}
	sock, _ = recordingDaemon(t, []api.Endpoint{ep})
	out, err = runApp(t, "--socket", sock, "endpoint", "ls")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "10.1.0.2/24,fd00:1::9/64") {
		t.Errorf("endpoint ls printed %q, want both addresses", out)
	}
}
