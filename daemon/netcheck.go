package daemon

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/ipam"
	"github.com/switchyard-net/switchyard/daemon/store"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// Checking `network create` requests. A problem names the field of
// api.NetworkCreate by its JSON name (api.FieldError), never a flag of
// the CLI, which maps fields to its flags when it prints them. Every
// problem of a request comes back at once, in the order of the request's
// fields (api.Validate), so the same request always gets the same answer.
// Conflicts with what exists (a name taken, an overlapping subnet) are
// looked at only once the request itself is valid.

// fieldErrs collects the problems of one request.
type fieldErrs []api.FieldError

func (f *fieldErrs) add(field, value, problem, accepted string) {
	*f = append(*f, api.FieldError{Field: field, Value: value, Problem: problem, Accepted: accepted})
}

// newNetworkRecord turns a request into a validated record.
func (d *Daemon) newNetworkRecord(req api.NetworkCreate) (store.Network, error) {
	rec, a, errs := parseNetworkCreate(req)
	if d.cfg.Rootless && req.HostInterface != "" {
		rootlessHostInterface(&errs, req)
	}
	if err := api.Validate(req, errs); err != nil {
		return store.Network{}, err
	}
	if d.networks[req.Name] != nil {
		return store.Network{}, conflict("network %q already exists", req.Name)
	}
	var pools [2]*ipam.Pool
	for f := range a.has {
		if !a.has[f] {
			continue
		}
		cfg := &a.cfg[f]
		if cfg.Subnet.IsValid() {
			if other := d.overlapping(cfg.Subnet); other != nil {
				return store.Network{}, conflict("subnet %s overlaps network %q (%s): choose a subnet no other network uses",
					cfg.Subnet, other.rec.Name, joinPrefixes(other.rec.Subnets()))
			}
			if err := d.checkHostOverlap(cfg.Subnet); err != nil {
				return store.Network{}, err
			}
			if err := d.checkRoutedBy(cfg.Subnet); err != nil {
				return store.Network{}, err
			}
		} else {
			p, err := d.pickSubnet(f)
			if err != nil {
				return store.Network{}, err
			}
			cfg.Subnet = p
		}
		// Checked again for a subnet picked here; a subnet from the
		// request passed these checks in parseNetworkCreate.
		pool, errs := newPool(*cfg, a.fields[f])
		if f == fam4 {
			checkHostLoopbackOutside(&errs, req, rec.HostLoopback, cfg.Subnet)
		}
		if err := api.Validate(req, errs); err != nil {
			return store.Network{}, err
		}
		pools[f] = pool
	}
	first := pools[a.primary()]
	rec.Subnet, rec.Gateway, rec.IPRange, rec.AuxAddresses = first.Subnet(), first.Gateway(), first.IPRange(), a.aux
	if pools[fam4] != nil && pools[fam6] != nil {
		rec.Subnet6, rec.Gateway6, rec.IPRange6 = pools[fam6].Subnet(), pools[fam6].Gateway(), pools[fam6].IPRange()
	}
	rec.GatewayMAC = dockerMAC(rec.Gateway)
	if err := d.finishDirect(req, &rec); err != nil {
		return store.Network{}, err
	}
	return rec, nil
}

// joinPrefixes renders prefixes as "a, b".
func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// checkHostOverlap refuses a subnet that overlaps the host's own
// addresses or routes (other than the default route), as Docker refuses
// one that overlaps a host route: the host could no longer reach those
// addresses, and containers would shadow them.
func (d *Daemon) checkHostOverlap(subnet netip.Prefix) error {
	host, err := d.cfg.HostPrefixes()
	if err != nil {
		return err
	}
	for _, h := range host {
		if h.Overlaps(subnet) {
			return conflict("subnet %s overlaps %s, an address or route of the host: choose a subnet the host does not use", subnet, h)
		}
	}
	return nil
}

// parseNetworkCreate checks everything a request says about itself. The
// address pool's config has no subnet if the request names none.
func parseNetworkCreate(req api.NetworkCreate) (store.Network, addressing, fieldErrs) {
	var errs fieldErrs
	rec := store.Network{Name: req.Name, MTU: req.MTU, ICC: true, Internal: req.Internal, Created: time.Now().UTC()}
	if req.ICC != nil {
		rec.ICC = *req.ICC
	}
	if !validName(req.Name) {
		errs.add("name", req.Name, "not a valid network name", nameRule)
	}
	if rec.MTU == 0 {
		rec.MTU = vswitch.DefaultMTU
	}
	if rec.MTU < minMTU || rec.MTU > maxMTU {
		errs.add("mtu", strconv.Itoa(req.MTU), "out of range", strconv.Itoa(minMTU)+"-"+strconv.Itoa(maxMTU))
	}
	a := parseAddressing(&errs, req)
	if req.SLAAC != nil {
		if !a.has[fam6] {
			errs.add("slaac", strconv.FormatBool(*req.SLAAC), "SLAAC is an IPv6 setting and the network has no IPv6", "an IPv6 network: `ipv6` true or an IPv6 subnet in `subnets`")
		}
		rec.NoSLAAC = !*req.SLAAC
	}
	rec.HostLoopback = parseHostLoopback(&errs, req)
	if s := a.cfg[fam4].Subnet; s.IsValid() {
		checkHostLoopbackOutside(&errs, req, rec.HostLoopback, s)
	}
	rec.Labels = parseLabels(&errs, req.Labels)
	rec.HostInterface, rec.Routes = parseDirect(&errs, req, a.cfg[a.primary()].Subnet)
	rec.Direct = parseRouting(&errs, req, a.cfg[a.primary()].Subnet)
	var subnet6 netip.Prefix
	if a.has[fam4] && a.has[fam6] {
		subnet6 = a.cfg[fam6].Subnet
	}
	t, inner := parseTunnel(&errs, req, a.cfg[a.primary()].Subnet, subnet6)
	if t != nil && (req.Subnet != "" || len(req.Subnets) > 0) && !a.named() {
		field, value, accepted := "ipv6", "true", "an IPv6 subnet in `subnets`"
		if !a.cfg[fam4].Subnet.IsValid() {
			field, value, accepted = "ipv4", "true", "an IPv4 subnet in `subnets`"
		}
		errs.add(field, value, "a `tunnel` network needs the subnet of each family named: every host would pick its own", accepted)
	}
	rec.Tunnel = t
	if t != nil && req.MTU == 0 {
		rec.MTU = inner
	}
	return rec, a, errs
}

// Limits of a network's labels.
const (
	maxLabels        = 16
	maxLabelKeyLen   = 128
	maxLabelValueLen = 256
)

// parseLabels checks a network's labels (api.NetworkCreate.Labels).
func parseLabels(errs *fieldErrs, labels map[string]string) map[string]string {
	if len(labels) == 0 {
		return nil
	}
	if len(labels) > maxLabels {
		errs.add("labels", strconv.Itoa(len(labels))+" labels", "too many", "at most "+strconv.Itoa(maxLabels))
		return nil
	}
	keys := slices.Sorted(maps.Keys(labels))
	for _, k := range keys {
		if k == "" || len(k) > maxLabelKeyLen || strings.TrimFunc(k, isLabelKeyRune) != "" {
			errs.add("labels", k, "not a label key", "1-128 letters, digits, '.', '_', '-' or '/'")
		} else if len(labels[k]) > maxLabelValueLen {
			errs.add("labels", k+"="+labels[k][:16]+"…", "value too long", "at most 256 characters")
		}
	}
	return maps.Clone(labels)
}

func isLabelKeyRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' || r == '/'
}

// nameRule is what validName accepts, said for a person.
const nameRule = "letters, digits, '_', '.', '-', starting with a letter or digit, at most 64 characters"

// validName is Docker's rule for network and container names.
func validName(name string) bool {
	return namePattern.MatchString(name) && len(name) <= 64
}

// reserved are ranges no network may use, with the reason.
var reserved = []struct {
	p   netip.Prefix
	why string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "overlaps 0.0.0.0/8, which means \"this host\" and cannot be routed"},
	{netip.MustParsePrefix("127.0.0.0/8"), "overlaps 127.0.0.0/8, the loopback range: packets for it never leave a host"},
	{netip.MustParsePrefix("169.254.0.0/16"), "overlaps 169.254.0.0/16, the link-local range"},
	{netip.MustParsePrefix("224.0.0.0/4"), "overlaps 224.0.0.0/4, the multicast range"},
	{netip.MustParsePrefix("240.0.0.0/4"), "overlaps 240.0.0.0/4, reserved (and its broadcast address)"},
	{netip.MustParsePrefix("::/127"), "overlaps ::/127, the unspecified and loopback addresses"},
	{netip.MustParsePrefix("fe80::/10"), "overlaps fe80::/10, the link-local range"},
	{netip.MustParsePrefix("ff00::/8"), "overlaps ff00::/8, the multicast range"},
}

// reservedSubnet says why p cannot be a network's subnet, or "".
func reservedSubnet(p netip.Prefix) string {
	for _, r := range reserved {
		if r.p.Addr().Is4() == p.Addr().Is4() && r.p.Overlaps(p) {
			return r.why
		}
	}
	return ""
}

// parseAux parses name=IP reservations.
func parseAux(errs *fieldErrs, kvs []string) (map[string]netip.Addr, bool) {
	if len(kvs) == 0 {
		return nil, true
	}
	aux := map[string]netip.Addr{}
	ok := true
	for _, kv := range kvs {
		name, addr, found := strings.Cut(kv, "=")
		a, err := netip.ParseAddr(addr)
		switch {
		case !found || name == "" || err != nil:
			errs.add("aux_addresses", kv, "not a name=IP pair", "name=IP, like router=10.240.0.2")
			ok = false
		case aux[name].IsValid():
			errs.add("aux_addresses", kv, "the name "+strconv.Quote(name)+" is given twice", "one address per name")
			ok = false
		default:
			aux[name] = a
		}
	}
	return aux, ok
}

// newPool makes the address pool for cfg, or says which field is wrong.
// ipam checks the subnet, the gateway, the range and the aux addresses in
// that order and stops at the first problem: the field is the first whose
// addition makes the pool fail. f names the fields the family's subnet,
// gateway and range came from.
func newPool(cfg ipam.Config, f familyFields) (*ipam.Pool, fieldErrs) {
	pool, err := ipam.New(cfg)
	if err == nil {
		return pool, nil
	}
	steps := []struct {
		field, value string
		cfg          ipam.Config
	}{
		{f.subnet, cfg.Subnet.String(), ipam.Config{Subnet: cfg.Subnet}},
		{f.gateway, cfg.Gateway.String(), ipam.Config{Subnet: cfg.Subnet, Gateway: cfg.Gateway}},
		{f.ipRange, cfg.IPRange.String(), ipam.Config{Subnet: cfg.Subnet, Gateway: cfg.Gateway, IPRange: cfg.IPRange}},
	}
	for _, s := range steps {
		if _, serr := ipam.New(s.cfg); serr != nil {
			return nil, fieldErrs{{Field: s.field, Value: s.value, Problem: serr.Error()}}
		}
	}
	return nil, fieldErrs{{Field: "aux_addresses", Problem: err.Error()}}
}

// parseHostLoopback returns the address that leads to the host's
// loopback, or the zero address if the request asks for none.
func parseHostLoopback(errs *fieldErrs, req api.NetworkCreate) netip.Addr {
	if !req.HostLoopback {
		if req.HostLoopbackAddr != "" {
			errs.add("host_loopback_addr", req.HostLoopbackAddr, "given without `host_loopback`", "`host_loopback` true, or no `host_loopback_addr`")
		}
		return netip.Addr{}
	}
	if req.Internal {
		errs.add("host_loopback", "", "excludes `internal`: an internal network reaches nothing outside it", "one of the two")
	}
	if req.HostLoopbackAddr == "" {
		return DefaultHostLoopback
	}
	a, err := netip.ParseAddr(req.HostLoopbackAddr)
	if err != nil || !a.Is4() || a.IsLoopback() || a.IsMulticast() || a.IsUnspecified() {
		errs.add("host_loopback_addr", req.HostLoopbackAddr, "not an IPv4 unicast address",
			"an IPv4 unicast address outside `subnet` (default "+DefaultHostLoopback.String()+")")
		return netip.Addr{}
	}
	return a
}

// checkHostLoopbackOutside checks that the host-loopback address, if any,
// lies outside the network's subnet.
func checkHostLoopbackOutside(errs *fieldErrs, req api.NetworkCreate, hl netip.Addr, subnet netip.Prefix) {
	if !hl.IsValid() || !subnet.Contains(hl) {
		return
	}
	if req.HostLoopbackAddr != "" {
		errs.add("host_loopback_addr", req.HostLoopbackAddr, "inside the network's subnet "+subnet.String(), "an address outside it")
		return
	}
	errs.add("subnet", subnet.String(), "contains the host-loopback address "+hl.String(), "another subnet, or another `host_loopback_addr`")
}
