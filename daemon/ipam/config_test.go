package ipam_test

import (
	"math"
	"net/netip"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/ipam"
)

func TestNewDefaults(t *testing.T) {
	tests := []struct {
		name      string
		cfg       ipam.Config
		gateway   string
		ipRange   string
		free      uint64
		firstFree string
	}{
		{"IPv4 /24, default gateway", ipam.Config{Subnet: prefix("10.240.0.0/24")},
			"10.240.0.1", "10.240.0.0/24", 253, "10.240.0.2"},
		{"IPv4 /30, default gateway", ipam.Config{Subnet: prefix("10.240.0.0/30")},
			"10.240.0.1", "10.240.0.0/30", 1, "10.240.0.2"},
		{"IPv4 explicit gateway", ipam.Config{Subnet: prefix("10.240.0.0/24"), Gateway: addr("10.240.0.254")},
			"10.240.0.254", "10.240.0.0/24", 253, "10.240.0.1"},
		{"IPv4 gateway outside the ip-range", ipam.Config{Subnet: prefix("10.240.0.0/24"), IPRange: prefix("10.240.0.128/25")},
			"10.240.0.1", "10.240.0.128/25", 127, "10.240.0.128"},
		{"IPv6 /64, default gateway", ipam.Config{Subnet: prefix("fd00:1::/64")},
			"fd00:1::1", "fd00:1::/64", math.MaxUint64 - 1, "fd00:1::2"},
		{"IPv6 /126", ipam.Config{Subnet: prefix("fd00:1::/126")},
			"fd00:1::1", "fd00:1::/126", 2, "fd00:1::2"},
		{"IPv6 gateway on the last address (no broadcast in IPv6)",
			ipam.Config{Subnet: prefix("fd00:1::/120"), Gateway: addr("fd00:1::ff")},
			"fd00:1::ff", "fd00:1::/120", 254, "fd00:1::1"},
		{"IPv6 /48 range reports saturated Free", ipam.Config{Subnet: prefix("fd00:1::/48")},
			"fd00:1::1", "fd00:1::/48", math.MaxUint64, "fd00:1::2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, tt.cfg)
			if p.Subnet() != tt.cfg.Subnet {
				t.Errorf("Subnet() = %s, want %s", p.Subnet(), tt.cfg.Subnet)
			}
			if p.Gateway() != addr(tt.gateway) {
				t.Errorf("Gateway() = %s, want %s", p.Gateway(), tt.gateway)
			}
			if p.IPRange() != prefix(tt.ipRange) {
				t.Errorf("IPRange() = %s, want %s", p.IPRange(), tt.ipRange)
			}
			if p.Free() != tt.free {
				t.Errorf("Free() = %d, want %d", p.Free(), tt.free)
			}
			if p.InUse() != 0 {
				t.Errorf("InUse() = %d on a new pool", p.InUse())
			}
			mustAllocate(t, p, "ep", tt.firstFree)
		})
	}
}

func TestNewCopiesAux(t *testing.T) {
	aux := map[string]netip.Addr{"router": addr("10.240.0.2")}
	p := mustNew(t, ipam.Config{Subnet: prefix("10.240.0.0/29"), Aux: aux})
	aux["later"] = addr("10.240.0.3")
	mustAllocate(t, p, "ep", "10.240.0.3")
	got := p.Aux()
	if len(got) != 1 || got["router"] != addr("10.240.0.2") {
		t.Errorf("Aux() = %v, want map[router:10.240.0.2]", got)
	}
}

func TestNewErrors(t *testing.T) {
	sub := prefix("10.240.0.0/24")
	tests := []struct {
		name string
		cfg  ipam.Config
		is   error
		subs []string
	}{
		{"no subnet", ipam.Config{}, nil, []string{"no subnet", "10.240.0.0/24"}},
		{"subnet not masked", ipam.Config{Subnet: prefix("10.240.0.1/24")}, nil,
			[]string{"10.240.0.1/24", "host bits", "use 10.240.0.0/24"}},
		{"IPv6 subnet not masked", ipam.Config{Subnet: prefix("fd00:1::5/64")}, nil,
			[]string{"fd00:1::5/64", "use fd00:1::/64"}},
		{"IPv4-mapped subnet", ipam.Config{Subnet: prefix("::ffff:10.240.0.0/120")}, nil,
			[]string{"::ffff:10.240.0.0/120", "use 10.240.0.0/24"}},
		{"/31", ipam.Config{Subnet: prefix("10.240.0.0/31")}, nil,
			[]string{"10.240.0.0/31", "too small", "/30", "10.240.0.0/30"}},
		{"/32", ipam.Config{Subnet: prefix("10.240.0.7/32")}, nil,
			[]string{"10.240.0.7/32", "too small", "10.240.0.4/30"}},
		{"IPv6 /127", ipam.Config{Subnet: prefix("fd00:1::/127")}, nil,
			[]string{"fd00:1::/127", "too small", "fd00:1::/126"}},
		{"IPv6 /128", ipam.Config{Subnet: prefix("fd00:1::7/128")}, nil,
			[]string{"fd00:1::7/128", "too small", "fd00:1::4/126"}},
		{"gateway outside", ipam.Config{Subnet: sub, Gateway: addr("10.1.0.1")}, ipam.ErrOutside,
			[]string{"gateway 10.1.0.1", "10.240.0.0/24", "10.240.0.1 to 10.240.0.254"}},
		{"gateway is the network address", ipam.Config{Subnet: sub, Gateway: addr("10.240.0.0")}, ipam.ErrReserved,
			[]string{"gateway 10.240.0.0", "network address of 10.240.0.0/24", "10.240.0.1 to 10.240.0.254"}},
		{"gateway is the broadcast address", ipam.Config{Subnet: sub, Gateway: addr("10.240.0.255")}, ipam.ErrReserved,
			[]string{"gateway 10.240.0.255", "broadcast address of 10.240.0.0/24"}},
		{"IPv6 gateway is the subnet-router anycast address",
			ipam.Config{Subnet: prefix("fd00:1::/64"), Gateway: addr("fd00:1::")}, ipam.ErrReserved,
			[]string{"gateway fd00:1::", "subnet-router anycast", "fd00:1::1 to fd00:1::ffff:ffff:ffff:ffff"}},
		{"gateway of the other family", ipam.Config{Subnet: sub, Gateway: addr("fd00:1::1")}, ipam.ErrOutside,
			[]string{"gateway fd00:1::1", "10.240.0.0/24", "an IPv4 address, not IPv6"}},
		{"gateway IPv4-mapped", ipam.Config{Subnet: sub, Gateway: addr("::ffff:10.240.0.1")}, ipam.ErrOutside,
			[]string{"gateway ::ffff:10.240.0.1", "as 10.240.0.1"}},
		{"ip-range outside", ipam.Config{Subnet: sub, IPRange: prefix("10.1.0.0/28")}, ipam.ErrOutside,
			[]string{"ip-range 10.1.0.0/28", "10.240.0.0/24", "/24 or longer"}},
		{"ip-range larger than the subnet", ipam.Config{Subnet: sub, IPRange: prefix("10.240.0.0/16")}, ipam.ErrOutside,
			[]string{"ip-range 10.240.0.0/16", "10.240.0.0/24"}},
		{"ip-range of the other family", ipam.Config{Subnet: sub, IPRange: prefix("fd00:1::/120")}, ipam.ErrOutside,
			[]string{"ip-range fd00:1::/120", "10.240.0.0/24"}},
		{"ip-range not masked", ipam.Config{Subnet: sub, IPRange: prefix("10.240.0.130/25")}, nil,
			[]string{"ip-range 10.240.0.130/25", "use 10.240.0.128/25"}},
		{"aux outside", ipam.Config{Subnet: sub, Aux: map[string]netip.Addr{"router": addr("10.1.0.9")}}, ipam.ErrOutside,
			[]string{`"router"`, "10.1.0.9", "10.240.0.0/24"}},
		{"aux is the gateway", ipam.Config{Subnet: sub, Aux: map[string]netip.Addr{"router": addr("10.240.0.1")}}, ipam.ErrInUse,
			[]string{`"router"`, "10.240.0.1", "gateway"}},
		{"aux is the network address", ipam.Config{Subnet: sub, Aux: map[string]netip.Addr{"router": addr("10.240.0.0")}}, ipam.ErrReserved,
			[]string{`"router"`, "10.240.0.0", "network address"}},
		{"two aux names for one address",
			ipam.Config{Subnet: sub, Aux: map[string]netip.Addr{"a": addr("10.240.0.5"), "b": addr("10.240.0.5")}}, ipam.ErrInUse,
			[]string{`aux address "b"=10.240.0.5`, `aux address "a"`}},
		{"aux without an address", ipam.Config{Subnet: sub, Aux: map[string]netip.Addr{"router": {}}}, nil,
			[]string{`"router"`, "no address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ipam.New(tt.cfg)
			if err == nil {
				t.Fatalf("New accepted %+v (gateway %s, range %s)", tt.cfg, p.Gateway(), p.IPRange())
			}
			checkErr(t, "New", err, tt.is, tt.subs...)
		})
	}
}
