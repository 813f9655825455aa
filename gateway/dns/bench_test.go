package dns

import (
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkHandleLocalA is the handler alone: parse a query for a network
// name, look it up, build and encode the answer.
func BenchmarkHandleLocalA(b *testing.B) {
	s := fuzzServer(b, true)
	raw, _ := new(dns.Msg).SetQuestion("db.web.", dns.TypeA).Pack()
	b.ReportAllocs()
	for b.Loop() {
		if v := s.handle(raw, true); v.reply == nil {
			b.Fatal("no answer")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}
