package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/store"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tunnel"
)

// Checking the tunnel fields of a `network create` request (see
// netcheck.go for the rules every problem follows).

// tunnelOnly are the fields that mean something only with a tunnel, in
// the order of api.NetworkCreate.
func tunnelOnly(req api.NetworkCreate) []struct {
	field string
	set   bool
} {
	return []struct {
		field string
		set   bool
	}{
		{"vni", req.VNI != nil}, {"tunnel_listen", req.TunnelListen != ""}, {"peers", len(req.Peers) > 0},
		{"key_file", req.KeyFile != ""}, {"cluster", req.Cluster != ""}, {"subnet_len", req.SubnetLen != 0},
		{"subnet_len6", req.SubnetLen6 != 0}, {"lease_ttl", req.LeaseTTL != 0}, {"underlay_mtu", req.UnderlayMTU != 0},
		{"etcd_cacert", req.EtcdCACert != ""}, {"etcd_cert", req.EtcdCert != ""}, {"etcd_key", req.EtcdKey != ""},
		{"etcd_user", req.EtcdUser != ""}, {"etcd_password_file", req.EtcdPasswordFile != ""},
	}
}

// parseTunnel checks the tunnel fields of req for a network on subnet
// (invalid if the request gave none, or a bad one) and, if dual-stack,
// subnet6 beside it. It returns the tunnel, nil if the request asks for
// none, and the inner MTU the tunnel carries.
func parseTunnel(errs *fieldErrs, req api.NetworkCreate, subnet, subnet6 netip.Prefix) (*store.Tunnel, int) {
	if req.Tunnel == "" {
		for _, f := range tunnelOnly(req) {
			if f.set && !(req.Routing == "direct" && clusterField(f.field)) {
				errs.add(f.field, "", "given without `tunnel`", "`tunnel` vxlan or secure, or no `"+f.field+"`")
			}
		}
		return nil, 0
	}
	mode, ok := tunnelMode(req.Tunnel)
	if !ok {
		errs.add("tunnel", req.Tunnel, "unknown tunnel mode", "vxlan or secure")
	}
	if req.Subnet == "" && len(req.Subnets) == 0 {
		errs.add("subnet", "", "missing: a network with a `tunnel` needs one", "the same subnet on every host, like 10.250.0.0/16")
	}
	t := &store.Tunnel{Mode: req.Tunnel, VNI: DefaultVNI, UnderlayMTU: req.UnderlayMTU}
	parseTunnelWire(errs, req, mode, t)
	parseTunnelKey(errs, req, mode, ok, t)
	parseTunnelCluster(errs, req, subnet, subnet6, t)
	return t, tunnelMTU(mode, t)
}

// parseTunnelWire checks the VNI, the underlay's MTU and the addresses.
func parseTunnelWire(errs *fieldErrs, req api.NetworkCreate, mode tunnel.Mode, t *store.Tunnel) {
	parseVNI(errs, req, t)
	parseUnderlayMTU(errs, req, t)
	port := mode.DefaultPort()
	parseTunnelListen(errs, req, port, t)
	parseTunnelPeers(errs, req, port, listenFamily(req, t), t)
}

// parseVNI checks the VNI, if the request gives one.
func parseVNI(errs *fieldErrs, req api.NetworkCreate, t *store.Tunnel) {
	if req.VNI == nil {
		return
	}
	if *req.VNI < 0 || *req.VNI > tunnel.MaxVNI {
		errs.add("vni", strconv.Itoa(*req.VNI), "out of range", "0-"+strconv.Itoa(tunnel.MaxVNI))
		return
	}
	t.VNI = uint32(*req.VNI)
}

// parseUnderlayMTU checks the underlay's MTU; 0, or a bad one, is the
// default.
func parseUnderlayMTU(errs *fieldErrs, req api.NetworkCreate, t *store.Tunnel) {
	if t.UnderlayMTU == 0 {
		t.UnderlayMTU = vswitch.DefaultMTU
	}
	if t.UnderlayMTU < 576 || t.UnderlayMTU > 65535 {
		errs.add("underlay_mtu", strconv.Itoa(req.UnderlayMTU), "out of range", "576-65535")
		t.UnderlayMTU = vswitch.DefaultMTU
	}
}

// parseTunnelListen checks the address the tunnel listens on; without
// one it listens on every IPv4 address, on the mode's port.
func parseTunnelListen(errs *fieldErrs, req api.NetworkCreate, port uint16, t *store.Tunnel) {
	ps := strconv.Itoa(int(port))
	t.Listen = netip.AddrPortFrom(netip.IPv4Unspecified(), port)
	if req.TunnelListen == "" {
		return
	}
	ap, err := parseHostPort(req.TunnelListen, port)
	switch {
	case err != nil:
		errs.add("tunnel_listen", req.TunnelListen, "not an address", "IP:PORT, like 192.0.2.1:"+ps+" or [fd00::1]:"+ps)
	case needsZone(ap.Addr()):
		errs.add("tunnel_listen", req.TunnelListen, "a link-local address without its interface",
			"the zone after %, like [fe80::1%eth0]:"+ps+", or a global address")
	}
	t.Listen = ap
}

// listenFamily is the one family (4 or 6) a socket listening on the
// address the request gives takes; 0: both.
func listenFamily(req api.NetworkCreate, t *store.Tunnel) int {
	a := t.Listen.Addr()
	if !a.IsValid() || (req.TunnelListen == "" && a.IsUnspecified()) {
		return 0
	}
	switch {
	case a.Is4():
		return 4
	case !a.IsUnspecified():
		return 6
	}
	return 0
}

// parseTunnelPeers checks the peers, each once, against the family the
// tunnel listens on. An IPv6 peer without `tunnel_listen` makes the
// tunnel listen on every address of both families.
func parseTunnelPeers(errs *fieldErrs, req api.NetworkCreate, port uint16, listenFam int, t *store.Tunnel) {
	for _, p := range req.Peers {
		ap, ok := parseTunnelPeer(errs, req, p, port, listenFam)
		if !ok {
			continue
		}
		if req.TunnelListen == "" && familyNum(ap.Addr()) == 6 {
			// An IPv6 peer without an address to listen on: every
			// address of both families.
			t.Listen = netip.AddrPortFrom(netip.IPv6Unspecified(), port)
		}
		if !slices.Contains(t.Peers, ap) {
			t.Peers = append(t.Peers, ap)
		}
	}
}

// parseTunnelPeer parses one peer p, and refuses it if it is not another
// host's address, a link-local one without its zone, or of a family the
// tunnel does not listen on (listenFam, 0 for both).
func parseTunnelPeer(errs *fieldErrs, req api.NetworkCreate, p string, port uint16, listenFam int) (netip.AddrPort, bool) {
	ps := strconv.Itoa(int(port))
	ap, err := parseHostPort(p, port)
	if err != nil || ap.Addr().IsUnspecified() {
		errs.add("peers", p, "not another host's address", "IP[:PORT], like 192.0.2.2:"+ps+" or [fd00::2]:"+ps)
		return ap, false
	}
	if needsZone(ap.Addr()) {
		errs.add("peers", p, "a link-local address without its interface", "the zone after %, like [fe80::2%eth0]:"+ps+", or a global address")
		return ap, false
	}
	if fam := familyNum(ap.Addr()); listenFam != 0 && fam != listenFam {
		errs.add("peers", p, fmt.Sprintf("an IPv%d peer, but `tunnel_listen` %s takes IPv%d peers only", fam, req.TunnelListen, listenFam),
			fmt.Sprintf("an IPv%d peer, or `tunnel_listen` [::]:%s for both families", listenFam, ps))
		return ap, false
	}
	return ap, true
}

// familyNum is 4 or 6.
func familyNum(a netip.Addr) int {
	if a.Unmap().Is4() {
		return 4
	}
	return 6
}

// needsZone reports whether a is an IPv6 link-local address without the
// interface it is on.
func needsZone(a netip.Addr) bool {
	return a.Is6() && a.IsLinkLocalUnicast() && a.Zone() == ""
}

// underlay6 reports whether t's tunnel runs over IPv6: it listens on an
// IPv6 address, or has an IPv6 peer. Its inner MTU is then 20 bytes less.
func underlay6(t *store.Tunnel) bool {
	if a := t.Listen.Addr(); a.Is6() && !a.IsUnspecified() {
		return true
	}
	for _, p := range t.Peers {
		if familyNum(p.Addr()) == 6 {
			return true
		}
	}
	return false
}

// parseTunnelKey checks the key file against the mode (known says
// whether the mode is one).
func parseTunnelKey(errs *fieldErrs, req api.NetworkCreate, mode tunnel.Mode, known bool, t *store.Tunnel) {
	switch {
	case !known:
	case mode == tunnel.ModeSecure && req.KeyFile == "":
		errs.add("key_file", "", "missing: a secure tunnel needs the hosts' shared key",
			"a file with 32 random bytes in base64, like the output of head -c 32 /dev/urandom | base64")
	case mode == tunnel.ModeVXLAN && req.KeyFile != "":
		errs.add("key_file", req.KeyFile, "only for `tunnel` secure: plain VXLAN is not encrypted", "no `key_file`, or `tunnel` secure")
	case req.KeyFile != "":
		if _, err := tunnel.LoadKey(req.KeyFile); err != nil {
			errs.add("key_file", req.KeyFile, err.Error(), "")
		}
		t.KeyFile = req.KeyFile
	}
}

// parseTunnelCluster checks the cluster, the lease lengths and TTL.
func parseTunnelCluster(errs *fieldErrs, req api.NetworkCreate, subnet, subnet6 netip.Prefix, t *store.Tunnel) {
	if req.Cluster == "" {
		refuseClusterOnly(errs, req)
		return
	}
	eps, ok := parseCluster(req.Cluster)
	if !ok {
		errs.add("cluster", req.Cluster, "not a list of etcd endpoints",
			"etcd://HOST:PORT[,HOST:PORT...], like etcd://127.0.0.1:2379, or etcds://… for TLS")
	}
	parseEtcdSecrets(errs, req, ok && strings.HasPrefix(req.Cluster, "etcds://"), t)
	checkClusterAddrs(errs, req, t)
	t.Cluster = eps
	if req.LeaseTTL < 0 {
		errs.add("lease_ttl", strconv.Itoa(req.LeaseTTL), "negative", "a positive number of seconds (0: 24 hours)")
	}
	t.LeaseTTL = req.LeaseTTL
	parseSubnetLen(errs, req, subnet, t)
	parseSubnetLen6(errs, req, subnet, subnet6, t)
	var id [16]byte
	rand.Read(id[:])
	t.HostID = hex.EncodeToString(id[:])
}

// refuseClusterOnly refuses the fields given that mean something only
// with `cluster`.
func refuseClusterOnly(errs *fieldErrs, req api.NetworkCreate) {
	for _, f := range clusterOnly(req) {
		if f.value != "" {
			errs.add(f.field, f.value, "given without `cluster`", "`cluster`, or no `"+f.field+"`")
		}
	}
}

// checkClusterAddrs checks the addresses a cluster needs and excludes:
// this host's own tunnel address is needed; ranges are the leases'.
func checkClusterAddrs(errs *fieldErrs, req api.NetworkCreate, t *store.Tunnel) {
	if req.TunnelListen == "" || t.Listen.Addr().IsUnspecified() {
		errs.add("tunnel_listen", req.TunnelListen, "needed with `cluster`, as this host's own address: the other hosts send to it",
			"this host's IP:PORT, like 192.0.2.1:"+strconv.Itoa(int(t.Listen.Port())))
	}
	if req.IPRange != "" {
		errs.add("ip_range", req.IPRange, "excludes `cluster`: with a cluster, each host's range is its lease", "no `ip_range`")
	}
	for _, r := range req.IPRanges {
		errs.add("ip_ranges", r, "excludes `cluster`: with a cluster, each host's range is its lease", "no `ip_ranges`")
	}
}

// parseSubnetLen checks the length of a host's lease inside subnet; 0
// is the default.
func parseSubnetLen(errs *fieldErrs, req api.NetworkCreate, subnet netip.Prefix, t *store.Tunnel) {
	t.SubnetLen = req.SubnetLen
	if t.SubnetLen == 0 {
		t.SubnetLen = DefaultSubnetLen
		if subnet.Addr().Is6() {
			t.SubnetLen = min(subnet.Bits()+DefaultSubnetBits6, 126)
		}
	}
	if subnet.IsValid() && (t.SubnetLen <= subnet.Bits() || t.SubnetLen > subnet.Addr().BitLen()-2) {
		errs.add("subnet_len", strconv.Itoa(t.SubnetLen), "not a host lease inside "+subnet.String(),
			"a prefix length from "+strconv.Itoa(subnet.Bits()+1)+" to "+strconv.Itoa(subnet.Addr().BitLen()-2))
	}
}

// parseSubnetLen6 checks the length of a host's IPv6 lease inside
// subnet6 of a dual-stack network, and refuses one on any other network.
func parseSubnetLen6(errs *fieldErrs, req api.NetworkCreate, subnet, subnet6 netip.Prefix, t *store.Tunnel) {
	switch {
	case subnet6.IsValid() && subnet.Addr().Is4():
		// Dual stack: IPv6 lease i goes with IPv4 lease i; by default
		// the IPv6 subnet is cut into as many.
		t.SubnetLen6 = req.SubnetLen6
		if t.SubnetLen6 == 0 {
			t.SubnetLen6 = subnet6.Bits() + t.SubnetLen - subnet.Bits()
		}
		if t.SubnetLen6 <= subnet6.Bits() || t.SubnetLen6 > 126 {
			errs.add("subnet_len6", strconv.Itoa(t.SubnetLen6), "not a host lease inside "+subnet6.String(),
				"a prefix length from "+strconv.Itoa(subnet6.Bits()+1)+" to 126 (as many IPv6 leases as IPv4 ones: "+
					strconv.Itoa(subnet6.Bits()+t.SubnetLen-subnet.Bits())+")")
		}
	case req.SubnetLen6 != 0:
		errs.add("subnet_len6", strconv.Itoa(req.SubnetLen6), "only for a dual-stack network", "an IPv4 and an IPv6 subnet, or no `subnet_len6`")
	}
}

// clusterOnly are the fields that mean something only with `cluster`.
func clusterOnly(req api.NetworkCreate) []struct{ field, value string } {
	n := func(i int) string {
		if i == 0 {
			return ""
		}
		return strconv.Itoa(i)
	}
	return []struct{ field, value string }{
		{"subnet_len", n(req.SubnetLen)}, {"subnet_len6", n(req.SubnetLen6)}, {"lease_ttl", n(req.LeaseTTL)},
		{"etcd_cacert", req.EtcdCACert}, {"etcd_cert", req.EtcdCert}, {"etcd_key", req.EtcdKey},
		{"etcd_user", req.EtcdUser}, {"etcd_password_file", req.EtcdPasswordFile},
	}
}

// parseEtcdSecrets checks the TLS files (only with an etcds:// cluster,
// secure says) and the user and password file, which go together.
func parseEtcdSecrets(errs *fieldErrs, req api.NetworkCreate, secure bool, t *store.Tunnel) {
	files := []struct{ field, path string }{
		{"etcd_cacert", req.EtcdCACert}, {"etcd_cert", req.EtcdCert}, {"etcd_key", req.EtcdKey},
	}
	for _, f := range files {
		switch {
		case f.path == "":
		case !secure:
			errs.add(f.field, f.path, "only with TLS to etcd", "`cluster` etcds://HOST:PORT, or no `"+f.field+"`")
		default:
			if _, err := os.Stat(f.path); err != nil {
				errs.add(f.field, f.path, "cannot be read", "a PEM file on the daemon's host")
			}
		}
	}
	if (req.EtcdCert == "") != (req.EtcdKey == "") {
		errs.add("etcd_key", req.EtcdKey, "the client certificate and its key go together", "both `etcd_cert` and `etcd_key`, or neither")
	}
	switch {
	case req.EtcdUser != "" && req.EtcdPasswordFile == "":
		errs.add("etcd_password_file", "", "missing: `etcd_user` needs its password", "a file holding the password, on the daemon's host")
	case req.EtcdUser == "" && req.EtcdPasswordFile != "":
		errs.add("etcd_user", "", "missing: `etcd_password_file` is the password of a user", "the etcd user's name, like root")
	case req.EtcdPasswordFile != "":
		if _, err := readPassword(req.EtcdPasswordFile); err != nil {
			errs.add("etcd_password_file", req.EtcdPasswordFile, err.Error(), "a file whose first line is the password")
		}
	}
	t.EtcdCACert, t.EtcdCert, t.EtcdKey = req.EtcdCACert, req.EtcdCert, req.EtcdKey
	t.EtcdUser, t.EtcdPasswordFile = req.EtcdUser, req.EtcdPasswordFile
}

// clusterField reports whether a tunnelOnly field belongs to the
// cluster, which a network with routing "direct" has too.
func clusterField(field string) bool {
	return field == "cluster" || field == "subnet_len" || field == "lease_ttl" || strings.HasPrefix(field, "etcd_")
}
