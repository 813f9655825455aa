package vnettest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// Hosts on two networks reach each other through a router; the router's
// legs are wires that can be cut like any other.
func TestRouterBetweenNetworks(t *testing.T) {
	w := vnettest.New(t)
	east, west := w.NewNetwork("east", "10.1.0.0/24"), w.NewNetwork("west", "10.2.0.0/24")
	r := w.NewRouter("r", east, west)
	a, b := east.NewHost("a"), west.NewHost("b")
	serveRemoteAddr(t, b, 80)
	got := get(t, a.HTTPClient(), "http://b/")
	if !strings.HasPrefix(got, "10.1.0.2:") {
		t.Fatalf("b saw the client as %q, want a's own address 10.1.0.2 (a router does not masquerade)", got)
	}
	leg := r.Wire(west)
	if s := leg.Stats(vnettest.Up); s.Out == 0 {
		t.Fatalf("the router's west leg carried nothing: %+v", s)
	}
	leg.Cut()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	dropped := leg.Stats(vnettest.Down).Dropped
	if _, err := a.Ping(ctx, b.Addr()); err == nil {
		t.Fatal("ping crossed a cut router leg")
	}
	if leg.Stats(vnettest.Down).Dropped == dropped && leg.Stats(vnettest.Up).Dropped == 0 {
		t.Fatal("the cut leg dropped nothing")
	}
	leg.Heal()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if _, err := a.Ping(ctx2, b.Addr()); err != nil {
		t.Fatalf("ping after heal: %v", err)
	}
	if r.Wire(w.NewNetwork("other", "10.3.0.0/24")) != nil {
		t.Fatal("router has a leg on a network it was not given")
	}
}

func TestRouterBadInput(t *testing.T) {
	for _, c := range []struct {
		name string
		do   func(w *vnettest.World)
		want string
	}{
		{"one network", func(w *vnettest.World) { w.NewRouter("r", w.NewNetwork("a", "10.1.0.0/24")) }, `router "r": want two networks or more, got 1`},
		{"twice the same", func(w *vnettest.World) {
			n := w.NewNetwork("a", "10.1.0.0/24")
			w.NewRouter("r", n, n)
		}, `router "r": network a given twice`},
		{"network with a gateway", func(w *vnettest.World) {
			a, b := w.NewNetwork("a", "10.1.0.0/24"), w.NewNetwork("b", "10.2.0.0/24")
			b.NewGateway(vnettest.GatewayConfig{})
			w.NewRouter("r", a, b)
		}, `router "r": network b: its gateway address 10.2.0.1 is held by the gateway already`},
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
