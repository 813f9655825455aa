package docker

import (
	"net/netip"
	"testing"

	"github.com/switchyard-net/switchyard/proxy"
)

// FuzzDecode feeds request bodies, as dockerd might send them or worse,
// through the decoding and translation of every call that carries data.
// Nothing may panic, and what is accepted must be what the daemon and
// Docker accept back: subnets the daemon parses, pool IDs that read back
// as the same pool, -p specs the proxy parses, addresses inside their
// pool.
func FuzzDecode(f *testing.F) {
	f.Add(createNetworkBody(nid, "10.98.0.0/24", "10.98.0.1/24", `"name":"synet","com.docker.network.driver.mtu":"1400"`))
	f.Add(`{"NetworkID":"n","Options":{"com.docker.network.internal":true},"IPv4Data":[{"Pool":"10.1.0.0/16","AuxAddresses":{"r":"10.1.0.9/16"}}]}`)
	f.Add(`{"NetworkID":"n","EndpointID":"e","Interface":{"Address":"10.98.0.2/24","MacAddress":"02:42:0a:62:00:02"}}`)
	f.Add(portmapBody(nid, eid, "10.98.0.2", 18082))
	f.Add(`{"Options":{"com.docker.network.portmap":[{"Proto":17,"Port":53,"HostIP":"::1","HostPort":5300,"HostPortEnd":5310},{"Proto":6,"Port":80}]}}`)
	f.Add(`{"AddressSpace":"switchyard","Pool":"10.98.0.0/24","SubPool":"10.98.0.128/25","V6":false}`)
	f.Add(`{"PoolID":"10.98.0.0/24,10.98.0.128/25","Address":"10.98.0.130"}`)
	f.Add(`{"PoolID":"10.98.0.0/24","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}`)
	f.Add(`{"Options":{"com.docker.network.portmap":[{"Proto":6,"Port":80,"HostIP":"fe80::1%eth0","HostPort":80}]}}`)
	f.Add(createNetworkBody6(nid, "10.98.0.0/24", "fd00:98::/64", `"name":"dual"`))
	f.Add(`{"NetworkID":"n","EndpointID":"e","Interface":{"Address":"10.98.0.2/24","AddressIPv6":"fd00:98::2/64"}}`)
	f.Add(`{"AddressSpace":"switchyard","Pool":"fd00:98::/64","SubPool":"fd00:98::100/120","V6":true}`)
	f.Add(`{"PoolID":"fd00:98::/64,fd00:98::100/120","Address":"fd00:98::1ff"}`)
	f.Add(`{"NetworkID":`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		b := []byte(body)

		var cn createNetworkRequest
		if decode(b, &cn) == nil {
			if nc, err := networkCreate(cn); err == nil {
				p, perr := netip.ParsePrefix(nc.Subnet)
				if perr != nil || p != p.Masked() || nc.Name == "" || nc.Labels[LabelNetworkID] != cn.NetworkID {
					t.Fatalf("accepted %q as %+v", body, nc)
				}
				for _, s := range nc.Subnets {
					if p6, err := netip.ParsePrefix(s); err != nil || p6 != p6.Masked() || !p6.Addr().Is6() {
						t.Fatalf("accepted %q with IPv6 subnet %q", body, s)
					}
				}
			}
		}

		var ce createEndpointRequest
		if decode(b, &ce) == nil {
			if pe, err := parseEndpoint(ce); err == nil && (!pe.addr.Addr().Is4() || (ce.Interface.MacAddress != "" && pe.mac == "") ||
				(ce.Interface.AddressIPv6 != "") != pe.addr6.Addr().Is6()) {
				t.Fatalf("accepted %q as %+v", body, pe)
			}
		}

		var pr programRequest
		if decode(b, &pr) == nil {
			if pm, err := parsePortMap(pr.Options); err == nil {
				for _, pb := range pm {
					if s, err := pb.spec(); err == nil {
						if _, err := proxy.ParsePublish(s); err != nil {
							t.Fatalf("binding %+v made spec %q the proxy refuses: %v", pb, s, err)
						}
					}
				}
			}
		}

		var rp requestPoolRequest
		if decode(b, &rp) == nil {
			if pl, err := parsePool(rp); err == nil {
				back, err := parsePoolID(pl.id())
				if err != nil || back != pl || pl.subnet.Addr().Is6() != rp.V6 {
					t.Fatalf("pool %+v: ID %q reads back as %+v, %v", pl, pl.id(), back, err)
				}
			}
		}

		var ra requestAddressRequest
		if decode(b, &ra) == nil {
			if pl, err := parsePoolID(ra.PoolID); err == nil {
				if a, err := netip.ParseAddr(ra.Address); err == nil && usable(pl.subnet, a) && (a == pl.subnet.Addr() || (a.Is4() && a == lastAddr(pl.subnet)) || !pl.subnet.Contains(a)) {
					t.Fatalf("%v counted usable in %v", a, pl.subnet)
				}
			}
		}
	})
}
