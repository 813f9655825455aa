package dns_test

import (
	"testing"

	"github.com/miekg/dns"

	gwdns "github.com/switchyard-net/switchyard/gateway/dns"
)

// BenchmarkLocalQueryUDP is a container asking for a network name over
// UDP, one query at a time, through its netstack, the switch and the
// gateway's netstack: the round trip a container sees.
func BenchmarkLocalQueryUDP(b *testing.B) {
	n := newTestNet(b, 240, gwdns.Config{Domain: "web"})
	n.srv.SetNames(webNames())
	c, err := n.hosts[0].DialUDP(n.resolver())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	q := question("db.web.", dns.TypeA)
	if _, err := exchange(c, false, q); err != nil { // ARP and warm-up
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		q.Id++
		r, err := exchange(c, false, q)
		if err != nil || len(r.Answer) != 1 {
			b.Fatalf("%v %v", r, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}
