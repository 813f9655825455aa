package dns_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	gwdns "github.com/switchyard-net/switchyard/gateway/dns"
)

var (
	webAddr = netip.MustParseAddr("10.240.0.2")
	dbAddr  = netip.MustParseAddr("10.240.0.3")
	dualV4  = netip.MustParseAddr("10.240.0.4")
	dualV6  = netip.MustParseAddr("fd00::4")
)

// webNames is network "web": endpoints web and db (alias "database"), and
// a dual-stack endpoint; "cache." is given with a final dot.
func webNames() map[string][]netip.Addr {
	return map[string][]netip.Addr{
		"web":      {webAddr},
		"db":       {dbAddr},
		"database": {dbAddr},
		"Dual":     {dualV4, dualV6},
		"cache.":   {netip.MustParseAddr("10.240.0.5")},
	}
}

func TestNamesAndAliasesResolve(t *testing.T) {
	up := newFakeUpstream(t)
	n := newTestNet(t, 240, gwdns.Config{Domain: "web", Upstreams: []netip.AddrPort{up.addr}})
	n.srv.SetNames(webNames())
	h := n.hosts[0]
	cases := []struct {
		name string
		want netip.Addr
	}{
		{"web.", webAddr},
		{"db.", dbAddr},
		{"database.", dbAddr},                         // an alias
		{"db.web.", dbAddr},                           // NAME.Domain
		{"DataBase.WEB.", dbAddr},                     // any case
		{"dual.", dualV4},                             // given as "Dual"
		{"cache.", netip.MustParseAddr("10.240.0.5")}, // given with a final dot
		{"cache.web.", netip.MustParseAddr("10.240.0.5")},
	}
	for _, tcp := range []bool{false, true} {
		for _, c := range cases {
			r := n.query(t, h, tcp, question(c.name, dns.TypeA))
			if r.Rcode != dns.RcodeSuccess || !slices.Equal(addrs(r), []netip.Addr{c.want}) {
				t.Fatalf("A %s (tcp=%v): rcode %s answers %v, want NOERROR %v", c.name, tcp, dns.RcodeToString[r.Rcode], addrs(r), c.want)
			}
			a := r.Answer[0].Header()
			if a.Name != c.name || a.Ttl != gwdns.LocalTTL || !r.Authoritative {
				t.Errorf("A %s: owner %q ttl %d aa %v, want the name as asked, ttl %d, authoritative", c.name, a.Name, a.Ttl, r.Authoritative, gwdns.LocalTTL)
			}
		}
	}
	r := n.query(t, h, false, question("dual.web.", dns.TypeAAAA))
	if !slices.Equal(addrs(r), []netip.Addr{dualV6}) {
		t.Errorf("AAAA dual.web: %v, want %v", addrs(r), dualV6)
	}
	if q := up.queries(); len(q) != 0 {
		t.Errorf("the upstream saw %v: network names must never leave", q)
	}
	if st := n.srv.Stats(); st.Local != uint64(2*len(cases)+1) || st.Forwarded != 0 || st.UDPQueries == 0 || st.TCPQueries == 0 {
		t.Errorf("stats %+v: want every query local", st)
	}
}

// A name of the network that lacks the asked type exists: NOERROR with no
// answers, and the query is not forwarded.
func TestLocalNameOtherTypesAreEmptyAndNeverForwarded(t *testing.T) {
	up := newFakeUpstream(t)
	n := newTestNet(t, 240, gwdns.Config{Domain: "web", Upstreams: []netip.AddrPort{up.addr}})
	n.srv.SetNames(webNames())
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"db.", dns.TypeAAAA}, {"db.web.", dns.TypeAAAA}, {"DB.", dns.TypeMX}, {"web.", dns.TypeTXT},
		{"web.web.", dns.TypeSRV}, {"database.", dns.TypeCNAME},
	} {
		r := n.query(t, n.hosts[0], false, question(q.name, q.qtype))
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
			t.Errorf("%s %s: rcode %s with %d answers, want NOERROR and none", dns.TypeToString[q.qtype], q.name, dns.RcodeToString[r.Rcode], len(r.Answer))
		}
	}
	if q := up.queries(); len(q) != 0 {
		t.Fatalf("the upstream saw %v: network names must never leave", q)
	}
	// The same server does forward a name that is not the network's.
	if r := n.query(t, n.hosts[0], false, question("dbx.", dns.TypeAAAA)); r.Rcode != dns.RcodeNameError || !up.saw("dbx.") {
		t.Fatalf("AAAA dbx.: rcode %s, upstream saw it: %v; want it forwarded (NXDOMAIN)", dns.RcodeToString[r.Rcode], up.saw("dbx."))
	}
}

func TestPTR(t *testing.T) {
	up := newFakeUpstream(t)
	n := newTestNet(t, 240, gwdns.Config{Domain: "web", Upstreams: []netip.AddrPort{up.addr}})
	n.srv.SetNames(webNames())
	ptrs := func(r *dns.Msg) []string {
		var out []string
		for _, rr := range r.Answer {
			if p, ok := rr.(*dns.PTR); ok {
				out = append(out, p.Ptr)
			}
		}
		return out
	}
	for _, c := range []struct {
		addr netip.Addr
		want []string
	}{
		{dbAddr, []string{"database.web.", "db.web."}},
		{webAddr, []string{"web.web."}},
		{dualV6, []string{"dual.web."}},
	} {
		rev, _ := dns.ReverseAddr(c.addr.String())
		for _, tcp := range []bool{false, true} {
			r := n.query(t, n.hosts[1], tcp, question(rev, dns.TypePTR))
			if r.Rcode != dns.RcodeSuccess || !slices.Equal(ptrs(r), c.want) {
				t.Errorf("PTR %s (tcp=%v): rcode %s %v, want %v", rev, tcp, dns.RcodeToString[r.Rcode], ptrs(r), c.want)
			}
		}
	}
	if q := up.queries(); len(q) != 0 {
		t.Fatalf("the upstream saw %v", q)
	}
	// An address outside the table is forwarded.
	rev, _ := dns.ReverseAddr("10.240.0.99")
	if r := n.query(t, n.hosts[1], false, question(rev, dns.TypePTR)); r.Rcode != dns.RcodeNameError || !up.saw(rev) {
		t.Fatalf("PTR %s: rcode %s, want it forwarded", rev, dns.RcodeToString[r.Rcode])
	}
}

// Two networks, each with its own gateway and server: the names of one
// never resolve in the other; they are forwarded there like any name.
func TestNetworksAreIsolated(t *testing.T) {
	up := newFakeUpstream(t)
	a := newTestNet(t, 240, gwdns.Config{Domain: "a", Upstreams: []netip.AddrPort{up.addr}})
	b := newTestNet(t, 241, gwdns.Config{Domain: "b", Upstreams: []netip.AddrPort{up.addr}})
	a.srv.SetNames(map[string][]netip.Addr{"db": {dbAddr}})
	b.srv.SetNames(map[string][]netip.Addr{"cache": {netip.MustParseAddr("10.241.0.3")}})

	if r := a.query(t, a.hosts[0], false, question("db.", dns.TypeA)); !slices.Equal(addrs(r), []netip.Addr{dbAddr}) {
		t.Fatalf("db in its own network: %v", addrs(r))
	}
	rev, _ := dns.ReverseAddr(dbAddr.String())
	for _, q := range []*dns.Msg{question("db.", dns.TypeA), question("db.a.", dns.TypeA), question("DB.", dns.TypeAAAA), question(rev, dns.TypePTR)} {
		for _, tcp := range []bool{false, true} {
			r := b.query(t, b.hosts[0], tcp, q)
			if r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
				t.Errorf("network b asked %s %s: rcode %s answers %v; want the upstream's NXDOMAIN", q.Question[0].Name,
					dns.TypeToString[q.Question[0].Qtype], dns.RcodeToString[r.Rcode], r.Answer)
			}
		}
	}
	if !up.saw("db.") || !up.saw("db.a.") || !up.saw(rev) {
		t.Errorf("network b's queries for a's names were not forwarded: %v", up.queries())
	}
	if r := a.query(t, a.hosts[1], false, question("cache.", dns.TypeA)); r.Rcode != dns.RcodeNameError {
		t.Errorf("network a asked for b's cache: %s %v", dns.RcodeToString[r.Rcode], r.Answer)
	}
	if st := b.srv.Stats(); st.Local != 0 || st.NXDomain != 8 {
		t.Errorf("network b stats %+v: want nothing local, 8 NXDOMAIN", st)
	}
}

func TestSetNamesAtRunTime(t *testing.T) {
	up := newFakeUpstream(t)
	n := newTestNet(t, 240, gwdns.Config{Domain: "web", Upstreams: []netip.AddrPort{up.addr}})
	h := n.hosts[0]
	newAddr := netip.MustParseAddr("10.240.0.7")
	if r := n.query(t, h, false, question("new.", dns.TypeA)); r.Rcode != dns.RcodeNameError {
		t.Fatalf("new. before it connected: %s %v", dns.RcodeToString[r.Rcode], r.Answer)
	}
	n.srv.SetNames(map[string][]netip.Addr{"web": {webAddr}, "new": {newAddr}}) // connect
	if r := n.query(t, h, false, question("new.", dns.TypeA)); !slices.Equal(addrs(r), []netip.Addr{newAddr}) {
		t.Fatalf("new. after connect: %s %v", dns.RcodeToString[r.Rcode], addrs(r))
	}
	n.srv.SetNames(map[string][]netip.Addr{"new": {newAddr}}) // web disconnects
	if r := n.query(t, h, false, question("web.", dns.TypeA)); r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
		t.Fatalf("web. after disconnect: %s %v; want forwarded, NXDOMAIN", dns.RcodeToString[r.Rcode], r.Answer)
	}
	rev, _ := dns.ReverseAddr(webAddr.String())
	if r := n.query(t, h, false, question(rev, dns.TypePTR)); r.Rcode != dns.RcodeNameError {
		t.Fatalf("PTR of web after disconnect: %s %v", dns.RcodeToString[r.Rcode], r.Answer)
	}
	if r := n.query(t, h, true, question("new.web.", dns.TypeA)); !slices.Equal(addrs(r), []netip.Addr{newAddr}) {
		t.Fatalf("new.web. over TCP: %v", addrs(r))
	}
}

// Names that are not domain names, and invalid addresses, are left out;
// the rest of the table works.
func TestSetNamesSkipsInvalid(t *testing.T) {
	n := newTestNet(t, 240, gwdns.Config{})
	long := strings.Repeat("a", 70) // a label longer than 63
	n.srv.SetNames(map[string][]netip.Addr{"": {webAddr}, long: {webAddr}, "a..b": {webAddr}, "bad": {{}}, "db": {dbAddr, {}}})
	if r := n.query(t, n.hosts[0], false, question("db.", dns.TypeA)); !slices.Equal(addrs(r), []netip.Addr{dbAddr}) {
		t.Fatalf("db.: %v", addrs(r))
	}
	// bad has no address left, but it is still a name of the network.
	if r := n.query(t, n.hosts[0], false, question("bad.", dns.TypeA)); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Fatalf("bad.: %s %v", dns.RcodeToString[r.Rcode], r.Answer)
	}
}
