package daemon

import (
	"net/netip"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
)

func directReq(edit func(*api.NetworkCreate)) api.NetworkCreate {
	r := api.NetworkCreate{Name: "n", Subnet: "10.240.0.0/16", Cluster: "etcd://127.0.0.1:2379", Routing: "direct",
		HostInterface: "sy-d", PublicAddr: "192.0.2.1"}
	if edit != nil {
		edit(&r)
	}
	return r
}

// A request for routing "direct" is read into the record: the range,
// the public address and the cluster's fields.
func TestRoutingDirectRecord(t *testing.T) {
	rec, err := checkDaemon().newNetworkRecord(directReq(func(r *api.NetworkCreate) { r.SubnetLen = 26 }))
	if err != nil {
		t.Fatal(err)
	}
	dc := rec.Direct
	if dc == nil || dc.Range != netip.MustParsePrefix("10.240.0.0/16") || dc.PublicAddr != netip.MustParseAddr("192.0.2.1") ||
		len(dc.Cluster.Cluster) != 1 || dc.Cluster.Cluster[0] != "http://127.0.0.1:2379" || dc.Cluster.SubnetLen != 26 || dc.Cluster.HostID == "" {
		t.Fatalf("record's direct cluster %+v", dc)
	}
	if rec.Tunnel != nil || len(rec.Routes) != 0 || rec.HostInterface == nil {
		t.Fatalf("record: tunnel %+v, routes %v, host interface %+v; want no tunnel, no static routes, a host interface", rec.Tunnel, rec.Routes, rec.HostInterface)
	}
}

// Each bad routing request gets one problem, naming its field.
func TestRoutingDirectRefusals(t *testing.T) {
	cases := []struct {
		name         string
		req          api.NetworkCreate
		field, value string
	}{
		{"unknown routing", directReq(func(r *api.NetworkCreate) { r.Routing = "bgp"; r.Cluster, r.PublicAddr = "", "" }), "routing", "bgp"},
		{"public_addr without routing", api.NetworkCreate{Name: "n", PublicAddr: "192.0.2.1"}, "public_addr", "192.0.2.1"},
		{"without cluster", directReq(func(r *api.NetworkCreate) { r.Cluster = "" }), "routing", "direct"},
		{"with routes", directReq(func(r *api.NetworkCreate) { r.Routes = []string{"10.9.0.0/24"} }), "routes", "10.9.0.0/24"},
		{"without host interface", directReq(func(r *api.NetworkCreate) { r.HostInterface = "" }), "host_interface", ""},
		{"host interface address", directReq(func(r *api.NetworkCreate) { r.HostInterfaceAddr = "10.240.0.9" }), "host_interface_addr", "10.240.0.9"},
		{"ip_range", directReq(func(r *api.NetworkCreate) { r.IPRange = "10.240.1.0/24" }), "ip_range", "10.240.1.0/24"},
		{"internal", directReq(func(r *api.NetworkCreate) { r.Internal = true }), "internal", "true"},
		{"bad public_addr", directReq(func(r *api.NetworkCreate) { r.PublicAddr = "nowhere" }), "public_addr", "nowhere"},
		{"public_addr of another family", directReq(func(r *api.NetworkCreate) { r.PublicAddr = "2001:db8::1" }), "public_addr", "2001:db8::1"},
		{"lease as long as the range", directReq(func(r *api.NetworkCreate) { r.SubnetLen = 16 }), "subnet_len", "16"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := checkDaemon().newNetworkRecord(c.req)
			fs := fieldsOf(t, err)
			if len(fs) != 1 {
				t.Fatalf("got %d problems, want 1: %v", len(fs), err)
			}
			if f := fs[0]; f.Field != c.field || f.Value != c.value || f.Problem == "" {
				t.Fatalf("got %+v, want field %q value %q and a problem", f, c.field, c.value)
			}
		})
	}
}

// Whatever a request says about routing, a record that comes out with a
// direct cluster has a valid range, a public address of its family, etcd
// endpoints, a lease length inside the range, a host interface and no
// tunnel or static routes; and rewritten for a lease (directRecord), its
// gateway and host interface are distinct usable addresses of the lease.
func FuzzRoutingDirect(f *testing.F) {
	f.Add("10.240.0.0/16", "direct", "192.0.2.1", "etcd://127.0.0.1:2379", 24, "sy-d", false)
	f.Add("10.240.0.0/16", "direct", "::", "etcd://127.0.0.1:2379", 30, "sy-d", false)
	f.Add("fd00:240::/48", "direct", "2001:db8::1", "etcd://[::1]:2379", 64, "sy-d", false)
	f.Add("10.240.0.0/24", "direct", "192.0.2.1", "etcd://h:1", 31, "sy-d", true)
	f.Add("", "tunnel", "x", "", 0, "", false)
	f.Fuzz(func(t *testing.T, subnet, routing, public, cl string, subnetLen int, ifname string, internal bool) {
		req := api.NetworkCreate{Name: "n", Subnet: subnet, Routing: routing, PublicAddr: public, Cluster: cl,
			SubnetLen: subnetLen, HostInterface: ifname, Internal: internal}
		d := checkDaemon()
		d.host = hostView{}
		rec, err := d.newNetworkRecord(req)
		if err != nil || rec.Direct == nil {
			return
		}
		dc := rec.Direct
		switch {
		case !dc.Range.IsValid() || dc.Range != rec.Subnet:
			t.Fatalf("range %s for subnet %s", dc.Range, rec.Subnet)
		case !dc.PublicAddr.IsValid() || dc.PublicAddr.IsUnspecified() || dc.PublicAddr.Is4() != dc.Range.Addr().Is4():
			t.Fatalf("public address %s accepted for %s", dc.PublicAddr, dc.Range)
		case len(dc.Cluster.Cluster) == 0 || dc.Cluster.HostID == "":
			t.Fatalf("cluster %+v accepted", dc.Cluster)
		case dc.Cluster.SubnetLen <= dc.Range.Bits() || dc.Cluster.SubnetLen > dc.Range.Addr().BitLen()-2:
			t.Fatalf("lease length %d accepted for %s", dc.Cluster.SubnetLen, dc.Range)
		case rec.HostInterface == nil || rec.Tunnel != nil || len(rec.Routes) > 0 || rec.Internal:
			t.Fatalf("record %+v accepted with routing direct", rec)
		}
		lease := netip.PrefixFrom(dc.Range.Addr(), dc.Cluster.SubnetLen)
		r := directRecord(rec, lease)
		hi := r.HostInterface.Addr
		if r.Subnet != lease || !lease.Contains(r.Gateway) || !lease.Contains(hi) || hi == r.Gateway ||
			r.Gateway == lease.Addr() || hi == lease.Addr() || r.Direct.Cluster.HostSubnet != lease {
			t.Fatalf("lease %s: subnet %s, gateway %s, host interface %s", lease, r.Subnet, r.Gateway, hi)
		}
		if rec.Subnet != dc.Range || rec.Direct.Cluster.HostSubnet.IsValid() {
			t.Fatalf("directRecord changed the record it was given: %+v", rec)
		}
	})
}
