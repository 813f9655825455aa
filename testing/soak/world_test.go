package soak_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

const (
	subnet    = "10.241.0.0/24"
	httpPort  = 80    // the victim's (and the attacker's) HTTP server
	udpPort   = 53    // the victim's UDP echo
	pubTCP    = 18080 // where the victim's HTTP server is published
	pubUDP    = 18053 // where its UDP echo is published
	victimID  = "victim"
	attackID  = "attacker"
	debugSock = "pprof.sock"
)

// world is one soak's topology: the daemon in host (a namespace with
// loopback only), a network, the victim and the attacker on it.
type world struct {
	host, victim, attacker *netnstest.NS
	d                      *clitest.Daemon
	debug                  string // the daemon's --debug-socket
	gw                     netip.Addr
	gwMAC                  net.HardwareAddr
	victimEP, attackerEP   api.Endpoint
}

// newWorld starts a daemon in a namespace of its own, creates the network
// (with icc as given), connects the victim (its HTTP server published on
// pubTCP, its UDP echo on pubUDP) and the attacker, and starts the
// servers: "victim" in the victim, "attacker" on the same port in the
// attacker.
func newWorld(t *testing.T, icc bool) *world {
	t.Helper()
	w := &world{host: netnstest.New(t), victim: netnstest.New(t), attacker: netnstest.New(t)}
	w.d = clitest.NewDaemon(t)
	w.debug = filepath.Join(t.TempDir(), "debug", debugSock)
	w.d.Wrap = []string{"nsenter", "--net=" + w.host.Path}
	w.d.Extra = []string{"--debug-socket", w.debug}
	w.d.Start()
	w.d.MustRun("network", "create", "soak", "--subnet", subnet, fmt.Sprintf("--icc=%t", icc))
	w.d.MustRun("connect", "soak", "--netns", w.victim.Path, "--name", "victim",
		"-p", fmt.Sprintf("%d:%d", pubTCP, httpPort), "-p", fmt.Sprintf("%d:%d/udp", pubUDP, udpPort))
	w.d.MustRun("connect", "soak", "--netns", w.attacker.Path, "--name", "attacker")
	for _, e := range endpoints(t, w.d) {
		switch e.Name {
		case "victim":
			w.victimEP = e
		case "attacker":
			w.attackerEP = e
		}
	}
	if !w.victimEP.Address.IsValid() || !w.attackerEP.Address.IsValid() {
		t.Fatalf("endpoint ls lacks the victim or the attacker: %+v %+v", w.victimEP, w.attackerEP)
	}
	w.gw = w.victimEP.Gateway
	var nets []api.Network
	if err := json.Unmarshal([]byte(w.d.MustRun("network", "ls", "--format", "json")), &nets); err != nil {
		t.Fatal(err)
	}
	for _, n := range nets {
		if n.Name == "soak" {
			mac, err := net.ParseMAC(n.GatewayMAC)
			if err != nil {
				t.Fatalf("network soak's gateway MAC %q: %v", n.GatewayMAC, err)
			}
			w.gwMAC = mac
		}
	}
	if w.gwMAC == nil {
		t.Fatal("network ls lacks network soak")
	}
	serveHTTP(t, w.victim, victimID)
	serveHTTP(t, w.attacker, attackID)
	serveEcho(t, w.victim)
	return w
}

func endpoints(t *testing.T, d *clitest.Daemon) []api.Endpoint {
	t.Helper()
	var es []api.Endpoint
	if err := json.Unmarshal([]byte(d.MustRun("endpoint", "ls", "--format", "json")), &es); err != nil {
		t.Fatal(err)
	}
	return es
}

// serveHTTP answers every request to port httpPort in ns with id.
func serveHTTP(t *testing.T, ns *netnstest.NS, id string) {
	t.Helper()
	l, err := ns.Listen(fmt.Sprintf("0.0.0.0:%d", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, id) }),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       5 * time.Second,
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-done })
}

// serveEcho echoes UDP datagrams to port udpPort in ns.
func serveEcho(t *testing.T, ns *netnstest.NS) {
	t.Helper()
	pc, err := ns.ListenPacket(fmt.Sprintf("0.0.0.0:%d", udpPort))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
}

// client is an HTTP client in the daemon's namespace that opens a new
// connection for every request, so that every request makes the daemon
// dial the victim afresh.
func (w *world) client() *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return w.host.Dial(ctx, network, addr)
			},
		},
	}
}

// ask makes one request to the published port and returns the body.
func ask(c *http.Client) (string, error) {
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", pubTCP))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256))
	return strings.TrimSpace(string(b)), err
}
