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
	rec, cfg, errs := parseNetworkCreate(req)
	if d.cfg.Rootless && req.HostInterface != "" {
		rootlessHostInterface(&errs, req)
	}
	if err := api.Validate(req, errs); err != nil {
		return store.Network{}, err
	}
	if d.networks[req.Name] != nil {
		return store.Network{}, conflict("network %q already exists", req.Name)
	}
	if cfg.Subnet.IsValid() {
		if other := d.overlapping(cfg.Subnet); other != nil {
			return store.Network{}, conflict("subnet %s overlaps network %q (%s): choose a subnet no other network uses", cfg.Subnet, other.rec.Name, other.rec.Subnet)
		}
		if err := d.checkHostOverlap(cfg.Subnet); err != nil {
			return store.Network{}, err
		}
		if err := d.checkRoutedBy(cfg.Subnet); err != nil {
			return store.Network{}, err
		}
	} else {
		p, err := d.pickSubnet()
		if err != nil {
			return store.Network{}, err
		}
		cfg.Subnet = p
	}
	// Checked again for a subnet picked here; a subnet from the
	// request passed these checks in parseNetworkCreate.
	pool, errs := newPool(cfg)
	checkHostLoopbackOutside(&errs, req, rec.HostLoopback, cfg.Subnet)
	if err := api.Validate(req, errs); err != nil {
		return store.Network{}, err
	}
	rec.Subnet, rec.Gateway, rec.IPRange, rec.AuxAddresses = pool.Subnet(), pool.Gateway(), pool.IPRange(), cfg.Aux
	rec.GatewayMAC = dockerMAC(rec.Gateway)
	if err := d.finishDirect(req, &rec); err != nil {
		return store.Network{}, err
	}
	return rec, nil
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
func parseNetworkCreate(req api.NetworkCreate) (store.Network, ipam.Config, fieldErrs) {
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
	cfg := parseAddressing(&errs, req)
	rec.HostLoopback = parseHostLoopback(&errs, req)
	if cfg.Subnet.IsValid() {
		checkHostLoopbackOutside(&errs, req, rec.HostLoopback, cfg.Subnet)
	}
	rec.Labels = parseLabels(&errs, req.Labels)
	rec.HostInterface, rec.Routes = parseDirect(&errs, req, cfg.Subnet)
	rec.Direct = parseRouting(&errs, req, cfg.Subnet)
	t, inner := parseTunnel(&errs, req, cfg.Subnet)
	rec.Tunnel = t
	if t != nil && req.MTU == 0 {
		rec.MTU = inner
	}
	return rec, cfg, errs
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

// parseAddressing parses the subnet, gateway, ip_range and aux_addresses
// of req and, when the subnet is given, checks them together.
func parseAddressing(errs *fieldErrs, req api.NetworkCreate) ipam.Config {
	var cfg ipam.Config
	ok := true
	if req.Subnet != "" {
		p, err := netip.ParsePrefix(req.Subnet)
		if err != nil {
			errs.add("subnet", req.Subnet, "not a CIDR prefix", "CIDR notation like 10.240.0.0/24")
			ok = false
		}
		cfg.Subnet = p
	}
	if req.Gateway != "" {
		a, err := netip.ParseAddr(req.Gateway)
		if err != nil {
			errs.add("gateway", req.Gateway, "not an IP address", "an IP address inside `subnet`")
			ok = false
		}
		cfg.Gateway = a
	}
	if req.IPRange != "" {
		p, err := netip.ParsePrefix(req.IPRange)
		if err != nil {
			errs.add("ip_range", req.IPRange, "not a CIDR prefix", "CIDR notation inside `subnet`, like 10.240.0.128/25")
			ok = false
		}
		cfg.IPRange = p
	}
	aux, auxOK := parseAux(errs, req.AuxAddresses)
	cfg.Aux = aux
	if ok && cfg.Subnet.IsValid() {
		if why := reservedSubnet(cfg.Subnet); why != "" {
			errs.add("subnet", req.Subnet, why, "a private range such as 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or fd00::/8")
			ok = false
		}
	}
	if ok && auxOK && cfg.Subnet.IsValid() {
		_, poolErrs := newPool(cfg)
		*errs = append(*errs, poolErrs...)
	}
	return cfg
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
// addition makes the pool fail.
func newPool(cfg ipam.Config) (*ipam.Pool, fieldErrs) {
	pool, err := ipam.New(cfg)
	if err == nil {
		return pool, nil
	}
	steps := []struct {
		field, value string
		cfg          ipam.Config
	}{
		{"subnet", cfg.Subnet.String(), ipam.Config{Subnet: cfg.Subnet}},
		{"gateway", cfg.Gateway.String(), ipam.Config{Subnet: cfg.Subnet, Gateway: cfg.Gateway}},
		{"ip_range", cfg.IPRange.String(), ipam.Config{Subnet: cfg.Subnet, Gateway: cfg.Gateway, IPRange: cfg.IPRange}},
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
