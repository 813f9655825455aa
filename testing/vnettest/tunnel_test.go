package vnettest_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// TestTunnel: two networks joined by a VXLAN or a sealed tunnel over an
// in-process underlay are one L2 segment: a host on one reaches a host on
// the other by ARP, ping and TCP, through a lossy underlay, and the frames
// did cross the tunnel and the underlay.
func TestTunnel(t *testing.T) {
	for _, mode := range []vnettest.TunnelMode{vnettest.VXLAN, vnettest.Sealed} {
		t.Run(mode.String(), func(t *testing.T) {
			w := vnettest.New(t)
			east := w.NewNetwork("east", "10.1.0.0/24")
			west := w.NewNetwork("west", "10.1.0.0/24")
			dc := w.NewNetwork("dc", "192.168.0.0/24")
			tun := w.NewTunnel("t1", east, west, dc, vnettest.TunnelConfig{Mode: mode, VNI: 42})
			e, wh := east.NewHost("e"), west.NewHost("w")
			if e.Addr() == wh.Addr() {
				t.Fatalf("both ends got %v: the joined networks do not share their addresses", e.Addr())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := e.Ping(ctx, wh.Addr()); err != nil {
				t.Fatalf("ping across the tunnel: %v", err)
			}
			ea, _ := tun.Ends()
			if err := ea.Wire().Impair(vnettest.Loss(0.03), vnettest.Reorder(0.05, 2*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			l, err := wh.Listen("tcp", ":80")
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				c, err := l.Accept()
				if err == nil {
					io.Copy(c, c)
					c.Close()
				}
			}()
			c, err := e.DialContext(ctx, "tcp", "w:80")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			payload := bytes.Repeat([]byte("tunnelled "), 30000)
			go c.Write(payload)
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			got := make([]byte, len(payload))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("echo of %d bytes through the tunnel: equal=%v, %v (tunnel a %+v, b %+v)", len(payload), bytes.Equal(got, payload), err, tun.Stats(0), tun.Stats(1))
			}
			a, b := tun.Stats(0), tun.Stats(1)
			if a.TXFrames < 100 || b.RXFrames < 100 || b.TXFrames < 100 || a.RXFrames < 100 {
				t.Fatalf("tunnel counters a %+v, b %+v: the frames did not cross it", a, b)
			}
			if s := ea.Wire().Stats(vnettest.Up); s.Dropped == 0 || s.In < a.TXFrames {
				t.Fatalf("underlay end a's wire %+v for %d tunnelled frames: want every datagram on it, some lost", s, a.TXFrames)
			}
		})
	}
}

func TestTunnelBadInput(t *testing.T) {
	cases := []struct {
		name string
		do   func(w *vnettest.World)
		want string
	}{
		{"two subnets", func(w *vnettest.World) {
			w.NewTunnel("t", w.NewNetwork("a", "10.1.0.0/24"), w.NewNetwork("b", "10.2.0.0/24"), w.NewNetwork("u", "10.9.0.0/24"), vnettest.TunnelConfig{})
		}, `tunnel "t": networks a (10.1.0.0/24) and b (10.2.0.0/24): want one subnet on both ends`},
		{"underlay is an end", func(w *vnettest.World) {
			a := w.NewNetwork("a", "10.1.0.0/24")
			w.NewTunnel("t", a, w.NewNetwork("b", "10.1.0.0/24"), a, vnettest.TunnelConfig{})
		}, `want three different networks`},
		{"VNI", func(w *vnettest.World) {
			w.NewTunnel("t", w.NewNetwork("a", "10.1.0.0/24"), w.NewNetwork("b", "10.1.0.0/24"), w.NewNetwork("u", "10.9.0.0/24"), vnettest.TunnelConfig{VNI: 1 << 24})
		}, `tunnel "t": VNI 16777216: want 0 to 16777215`},
		{"one address on both", func(w *vnettest.World) {
			a, b := w.NewNetwork("a", "10.1.0.0/24"), w.NewNetwork("b", "10.1.0.0/24")
			a.NewHost("x")
			b.NewHost("y")
			w.NewTunnel("t", a, b, w.NewNetwork("u", "10.9.0.0/24"), vnettest.TunnelConfig{})
		}, `address 10.1.0.2 is used on both b (by y) and a (by x)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t)
			defer f.end()
			w := vnettest.New(f)
			if !try(func() { c.do(w) }) {
				t.Fatalf("no failure; want one containing %q", c.want)
			}
			if !strings.Contains(f.errors(), c.want) {
				t.Fatalf("failure %q; want it to contain %q", f.errors(), c.want)
			}
		})
	}
}

// TestTunnelOnVirtualTime: a tunnel works on virtual time, and a delay on
// the underlay shows, exactly, in a ping across it.
func TestTunnelOnVirtualTime(t *testing.T) {
	w := vnettest.New(t, vnettest.VirtualTime(), vnettest.Seed(3))
	east := w.NewNetwork("east", "10.1.0.0/24")
	west := w.NewNetwork("west", "10.1.0.0/24")
	tun := w.NewTunnel("t1", east, west, w.NewNetwork("dc", "192.168.0.0/24"), vnettest.TunnelConfig{Mode: vnettest.Sealed})
	e, wh := east.NewHost("e"), west.NewHost("w")
	ea, _ := tun.Ends()
	if err := ea.Wire().SetStages(vnettest.Up, vnettest.Delay(25*time.Millisecond, 0)); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the first ping also waits for ARP, on the underlay and across the tunnel
		var rtt time.Duration
		var err error
		var done atomic.Bool
		go func() {
			defer done.Store(true)
			rtt, err = e.Ping(context.Background(), wh.Addr())
		}()
		if ok, _ := w.AdvanceUntil(time.Minute, done.Load); !ok || err != nil {
			t.Fatalf("ping across the tunnel on virtual time: done %v, %v", ok, err)
		}
		if i == 1 && rtt != 25*time.Millisecond || rtt%(25*time.Millisecond) != 0 {
			t.Fatalf("ping %d across a tunnel with 25 ms on the underlay: rtt %v, want 25ms (a multiple of it with ARP)", i+1, rtt)
		}
	}
}
