package ipam_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/ipam"
)

func TestDefaultPools(t *testing.T) {
	pools := ipam.DefaultPools()
	if len(pools) != 15+16 {
		t.Fatalf("%d pools, want 31 (15 /16s, 16 /20s)", len(pools))
	}
	for i := range 15 {
		if want := prefix(fmt.Sprintf("172.%d.0.0/16", 17+i)); pools[i] != want {
			t.Errorf("pool %d = %s, want %s", i, pools[i], want)
		}
	}
	for i := range 16 {
		if want := prefix(fmt.Sprintf("192.168.%d.0/20", 16*i)); pools[15+i] != want {
			t.Errorf("pool %d = %s, want %s", 15+i, pools[15+i], want)
		}
	}
	for i, p := range pools {
		if p != p.Masked() {
			t.Errorf("pool %s is not canonical", p)
		}
		for _, q := range pools[i+1:] {
			if ipam.Overlaps(p, q) {
				t.Errorf("pools %s and %s overlap", p, q)
			}
		}
	}
	pools[0] = netip.Prefix{}
	if ipam.DefaultPools()[0] != prefix("172.17.0.0/16") {
		t.Error("DefaultPools returned a shared slice")
	}
}

func TestNextFree(t *testing.T) {
	all172 := make([]netip.Prefix, 0, 15)
	for b := 17; b <= 31; b++ {
		all172 = append(all172, prefix(fmt.Sprintf("172.%d.0.1/16", b)))
	}
	tests := []struct {
		name  string
		inUse []netip.Prefix
		want  string
	}{
		{"nothing in use", nil, "172.17.0.0/16"},
		{"host address on docker0", []netip.Prefix{prefix("172.17.0.1/16")}, "172.18.0.0/16"},
		{"host route inside a pool", []netip.Prefix{prefix("172.17.5.0/24"), prefix("172.18.0.0/16")}, "172.19.0.0/16"},
		{"other families and networks ignored", []netip.Prefix{prefix("fd00::/8"), prefix("10.0.0.0/8"), {}}, "172.17.0.0/16"},
		{"VPN route over all of 172.16/12", []netip.Prefix{prefix("172.16.0.0/12")}, "192.168.0.0/20"},
		{"every 172 taken", all172, "192.168.0.0/20"},
		{"home LAN in 192.168.0/24", append(all172[:15:15], prefix("192.168.0.10/24")), "192.168.16.0/20"},
		{"home LAN in 192.168.178/24", append(all172[:15:15], prefix("192.168.0.0/20"), prefix("192.168.16.0/20"),
			prefix("192.168.32.0/19"), prefix("192.168.64.0/18"), prefix("192.168.128.0/19"), prefix("192.168.160.0/20"),
			prefix("192.168.178.1/24")), "192.168.192.0/20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ipam.NextFree(ipam.DefaultPools(), tt.inUse)
			if err != nil {
				t.Fatal(err)
			}
			if got != prefix(tt.want) {
				t.Errorf("NextFree = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestNextFreeAllTaken(t *testing.T) {
	inUse := []netip.Prefix{prefix("172.16.0.0/12"), prefix("192.168.0.0/16")}
	_, err := ipam.NextFree(ipam.DefaultPools(), inUse)
	checkErr(t, "NextFree", err, ipam.ErrNoFreePool,
		"172.17.0.0/16 (overlaps 172.16.0.0/12)", "172.31.0.0/16", "192.168.0.0/20", "192.168.240.0/20 (overlaps 192.168.0.0/16)", "--subnet")

	_, err = ipam.NextFree(nil, nil)
	checkErr(t, "NextFree without candidates", err, nil, "no candidate")
}

func TestOverlaps(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"172.17.0.0/16", "172.17.0.0/16", true},
		{"172.17.0.0/16", "172.17.3.0/24", true},
		{"172.17.3.0/24", "172.17.0.0/16", true},
		{"172.17.0.0/16", "172.17.0.1/16", true}, // host bits ignored
		{"172.17.0.0/16", "172.18.0.1/32", false},
		{"172.17.0.0/16", "172.16.0.0/12", true},
		{"192.168.0.0/20", "192.168.16.0/20", false},
		{"192.168.0.0/20", "192.168.15.255/32", true},
		{"10.0.0.0/8", "::ffff:10.0.0.0/104", false}, // families never overlap
		{"fd00::/64", "fd00::1/128", true},
		{"fd00::/64", "fd00:0:0:1::/64", false},
	}
	for _, tt := range tests {
		a, b := prefix(tt.a), prefix(tt.b)
		if got := ipam.Overlaps(a, b); got != tt.want {
			t.Errorf("Overlaps(%s, %s) = %v, want %v", a, b, got, tt.want)
		}
		if got := ipam.Overlaps(b, a); got != tt.want {
			t.Errorf("Overlaps(%s, %s) = %v, want %v", b, a, got, tt.want)
		}
	}
	if ipam.Overlaps(netip.Prefix{}, prefix("0.0.0.0/0")) {
		t.Error("the zero Prefix overlaps 0.0.0.0/0")
	}
}
