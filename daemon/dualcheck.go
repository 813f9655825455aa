package daemon

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/ipam"
)

// A network's addresses, one family or both. A request names subnets,
// gateways and ranges in the single fields older clients send (subnet,
// gateway, ip_range) and in the lists (subnets, gateways, ip_ranges);
// each entry is sorted by its family, and a family named twice is
// refused, naming the second entry. The families a network has:
//
//   - IPv4 unless `ipv4` is false, or the request names only IPv6
//     subnets and leaves `ipv4` and `ipv6` unset (an IPv6-only network,
//     as a single IPv6 --subnet made before dual stack);
//   - IPv6 if `ipv6` is true, `ipv4` is false, or an IPv6 subnet is named.
//
// A family with no subnet named gets one picked: IPv4 from Docker's
// default pools, IPv6 a /64 from the daemon's ULA pool.

// Address families, as indexes.
const (
	fam4 = iota
	fam6
)

var familyName = [2]string{"IPv4", "IPv6"}

func familyOf(a netip.Addr) int {
	if a.Is4() {
		return fam4
	}
	return fam6
}

// familyFields names the request fields a family's subnet, gateway and
// range came from, for errors.
type familyFields struct{ subnet, gateway, ipRange string }

// addressing is what a request says about a network's addresses.
type addressing struct {
	has    [2]bool
	cfg    [2]ipam.Config
	fields [2]familyFields
	// aux holds every aux address, both families.
	aux map[string]netip.Addr
}

// primary returns the family a single-family view shows: IPv4 if the
// network has it.
func (a *addressing) primary() int {
	if a.has[fam4] {
		return fam4
	}
	return fam6
}

// named reports whether every family of the network has its subnet
// named in the request (no subnet needs picking).
func (a *addressing) named() bool {
	for f := range a.has {
		if a.has[f] && !a.cfg[f].Subnet.IsValid() {
			return false
		}
	}
	return true
}

// entry is one value of a request field.
type entry struct{ field, value string }

func entries(single, list string, one string, many []string) []entry {
	var out []entry
	if one != "" {
		out = append(out, entry{single, one})
	}
	for _, v := range many {
		out = append(out, entry{list, v})
	}
	return out
}

// parseAddressing parses the subnets, gateways, ranges, aux addresses and
// families of req and, for each family whose subnet is given, checks them
// together.
func parseAddressing(errs *fieldErrs, req api.NetworkCreate) addressing {
	a := addressing{fields: [2]familyFields{{"subnet", "gateway", "ip_range"}, {"subnet", "gateway", "ip_range"}}}
	ok := [2]bool{true, true}
	// bad: an entry whose family is unknown failed to parse.
	bad := a.parseSubnets(errs, req, &ok)
	bad = a.parseGateways(errs, req, &ok) || bad
	bad = a.parseRanges(errs, req, &ok) || bad
	auxOK := a.addAux(errs, req)
	a.pickFamilies(req)
	a.refuseAbsentFamilies(errs, &ok)
	a.checkFamilies(errs, ok, !bad && auxOK)
	return a
}

// parseSubnets parses the subnets of req, one per family. It reports
// whether an entry failed to parse, and clears ok of a family named twice.
func (a *addressing) parseSubnets(errs *fieldErrs, req api.NetworkCreate, ok *[2]bool) (bad bool) {
	for _, e := range entries("subnet", "subnets", req.Subnet, req.Subnets) {
		p, err := netip.ParsePrefix(e.value)
		if err != nil {
			errs.add(e.field, e.value, "not a CIDR prefix", "CIDR notation like 10.240.0.0/24 or fd00:1::/64")
			bad = true
			continue
		}
		f := familyOf(p.Addr())
		if prev := a.cfg[f].Subnet; prev.IsValid() {
			errs.add(e.field, e.value, "a second "+familyName[f]+" subnet (the first is "+prev.String()+")", "one subnet per address family")
			ok[f] = false
			continue
		}
		a.cfg[f].Subnet, a.fields[f].subnet = p, e.field
	}
	return bad
}

// parseGateways is parseSubnets for the gateways.
func (a *addressing) parseGateways(errs *fieldErrs, req api.NetworkCreate, ok *[2]bool) (bad bool) {
	for _, e := range entries("gateway", "gateways", req.Gateway, req.Gateways) {
		g, err := netip.ParseAddr(e.value)
		if err != nil {
			errs.add(e.field, e.value, "not an IP address", "an IP address inside the subnet of its family")
			bad = true
			continue
		}
		f := familyOf(g)
		if prev := a.cfg[f].Gateway; prev.IsValid() {
			errs.add(e.field, e.value, "a second "+familyName[f]+" gateway (the first is "+prev.String()+")", "one gateway per address family")
			ok[f] = false
			continue
		}
		a.cfg[f].Gateway, a.fields[f].gateway = g, e.field
	}
	return bad
}

// parseRanges is parseSubnets for the ranges.
func (a *addressing) parseRanges(errs *fieldErrs, req api.NetworkCreate, ok *[2]bool) (bad bool) {
	for _, e := range entries("ip_range", "ip_ranges", req.IPRange, req.IPRanges) {
		p, err := netip.ParsePrefix(e.value)
		if err != nil {
			errs.add(e.field, e.value, "not a CIDR prefix", "CIDR notation inside the subnet of its family, like 10.240.0.128/25")
			bad = true
			continue
		}
		f := familyOf(p.Addr())
		if prev := a.cfg[f].IPRange; prev.IsValid() {
			errs.add(e.field, e.value, "a second "+familyName[f]+" range (the first is "+prev.String()+")", "one range per address family")
			ok[f] = false
			continue
		}
		a.cfg[f].IPRange, a.fields[f].ipRange = p, e.field
	}
	return bad
}

// addAux parses the aux addresses of req and sorts them by family. It
// reports whether they all parsed.
func (a *addressing) addAux(errs *fieldErrs, req api.NetworkCreate) bool {
	aux, auxOK := parseAux(errs, req.AuxAddresses)
	a.aux = aux
	for name, addr := range aux {
		f := familyOf(addr)
		if a.cfg[f].Aux == nil {
			a.cfg[f].Aux = map[string]netip.Addr{}
		}
		a.cfg[f].Aux[name] = addr
	}
	return auxOK
}

// pickFamilies sets the families the network has, from `ipv4`, `ipv6`
// and the subnets named (see the comment at the top of the file).
func (a *addressing) pickFamilies(req api.NetworkCreate) {
	named4, named6 := a.cfg[fam4].Subnet.IsValid(), a.cfg[fam6].Subnet.IsValid()
	a.has[fam4] = req.IPv4 == nil && !(named6 && !named4 && !req.IPv6) || req.IPv4 != nil && *req.IPv4
	a.has[fam6] = req.IPv6 || named6 || req.IPv4 != nil && !*req.IPv4
}

// refuseAbsentFamilies refuses what the request names of a family the
// network does not have, and clears ok of that family.
func (a *addressing) refuseAbsentFamilies(errs *fieldErrs, ok *[2]bool) {
	if !a.has[fam4] {
		a.refuseAbsent4(errs)
		ok[fam4] = false
	}
	if !a.has[fam6] {
		a.refuseAbsent6(errs)
		ok[fam6] = false
	}
	for f := range a.has {
		if a.has[f] {
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(a.cfg[f].Aux)) {
			errs.add("aux_addresses", name+"="+a.cfg[f].Aux[name].String(), "an "+familyName[f]+" address on a network without "+familyName[f], "addresses of the network's families")
		}
	}
}

// refuseAbsent4 refuses the IPv4 subnet, gateway and range of a network
// without IPv4.
func (a *addressing) refuseAbsent4(errs *fieldErrs) {
	if a.cfg[fam4].Subnet.IsValid() {
		errs.add(a.fields[fam4].subnet, a.cfg[fam4].Subnet.String(), "an IPv4 subnet on a network with `ipv4` false", "no IPv4 subnet, or `ipv4` true")
	}
	if g := a.cfg[fam4].Gateway; g.IsValid() {
		errs.add(a.fields[fam4].gateway, g.String(), "an IPv4 gateway on a network without IPv4", "an IPv6 gateway")
	}
	if r := a.cfg[fam4].IPRange; r.IsValid() {
		errs.add(a.fields[fam4].ipRange, r.String(), "an IPv4 range on a network without IPv4", "an IPv6 range")
	}
}

// refuseAbsent6 refuses the IPv6 gateway and range of a network without
// IPv6 (naming an IPv6 subnet gives a network IPv6).
func (a *addressing) refuseAbsent6(errs *fieldErrs) {
	if g := a.cfg[fam6].Gateway; g.IsValid() {
		errs.add(a.fields[fam6].gateway, g.String(), "an IPv6 gateway on a network without IPv6", "an IPv4 gateway, or `ipv6` true")
	}
	if r := a.cfg[fam6].IPRange; r.IsValid() {
		errs.add(a.fields[fam6].ipRange, r.String(), "an IPv6 range on a network without IPv6", "an IPv4 range, or `ipv6` true")
	}
}

// checkFamilies checks, for each family the network has whose entries
// all parsed (parsed) and whose subnet is named once (ok), the subnet
// against reserved ranges and the subnet, gateway, range and aux
// addresses together.
func (a *addressing) checkFamilies(errs *fieldErrs, ok [2]bool, parsed bool) {
	for f := range a.has {
		if !a.has[f] || !ok[f] || !parsed || !a.cfg[f].Subnet.IsValid() {
			continue
		}
		if why := reservedSubnet(a.cfg[f].Subnet); why != "" {
			errs.add(a.fields[f].subnet, a.cfg[f].Subnet.String(), why, "a private range such as 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or fd00::/8")
			continue
		}
		_, poolErrs := newPool(a.cfg[f], a.fields[f])
		*errs = append(*errs, poolErrs...)
	}
}
