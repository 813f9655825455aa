package nat

import (
	"errors"
	"net/netip"
	"testing"
)

// TestIsolatedDropsHairpin: icc=false drops the hairpin flow between two
// endpoints and, as Docker's iptables does, an endpoint's flow to its own
// published port. Other traffic to the gateway still passes.
func TestIsolatedDropsHairpin(t *testing.T) {
	cfg := testConfig()
	cfg.Isolated = true
	tb := newTestTable(t, cfg, testMappings())
	mustVerdict(t, tb, tcpSeg(ap(a4, 40000), ap(gw4, 8080), syn, 1, 0, nil), 0, Drop) // a → b
	mustVerdict(t, tb, udpDgram(ap(a4, 40000), ap(host4, 5353), nil, false), 0, Drop) // a → b, udp
	mustVerdict(t, tb, tcpSeg(ap(a4, 40000), ap(gw4, 9090), syn, 1, 0, nil), 0, Drop) // a → a
	mustVerdict(t, tb, tcpSeg(ap(a4, 40000), ap(gw4, 22), syn, 1, 0, nil), 0, Pass)   // not published
	mustVerdict(t, tb, echo(a4, gw4, true, 1, 1), 0, Pass)                            // ping the gateway
	if s := tb.Stats(); s.Filtered != 3 || s.Entries != 0 || s.Inserted != 0 {
		t.Errorf("Stats = %+v, want 3 filtered, nothing tracked", s)
	}
}

// TestIsolatedDropsHairpinIPv6: icc=false holds for IPv6 as for IPv4:
// hairpin flows between endpoints and to an endpoint's own published port
// are dropped, at the gateway's IPv6 address and at a host IPv6 address,
// while what is not published and pings to the gateway pass.
func TestIsolatedDropsHairpinIPv6(t *testing.T) {
	cfg := testConfig()
	cfg.Isolated = true
	ms := append(testMappings(), PortMapping{Proto: TCP, HostIP: gw6, HostPort: 9090, Target: ap(a6, 90)})
	tb := newTestTable(t, cfg, ms)
	mustVerdict(t, tb, tcpSeg(ap(a6, 40000), ap(gw6, 8080), syn, 1, 0, nil), 0, Drop)   // a → b
	mustVerdict(t, tb, tcpSeg(ap(a6, 40000), ap(host6, 8080), syn, 1, 0, nil), 0, Drop) // a → b at a host address
	mustVerdict(t, tb, udpDgram(ap(a6, 40000), ap(host6, 5353), nil, false), 0, Drop)   // a → b, udp
	mustVerdict(t, tb, tcpSeg(ap(a6, 40000), ap(gw6, 9090), syn, 1, 0, nil), 0, Drop)   // a → a
	mustVerdict(t, tb, tcpSeg(ap(a6, 40000), ap(gw6, 22), syn, 1, 0, nil), 0, Pass)     // not published
	mustVerdict(t, tb, echo(a6, gw6, true, 1, 1), 0, Pass)                              // ping the gateway
	if s := tb.Stats(); s.Filtered != 4 || s.Entries != 0 || s.Inserted != 0 {
		t.Errorf("Stats = %+v, want 4 filtered, nothing tracked", s)
	}
	// With icc on, the same flow is translated.
	open := newTestTable(t, testConfig(), ms)
	mustVerdict(t, open, tcpSeg(ap(a6, 40000), ap(gw6, 8080), syn, 1, 0, nil), 0, Translated)
}

// TestInternal: no DNAT at all, and egress refused outside the network.
func TestInternal(t *testing.T) {
	cfg := testConfig()
	cfg.Internal = true
	tb := newTestTable(t, cfg, testMappings())
	mustVerdict(t, tb, tcpSeg(ap(a4, 40000), ap(gw4, 8080), syn, 1, 0, nil), 0, Pass)
	mustVerdict(t, tb, tcpSeg(ap(a6, 40000), ap(gw6, 8080), syn, 1, 0, nil), 0, Pass)
	mustVerdict(t, tb, udpDgram(ap(a6, 40000), ap(host6, 5353), nil, false), 0, Pass)
	if n := tb.Stats().Entries; n != 0 {
		t.Fatalf("%d entries on an internal network", n)
	}
	for _, tc := range []struct {
		dst  netip.Addr
		want bool
	}{
		{netip.MustParseAddr("8.8.8.8"), false},
		{host4, false}, // the host is outside the network
		{netip.MustParseAddr("2001:4860::8888"), false},
		{gw4, true},
		{netip.MustParseAddr("172.18.5.5"), true},
		{gw6, true},
	} {
		pkt := tcpSeg(ap(a4, 1), ap(tc.dst, 443), syn, 1, 0, nil)
		if tc.dst.Is6() {
			pkt = tcpSeg(ap(a6, 1), ap(tc.dst, 443), syn, 1, 0, nil)
		}
		if got := tb.AllowEgress(pkt); got != tc.want {
			t.Errorf("AllowEgress(to %v) = %v, want %v", tc.dst, got, tc.want)
		}
	}
	if got := tb.AllowEgress([]byte{0x45}); got {
		t.Error("AllowEgress(garbage) on an internal network = true")
	}
	if s := tb.Stats(); s.EgressRefused != 4 {
		t.Errorf("EgressRefused = %d, want 4", s.EgressRefused)
	}

	open := newTestTable(t, testConfig(), nil)
	if !open.AllowEgress(tcpSeg(ap(a4, 1), ap(netip.MustParseAddr("8.8.8.8"), 443), syn, 1, 0, nil)) {
		t.Error("AllowEgress on an ordinary network = false")
	}
}

// TestSetMappingsFlushes: removing a mapping flushes its entries, keeps
// the others, and the flushed flow's packets pass from then on.
func TestSetMappingsFlushes(t *testing.T) {
	tb := newTestTable(t, testConfig(), testMappings())
	web := tcpSeg(ap(a4, 40000), ap(gw4, 8080), syn, 1, 0, nil)
	mustVerdict(t, tb, web, 0, Translated)
	masq := flowOf(t, web).src
	mustVerdict(t, tb, udpDgram(ap(a4, 40000), ap(gw4, 5353), nil, false), 0, Translated)

	ms := testMappings()[1:] // tcp 8080 → b:80 removed
	if err := tb.SetMappings(ms); err != nil {
		t.Fatal(err)
	}
	if s := tb.Stats(); s.Entries != 1 || s.Deleted != 1 {
		t.Fatalf("Stats = %+v, want 1 entry left, 1 deleted", s)
	}
	if e := entry(t, tb, 0); e.Proto != UDP {
		t.Fatalf("the entry left is %v, want the udp one", e)
	}
	mustVerdict(t, tb, tcpSeg(ap(b4, 80), masq, syn|ack, 1, 2, nil), 0, Pass)
	mustVerdict(t, tb, tcpSeg(ap(a4, 40000), ap(gw4, 8080), ack, 2, 2, nil), 0, Pass)
	mustVerdict(t, tb, tcpSeg(ap(a4, 40000), ap(gw4, 8080), syn, 1, 0, nil), 0, Pass)

	// Publishing a port that is some entry's masquerade port flushes it.
	udpMasq := entry(t, tb, 0).Reply.DstPort
	ms = append(ms, PortMapping{Proto: UDP, HostPort: udpMasq, Target: ap(b4, 9)})
	if err := tb.SetMappings(ms); err != nil {
		t.Fatal(err)
	}
	if s := tb.Stats(); s.Entries != 0 || s.Deleted != 2 {
		t.Fatalf("Stats = %+v, want no entry left, 2 deleted", s)
	}
}

func TestSetMappingsRejects(t *testing.T) {
	tb := newTestTable(t, testConfig(), testMappings())
	for name, ms := range map[string][]PortMapping{
		"zero host port":   {{Proto: TCP, Target: ap(b4, 80)}},
		"zero target port": {{Proto: TCP, HostPort: 1, Target: ap(b4, 0)}},
		"sctp":             {{Proto: 132, HostPort: 1, Target: ap(b4, 1)}},
		"no target":        {{Proto: UDP, HostPort: 1}},
		"icmp with ports":  {{Proto: ICMP, HostPort: 1, Target: ap(b4, 0)}},
		"families differ":  {{Proto: TCP, HostIP: gw6, HostPort: 1, Target: ap(b4, 1)}},
		"same port twice": {
			{Proto: TCP, HostPort: 1, Target: ap(b4, 1)},
			{Proto: TCP, HostIP: host4, HostPort: 1, Target: ap(a4, 1)},
		},
	} {
		if err := tb.SetMappings(ms); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: SetMappings error %v, want ErrInvalidConfig", name, err)
		}
	}
	// Nothing changed: the old mappings still apply.
	mustVerdict(t, tb, tcpSeg(ap(a4, 40000), ap(gw4, 8080), syn, 1, 0, nil), 0, Translated)
	// One port on two specific addresses, and on v4 and v6, is fine.
	ok := []PortMapping{
		{Proto: TCP, HostIP: gw4, HostPort: 1, Target: ap(b4, 1)},
		{Proto: TCP, HostIP: host4, HostPort: 1, Target: ap(a4, 1)},
		{Proto: TCP, HostPort: 1, Target: ap(b6, 1)},
		{Proto: UDP, HostPort: 1, Target: ap(b4, 1)},
	}
	if err := tb.SetMappings(ok); err != nil {
		t.Errorf("SetMappings(%v): %v", ok, err)
	}
}

func TestNewTableRejects(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"no gateway":     func(c *Config) { c.Gateway, c.Gateway6 = netip.Addr{}, netip.Addr{} },
		"v6 as gateway":  func(c *Config) { c.Gateway = gw6 },
		"v4 as gateway6": func(c *Config) { c.Gateway6 = gw4 },
		"reversed range": func(c *Config) { c.MasqPorts = [2]uint16{2000, 1000} },
		"port 0":         func(c *Config) { c.MasqPorts = [2]uint16{0, 1000} },
		"negative cap":   func(c *Config) { c.MaxEntries = -1 },
	} {
		cfg := testConfig()
		mod(&cfg)
		if _, err := NewTable(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: NewTable error %v, want ErrInvalidConfig", name, err)
		}
	}
}

// TestSetHostAddrs: a host address added at run time is a hairpin
// destination at once; one removed is not.
func TestSetHostAddrs(t *testing.T) {
	tb := newTestTable(t, testConfig(), testMappings())
	other := netip.MustParseAddr("10.9.9.9")
	mustVerdict(t, tb, tcpSeg(ap(a4, 1), ap(other, 8080), syn, 1, 0, nil), 0, Pass)
	tb.SetHostAddrs([]netip.Addr{other, netip.AddrFrom16(other.As16()), {}})
	mustVerdict(t, tb, tcpSeg(ap(a4, 1), ap(other, 8080), syn, 1, 0, nil), 0, Translated)
	mustVerdict(t, tb, tcpSeg(ap(a4, 2), ap(host4, 8080), syn, 1, 0, nil), 0, Pass)
	mustVerdict(t, tb, tcpSeg(ap(a4, 3), ap(gw4, 8080), syn, 1, 0, nil), 0, Translated)
}
