package daemon

import (
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// parseAddressing never panics; a request it finds valid has at least one
// family, each family's subnet (if any) of that family, and the gateway
// and range of a family only with that family.
func FuzzParseAddressing(f *testing.F) {
	f.Add("10.1.0.0/24", "fd00:1::/64", "fd00:1::fe", "10.1.0.128/25", "r=fd00:1::5", true, byte(0))
	f.Add("", "", "", "", "", false, byte(1))
	f.Add("fd00:1::/64", "fd00:2::/64", "10.0.0.1", "x", "=", false, byte(2))
	f.Add("10.1.0.0/24", "10.2.0.0/24", "", "", "", true, byte(2))
	f.Fuzz(func(t *testing.T, s1, s2, gw, rng, aux string, ipv6 bool, v4 byte) {
		req := api.NetworkCreate{Name: "n", Subnet: s1, Subnets: []string{s2}, Gateways: []string{gw}, IPRanges: []string{rng},
			AuxAddresses: []string{aux}, IPv6: ipv6}
		switch v4 % 3 {
		case 1:
			req.IPv4 = boolp(true)
		case 2:
			req.IPv4 = boolp(false)
		}
		var errs fieldErrs
		a := parseAddressing(&errs, req)
		if len(errs) > 0 {
			return
		}
		if !a.has[fam4] && !a.has[fam6] {
			t.Fatalf("%+v: valid with no family", req)
		}
		for fam := range a.has {
			c := a.cfg[fam]
			if c.Subnet.IsValid() && familyOf(c.Subnet.Addr()) != fam {
				t.Fatalf("%+v: %s subnet %s", req, familyName[fam], c.Subnet)
			}
			if !a.has[fam] && (c.Subnet.IsValid() || c.Gateway.IsValid() || c.IPRange.IsValid() || len(c.Aux) > 0) {
				t.Fatalf("%+v: %s addresses on a network without %s", req, familyName[fam], familyName[fam])
			}
		}
	})
}
