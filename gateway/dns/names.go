package dns

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// table is one version of a network's names. It is never changed once
// published: SetNames builds a new one and swaps the pointer, so lookups
// take no lock.
type table struct {
	fwd map[string]*entry // lower-case name without the final dot → its addresses
	rev map[string]*entry // lower-case reverse name (…in-addr.arpa, …ip6.arpa) → its names
}

type entry struct {
	v4, v6 []netip.Addr
	ptr    []string // fully qualified names, for reverse entries
}

// lookup returns the entry of qname (a name as received, any case, fully
// qualified), trying it as given, then as NAME.domain, then as a reverse
// name. It returns nil for a name outside the table.
func (t *table) lookup(qname, domain string) *entry {
	name := strings.ToLower(strings.TrimSuffix(qname, ".")) // no allocation if already lower case
	if e := t.fwd[name]; e != nil {
		return e
	}
	if n := len(name) - len(domain) - 1; domain != "" && n > 0 && name[n] == '.' && name[n+1:] == domain {
		if e := t.fwd[name[:n]]; e != nil {
			return e
		}
	}
	return t.rev[name]
}

// SetNames replaces the network's name table with names: each name (an
// endpoint's name or one of its aliases; case and a final dot do not
// matter) and its addresses. The reverse table (PTR) is derived from it.
// Queries already being answered finish with the table they started with.
// Names that are not valid domain names and invalid addresses are left out
// and logged; names is not retained. Each call replaces the whole table, so
// the caller passes every name of the network each time, and does not make
// two calls at once (the later table might lose).
func (s *Server) SetNames(names map[string][]netip.Addr) {
	t := &table{fwd: make(map[string]*entry, len(names)), rev: map[string]*entry{}}
	var bad []string
	for name, addrs := range names {
		key := strings.ToLower(strings.TrimSuffix(name, "."))
		if _, ok := dns.IsDomainName(key); !ok || key == "" || strings.HasSuffix(key, ".") {
			bad = append(bad, name)
			continue
		}
		e := t.fwd[key]
		if e == nil {
			e = &entry{}
			t.fwd[key] = e
		}
		target := dns.Fqdn(key)
		if s.domain != "" {
			target = key + "." + s.domain + "."
		}
		for _, a := range addrs {
			a = a.Unmap().WithZone("")
			switch {
			case a.Is4() && !slices.Contains(e.v4, a):
				e.v4 = append(e.v4, a)
			case a.Is6() && !slices.Contains(e.v6, a):
				e.v6 = append(e.v6, a)
			default:
				if !a.IsValid() {
					bad = append(bad, name)
				}
				continue
			}
			rname, err := dns.ReverseAddr(a.String())
			if err != nil {
				continue
			}
			rkey := strings.TrimSuffix(rname, ".")
			r := t.rev[rkey]
			if r == nil {
				r = &entry{}
				t.rev[rkey] = r
			}
			if !slices.Contains(r.ptr, target) {
				r.ptr = append(r.ptr, target)
			}
		}
	}
	for _, r := range t.rev {
		slices.Sort(r.ptr) // the same answer whatever the map's order
	}
	s.names.Store(t)
	if len(bad) > 0 {
		slices.Sort(bad)
		s.log.Warn("names left out of the DNS table", zap.Strings("names", bad))
	}
	s.log.Debug("dns names set", zap.Int("names", len(t.fwd)), zap.Int("addresses", len(t.rev)))
}
