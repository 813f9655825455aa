package vnettest_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// home is a LAN behind Switchyard's gateway, whose egress leaves on a
// second network standing for the internet, where a web server runs.
type home struct {
	w           *vnettest.World
	lan, inet   *vnettest.Network
	gw          *vnettest.Gateway
	laptop, web *vnettest.Host
}

func newHome(t *testing.T) *home {
	t.Helper()
	h := &home{w: vnettest.New(t)}
	h.inet = h.w.NewNetwork("inet", "203.0.113.0/24")
	h.lan = h.w.NewNetwork("lan", "192.168.1.0/24")
	h.gw = h.lan.NewGateway(vnettest.GatewayConfig{Uplink: h.inet, UplinkAddr: "203.0.113.10"})
	h.laptop = h.lan.NewHost("laptop")
	h.web = h.inet.NewHostAt("web", "203.0.113.80")
	return h
}

// serveRemoteAddr answers every HTTP request with the client's address.
func serveRemoteAddr(t *testing.T, h *vnettest.Host, port int) {
	t.Helper()
	l, err := h.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.RemoteAddr)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// A host on the LAN reaches a server on the internet through the gateway,
// which masquerades: the server sees the gateway's uplink address.
func TestEgressMasquerade(t *testing.T) {
	h := newHome(t)
	serveRemoteAddr(t, h.web, 80)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.laptop.Ping(ctx, h.gw.Addr()); err != nil {
		t.Fatalf("laptop ping gateway: %v", err)
	}
	got := get(t, h.laptop.HTTPClient(), "http://203.0.113.80/")
	if !strings.HasPrefix(got, "203.0.113.10:") {
		t.Fatalf("server saw the client as %q, want the gateway's uplink 203.0.113.10", got)
	}
	// Pings do not leave: the real gateway would send them from the
	// machine's ICMP sockets. The request reaches the gateway and goes
	// unanswered (rather than answered by the gateway's netstack in the
	// far host's name).
	rx := h.gw.Link().Stats().TX.Frames
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, err := h.laptop.Ping(short, h.web.Addr()); err == nil {
		t.Fatal("a ping to the internet was answered")
	}
	if h.gw.Link().Stats().TX.Frames == rx {
		t.Fatal("the echo request never reached the gateway")
	}
	// The flow crossed the gateway's uplink wire.
	if s := h.gw.Uplink().Wire().Stats(vnettest.Up); s.Out == 0 {
		t.Fatalf("uplink wire carried nothing: %+v", s)
	}
}

// A port published on the gateway's uplink address reaches the LAN host,
// which sees the client's own address.
func TestPublishedPort(t *testing.T) {
	h := newHome(t)
	serveRemoteAddr(t, h.laptop, 80)
	if err := h.gw.PublishTCP(8080, h.laptop, 80); err != nil {
		t.Fatal(err)
	}
	got := get(t, h.web.HTTPClient(), "http://203.0.113.10:8080/")
	if !strings.HasPrefix(got, "203.0.113.80:") {
		t.Fatalf("LAN server saw the client as %q, want the internet host 203.0.113.80", got)
	}
	if err := h.gw.PublishTCP(8081, h.web, 80); err == nil || !strings.Contains(err.Error(), "host web is not on network lan") {
		t.Fatalf("publishing a host of another network: %v", err)
	}
}

// The gateway's DNS server answers the network's host names.
func TestGatewayDNS(t *testing.T) {
	h := newHome(t)
	printer := h.lan.NewHostAt("printer", "192.168.1.50")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := h.laptop.Resolver()
	for _, name := range []string{"printer", "printer.lan", "PRINTER.lan."} {
		addrs, err := r.LookupHost(ctx, name)
		if err != nil || len(addrs) != 1 || addrs[0] != printer.Addr().String() {
			t.Fatalf("LookupHost(%q) = %v, %v; want [%s]", name, addrs, err, printer.Addr())
		}
	}
	if addrs, err := r.LookupHost(ctx, "web.example"); err == nil {
		t.Fatalf("a name outside the network resolved: %v", addrs)
	}
	if h.web.Resolver() != nil {
		t.Fatal("a host of a network without gateway has a resolver")
	}
}

// An internal network's gateway answers pings to itself and refuses
// egress at once.
func TestInternalNetworkRefusesEgress(t *testing.T) {
	w := vnettest.New(t)
	inet := w.NewNetwork("inet", "203.0.113.0/24")
	web := inet.NewHost("web")
	lab := w.NewNetwork("lab", "10.1.0.0/24")
	gw := lab.NewGateway(vnettest.GatewayConfig{})
	a := lab.NewHost("a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.Ping(ctx, gw.Addr()); err != nil {
		t.Fatal(err)
	}
	l, err := web.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = a.DialContext(ctx, "tcp", net.JoinHostPort(web.Addr().String(), "80"))
	if err == nil || ctx.Err() != nil {
		t.Fatalf("dial out of an internal network: %v (ctx %v), want refused at once", err, ctx.Err())
	}
	if gw.Uplink() != nil {
		t.Fatal("internal gateway has an uplink")
	}
}

func TestGatewayBadInput(t *testing.T) {
	for _, c := range []struct {
		name string
		do   func(w *vnettest.World)
		want string
	}{
		{"two gateways", func(w *vnettest.World) {
			n := w.NewNetwork("lan", "10.0.0.0/24")
			n.NewGateway(vnettest.GatewayConfig{})
			n.NewGateway(vnettest.GatewayConfig{})
		}, "gateway of network lan: its gateway address 10.0.0.1 is held by the gateway already"},
		{"uplink to itself", func(w *vnettest.World) {
			n := w.NewNetwork("lan", "10.0.0.0/24")
			n.NewGateway(vnettest.GatewayConfig{Uplink: n})
		}, "uplink is the network itself"},
		{"uplink address outside", func(w *vnettest.World) {
			inet := w.NewNetwork("inet", "203.0.113.0/24")
			w.NewNetwork("lan", "10.0.0.0/24").NewGateway(vnettest.GatewayConfig{Uplink: inet, UplinkAddr: "10.0.0.9"})
		}, `gateway of network lan: uplink: host "lan-gw": address 10.0.0.9 is outside network inet`},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t)
			defer f.end()
			w := vnettest.New(f)
			if !try(func() { c.do(w) }) || !strings.Contains(f.errors(), c.want) {
				t.Fatalf("failure %q, want one containing %q", f.errors(), c.want)
			}
		})
	}
}

// A published UDP port: each client is a flow of its own into the network,
// from the client's own address, and the replies come back to it.
func TestPublishedUDPPort(t *testing.T) {
	h := newHome(t)
	echo, err := h.laptop.ListenPacket("udp", ":53")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo([]byte(from.String()+" "+string(buf[:n])), from)
		}
	}()
	if err := h.gw.PublishUDP(5353, h.laptop, 53); err != nil {
		t.Fatal(err)
	}
	other := h.inet.NewHostAt("other", "203.0.113.81")
	for _, client := range []*vnettest.Host{h.web, other} {
		c, err := client.Dial("udp", "203.0.113.10:5353")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for i := range 3 {
			msg := fmt.Sprintf("ping %d", i)
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 100)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("%s: %s: %v", client.Name(), msg, err)
			}
			if got := string(buf[:n]); !strings.HasPrefix(got, client.Addr().String()+":") || !strings.HasSuffix(got, " "+msg) {
				t.Fatalf("%s: the LAN host answered %q, want it to see %s and %q", client.Name(), got, client.Addr(), msg)
			}
		}
	}
	if err := h.gw.PublishUDP(5354, h.web, 53); err == nil || !strings.Contains(err.Error(), "host web is not on network lan") {
		t.Fatalf("publishing a host of another network: %v", err)
	}
}
