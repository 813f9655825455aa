package cluster

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/netip"
	"strconv"
	"strings"
)

// maxSubnetBits bounds how many subnets a network may be cut into (2^24),
// so that the search for a free one stays cheap.
const maxSubnetBits = 24

// space is a network range cut into subnets of one length.
type space struct {
	network   netip.Prefix
	subnetLen int
}

func newSpace(network netip.Prefix, subnetLen int) (space, error) {
	if !network.IsValid() {
		return space{}, fmt.Errorf("network CIDR not set: want a range like 10.240.0.0/16")
	}
	network = network.Masked()
	max := network.Addr().BitLen()
	if subnetLen <= network.Bits() || subnetLen > max {
		return space{}, fmt.Errorf("subnet length /%d for network %s: want a length between /%d and /%d", subnetLen, network, network.Bits()+1, max)
	}
	if subnetLen-network.Bits() > maxSubnetBits {
		return space{}, fmt.Errorf("subnet length /%d cuts %s into 2^%d subnets: want at most 2^%d (a length up to /%d)", subnetLen, network, subnetLen-network.Bits(), maxSubnetBits, network.Bits()+maxSubnetBits)
	}
	return space{network: network, subnetLen: subnetLen}, nil
}

// newSpace6 checks the IPv6 range of a dual-stack network whose IPv4
// range is cut as sp. A zero subnetLen cuts it into as many subnets as
// sp has (a /64 beside a /16 cut into /24s gives /72s).
func newSpace6(sp space, network netip.Prefix, subnetLen int) (space, error) {
	if !network.IsValid() || !network.Addr().Is6() || network.Addr().Is4In6() {
		return space{}, fmt.Errorf("IPv6 network CIDR %v: want an IPv6 range like fd00:1::/64 beside the IPv4 one", network)
	}
	if !sp.network.Addr().Is4() {
		return space{}, fmt.Errorf("IPv6 network CIDR %s beside %s: want the IPv4 range in NetworkCIDR and the IPv6 one in NetworkCIDR6", network, sp.network)
	}
	if subnetLen == 0 {
		subnetLen = network.Bits() + sp.subnetLen - sp.network.Bits()
	}
	if subnetLen > 126 {
		return space{}, fmt.Errorf("IPv6 subnet length /%d for network %s: want at most /126 (a larger IPv6 range, or a shorter IPv6 subnet length)", subnetLen, network)
	}
	return newSpace(network, subnetLen)
}

// count is the number of subnets.
func (s space) count() uint64 { return 1 << (s.subnetLen - s.network.Bits()) }

// subnet returns subnet number i.
func (s space) subnet(i uint64) netip.Prefix {
	a := s.network.Addr().As16()
	shift := uint(s.network.Addr().BitLen() - s.subnetLen) // host bits of a subnet
	if s.network.Addr().Is4() {
		base := binary.BigEndian.Uint32(a[12:])
		binary.BigEndian.PutUint32(a[12:], base+uint32(i<<shift))
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(a[12:])), s.subnetLen)
	}
	hi, lo := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
	var addHi, addLo uint64
	if shift >= 64 {
		addHi = i << (shift - 64)
	} else {
		addLo = i << shift
		if shift > 0 {
			addHi = i >> (64 - shift)
		}
	}
	lo2 := lo + addLo
	if lo2 < lo {
		hi++
	}
	binary.BigEndian.PutUint64(a[:8], hi+addHi)
	binary.BigEndian.PutUint64(a[8:], lo2)
	return netip.PrefixFrom(netip.AddrFrom16(a), s.subnetLen)
}

// index returns the number of subnet p, and false if p is not one of the
// space's subnets.
func (s space) index(p netip.Prefix) (uint64, bool) {
	if !p.IsValid() || p.Bits() != s.subnetLen || p.Masked() != p || !s.network.Contains(p.Addr()) {
		return 0, false
	}
	shift := uint(s.network.Addr().BitLen() - s.subnetLen)
	a, b := p.Addr().As16(), s.network.Addr().As16()
	if p.Addr().Is4() {
		return uint64(binary.BigEndian.Uint32(a[12:])-binary.BigEndian.Uint32(b[12:])) >> shift, true
	}
	hi := binary.BigEndian.Uint64(a[:8]) - binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(a[8:]) - binary.BigEndian.Uint64(b[8:])
	if binary.BigEndian.Uint64(a[8:]) < binary.BigEndian.Uint64(b[8:]) {
		hi--
	}
	if shift >= 64 {
		return hi >> (shift - 64), true
	}
	return lo>>shift | hi<<(64-shift), true
}

// start is where a host's search for a free subnet begins: a hash of its
// ID, so that each host tends to land on the same subnet and concurrent
// joiners spread out.
func (s space) start(hostID string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(hostID))
	return h.Sum64() % s.count()
}

// keys lays out the etcd keys of one network.
type keys struct {
	root    string // <prefix>/networks/<network>
	subnets string // root + "/subnets/"
}

func newKeys(prefix, network string) keys {
	root := strings.TrimSuffix(prefix, "/") + "/networks/" + network
	return keys{root: root, subnets: root + "/subnets/"}
}

func (k keys) config() string { return k.root + "/config" }

// subnet returns the key of subnet p: its CIDR with "-" for "/".
func (k keys) subnet(p netip.Prefix) string {
	return k.subnets + p.Addr().String() + "-" + strconv.Itoa(p.Bits())
}

// parseSubnet reverses subnet.
func (k keys) parseSubnet(key string) (netip.Prefix, bool) {
	rest, ok := strings.CutPrefix(key, k.subnets)
	if !ok {
		return netip.Prefix{}, false
	}
	i := strings.LastIndexByte(rest, '-')
	if i < 0 {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(rest[:i] + "/" + rest[i+1:])
	if err != nil || p.Masked() != p {
		return netip.Prefix{}, false
	}
	return p, true
}

// networkConfig is the value of the config key. Network6 and
// SubnetLen6 are a dual-stack network's IPv6 range and cut; a
// single-family network's config reads as it did before dual stack.
type networkConfig struct {
	Network    netip.Prefix `json:"network"`
	SubnetLen  int          `json:"subnetLen"`
	Network6   netip.Prefix `json:"network6,omitzero"`
	SubnetLen6 int          `json:"subnetLen6,omitempty"`
}

// String says how the ranges are cut: "10.1.0.0/16 cut into /24 and
// fd00:1::/64 cut into /72".
func (n networkConfig) String() string {
	s := fmt.Sprintf("%s cut into /%d", n.Network, n.SubnetLen)
	if n.Network6.IsValid() {
		s += fmt.Sprintf(" and %s cut into /%d", n.Network6, n.SubnetLen6)
	}
	return s
}

// leaseValue is the value of a subnet key. Subnet6 is the IPv6 subnet of
// a dual-stack lease, for the other hosts to read (it follows from the
// key's IPv4 subnet and the network's config).
type leaseValue struct {
	HostID     string         `json:"hostID"`
	PublicAddr netip.AddrPort `json:"publicAddr"`
	Subnet6    netip.Prefix   `json:"subnet6,omitzero"`
}

// value is the lease's subnet key's value.
func (l Lease) value() string {
	b, _ := json.Marshal(leaseValue{HostID: l.HostID, PublicAddr: l.PublicAddr, Subnet6: l.Subnet6}) // cannot fail: plain strings
	return string(b)
}

func parseLease(k keys, key string, value []byte) (Lease, bool) {
	p, ok := k.parseSubnet(key)
	if !ok {
		return Lease{}, false
	}
	var v leaseValue
	if err := json.Unmarshal(value, &v); err != nil || v.HostID == "" || !v.PublicAddr.IsValid() ||
		v.Subnet6.IsValid() && (!v.Subnet6.Addr().Is6() || v.Subnet6.Masked() != v.Subnet6) {
		return Lease{}, false
	}
	return Lease{Subnet: p, Subnet6: v.Subnet6, HostID: v.HostID, PublicAddr: v.PublicAddr}, true
}
