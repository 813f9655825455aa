package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// call sends one request to the handler and returns the status and body.
func call(t *testing.T, srv *httptest.Server, method, path, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// Every API call, through HTTP: its success status and body, and each of
// its error statuses with a JSON error naming the input.
func TestHandler(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.d.Handler())
	defer srv.Close()
	e.att.AddNetNS("/run/netns/a")
	e.att.AddNetNS("/run/netns/b")
	hostPort := strconv.Itoa(int(freePorts(t, 1)[0]))
	tunPort := strconv.Itoa(freeUDPPort(t))

	// Bodies are checked for the input they name, not for their
	// wording.
	type check struct {
		method, path, body string
		status             int
		kind               string // error kind, for error statuses
		contains           string // in the body
	}
	checks := []check{
		{"GET", "/v1/version", "", 200, "", `"version":"` + Version + `"`},

		{"POST", "/v1/networks", `{"name":"web","subnet":"10.7.0.0/24"}`, 201, "", `"subnet":"10.7.0.0/24"`},
		{"POST", "/v1/networks", `{"name":"tun","subnet":"10.8.0.0/24","tunnel":"vxlan","tunnel_listen":"127.0.0.1:` + tunPort + `"}`, 201, "", `"name":"tun"`},
		{"POST", "/v1/networks", `{"name":"web"}`, 409, api.KindConflict, `\"web\"`},
		{"POST", "/v1/networks", `{"name":"x","subnet":"10.7.0.0/16"}`, 409, api.KindConflict, "10.7.0.0/16"},
		{"POST", "/v1/networks", `{"name":"x","subnet":"nonsense"}`, 400, api.KindInvalid, `\"nonsense\"`},
		{"POST", "/v1/networks", `{"name":"-bad"}`, 400, api.KindInvalid, `\"-bad\"`},
		{"POST", "/v1/networks", `{"name":`, 400, api.KindInvalid, "malformed request body"},
		{"POST", "/v1/networks", `{"name":"x","colour":"red"}`, 400, api.KindInvalid, "colour"},
		{"GET", "/v1/networks", "", 200, "", `"name":"web"`},
		{"GET", "/v1/networks/web", "", 200, "", `"gateway":"10.7.0.1"`},
		{"GET", "/v1/networks/nope", "", 404, api.KindNotFound, `network \"nope\" not found`},

		{"POST", "/v1/networks/web/endpoints", `{"netns":"/run/netns/a","name":"a","publish":["127.0.0.1:` + hostPort + `:80"]}`, 201, "", `"address":"10.7.0.2/24"`},
		{"POST", "/v1/networks/nope/endpoints", `{"netns":"/run/netns/b"}`, 404, api.KindNotFound, `\"nope\"`},
		{"POST", "/v1/networks/web/endpoints", `{}`, 400, api.KindInvalid, "netns"},
		{"POST", "/v1/networks/web/endpoints", `{"netns":"/run/netns/missing"}`, 400, api.KindInvalid, "/run/netns/missing"},
		{"POST", "/v1/networks/web/endpoints", `{"netns":"/run/netns/b","name":"a"}`, 409, api.KindConflict, `endpoint \"a\" already exists`},
		{"POST", "/v1/networks/web/endpoints", `{"netns":"/run/netns/a","name":"again"}`, 409, api.KindConflict, "already connected"},
		{"POST", "/v1/networks/web/endpoints", `{"netns":"/run/netns/b","ip":"10.7.0.2"}`, 409, api.KindConflict, "10.7.0.2"},
		{"POST", "/v1/networks/web/endpoints", `{"netns":"/run/netns/b","publish":["127.0.0.1:` + hostPort + `:80"]}`, 409, api.KindConflict, hostPort},
		{"POST", "/v1/networks/web/endpoints", `{"netns":"/run/netns/b","publish":["80:80:80"]}`, 400, api.KindInvalid, "80:80:80"},
		{"GET", "/v1/endpoints", "", 200, "", `"name":"a"`},
		{"GET", "/v1/endpoints?network=tun", "", 200, "", `[]`},
		{"GET", "/v1/endpoints?network=nope", "", 404, api.KindNotFound, `\"nope\"`},

		{"POST", "/v1/networks/web/endpoints/a/ports", `{"spec":"127.0.0.1::81/udp"}`, 201, "", `"container_port":81`},
		{"POST", "/v1/networks/web/endpoints/a/ports", `{"spec":"127.0.0.1::81/udp"}`, 409, api.KindConflict, "already publishes"},
		{"POST", "/v1/networks/web/endpoints/a/ports", `{"spec":"x:y"}`, 400, api.KindInvalid, "x:y"},
		{"POST", "/v1/networks/web/endpoints/nope/ports", `{"spec":"82"}`, 404, api.KindNotFound, `endpoint \"nope\" not found`},
		{"POST", "/v1/networks/tun/endpoints/a/ports", `{"spec":"82"}`, 404, api.KindNotFound, `endpoint \"a\" not found in network \"tun\"`},
		{"GET", "/v1/ports", "", 200, "", `"host_port":` + hostPort},
		{"GET", "/v1/ports?endpoint=web/a", "", 200, "", `"proto":"udp"`},
		{"GET", "/v1/ports?endpoint=web", "", 400, api.KindInvalid, "NETWORK/NAME"},
		{"GET", "/v1/ports?endpoint=web/nope", "", 404, api.KindNotFound, `\"nope\"`},
		{"DELETE", "/v1/networks/web/endpoints/a/ports?spec=127.0.0.1::81/udp", "", 204, "", ""},
		{"DELETE", "/v1/networks/web/endpoints/a/ports?spec=127.0.0.1::81/udp", "", 404, api.KindNotFound, "does not publish"},
		{"DELETE", "/v1/networks/web/endpoints/a/ports?spec=x:y", "", 400, api.KindInvalid, "x:y"},
		{"DELETE", "/v1/networks/web/endpoints/nope/ports?spec=80", "", 404, api.KindNotFound, `\"nope\"`},

		{"GET", "/v1/networks/web/nat", "", 200, "", "DNAT"},
		{"GET", "/v1/networks/nope/nat", "", 404, api.KindNotFound, `\"nope\"`},
		{"GET", "/v1/conntrack", "", 200, "", "[]"},
		{"GET", "/v1/conntrack?network=web", "", 200, "", "[]"},
		{"GET", "/v1/conntrack?network=nope", "", 404, api.KindNotFound, `\"nope\"`},
		{"GET", "/v1/stats", "", 200, "", `"network":"web"`},

		{"GET", "/v1/networks/tun/tunnel", "", 200, "", `"static_peers":[]`},
		{"GET", "/v1/networks/web/tunnel", "", 400, api.KindInvalid, "has no tunnel"},
		{"GET", "/v1/networks/nope/tunnel", "", 404, api.KindNotFound, `\"nope\"`},
		{"POST", "/v1/networks/tun/tunnel/peers", `{"addr":"127.0.0.2"}`, 201, "", `"static_peers":["127.0.0.2:4789"]`},
		{"POST", "/v1/networks/tun/tunnel/peers", `{"addr":"127.0.0.2:4789"}`, 409, api.KindConflict, "already a peer"},
		{"POST", "/v1/networks/tun/tunnel/peers", `{"addr":"0.0.0.0"}`, 400, api.KindInvalid, "0.0.0.0"},
		{"POST", "/v1/networks/web/tunnel/peers", `{"addr":"127.0.0.2"}`, 400, api.KindInvalid, "has no tunnel"},
		{"POST", "/v1/networks/nope/tunnel/peers", `{"addr":"127.0.0.2"}`, 404, api.KindNotFound, `\"nope\"`},
		{"DELETE", "/v1/networks/tun/tunnel/peers?addr=127.0.0.2", "", 204, "", ""},
		{"DELETE", "/v1/networks/tun/tunnel/peers?addr=127.0.0.2", "", 404, api.KindNotFound, "not a static peer"},
		{"DELETE", "/v1/networks/tun/tunnel/peers?addr=nonsense", "", 400, api.KindInvalid, "nonsense"},

		{"GET", "/v1/networks/web/endpoints/nope/capture?count=1", "", 404, api.KindNotFound, `\"nope\"`},

		{"DELETE", "/v1/networks/web", "", 409, api.KindConflict, "active endpoints (a)"},
		{"DELETE", "/v1/networks/web/endpoints/a", "", 204, "", ""},
		{"DELETE", "/v1/networks/web/endpoints/a", "", 404, api.KindNotFound, `endpoint \"a\" not found`},
		{"DELETE", "/v1/networks/nope/endpoints/a", "", 404, api.KindNotFound, `network \"nope\" not found`},
		{"GET", "/v1/ports", "", 200, "", "[]"},
		{"DELETE", "/v1/networks/web", "", 204, "", ""},
		{"DELETE", "/v1/networks/web", "", 404, api.KindNotFound, `\"web\"`},
	}
	for _, c := range checks {
		status, body := call(t, srv, c.method, c.path, c.body)
		what := c.method + " " + c.path + " " + c.body
		if status != c.status {
			t.Errorf("%s: status %d, want %d (%s)", what, status, c.status, body)
			continue
		}
		if !bytes.Contains(body, []byte(c.contains)) {
			t.Errorf("%s: body %s does not contain %s", what, body, c.contains)
		}
		if status/100 == 2 {
			continue
		}
		var ae api.Error
		if err := json.Unmarshal(body, &ae); err != nil || ae.Kind != c.kind || ae.Message == "" {
			t.Errorf("%s: error body %s (%v), want kind %q", what, body, err, c.kind)
		}
	}
}

// The capture call streams a pcap of an endpoint's frames; a second
// capture of the same endpoint is a conflict while the first runs.
func TestHandlerCapture(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.d.Handler())
	defer srv.Close()
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
	e.att.AddNetNS("/run/netns/a")
	ep := e.connect("web", api.EndpointCreate{NetNS: "/run/netns/a"})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/networks/web/endpoints/a/capture?count=1", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.tcpdump.pcap" {
		t.Fatalf("capture answered %s, %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	hdr := make([]byte, 24) // the pcap file header: the capture is on
	if _, err := io.ReadFull(resp.Body, hdr); err != nil {
		t.Fatal(err)
	}
	if status, body := call(t, srv, "GET", "/v1/networks/web/endpoints/a/capture?count=1", ""); status != 409 || !bytes.Contains(body, []byte("already running")) {
		t.Errorf("second capture: %d %s, want 409", status, body)
	}
	// A broadcast from the endpoint: its MAC as source.
	frame := make([]byte, 60)
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(frame[6:], e.att.Devices()[0].Config.MAC[:])
	frame[12], frame[13] = 0x88, 0xb5 // local experimental EtherType
	if err := e.att.Port("/run/netns/a", ep.IfName).Inject(frame); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != 16+len(frame) || !bytes.Equal(rest[16:], frame) {
		t.Errorf("captured %d bytes after the header, want one record of the %d-byte frame", len(rest), len(frame))
	}
}

// A closed daemon answers 503.
func TestHandlerClosed(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.d.Handler())
	defer srv.Close()
	e.d.Close()
	status, body := call(t, srv, "POST", "/v1/networks", `{"name":"web"}`)
	if status != http.StatusServiceUnavailable || !bytes.Contains(body, []byte("shutting down")) {
		t.Errorf("create on a closed daemon: %d %s, want 503", status, body)
	}
}
