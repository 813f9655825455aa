package daemon

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/store"
)

// checkDaemon is a Daemon with only what newNetworkRecord reads: its
// networks and the host's prefixes (none).
func checkDaemon(nets ...store.Network) *Daemon {
	d := &Daemon{
		cfg: Config{HostPrefixes: func() ([]netip.Prefix, error) { return nil, nil },
			Forwarding: func(bool) (bool, error) { return true, nil }},
		networks: map[string]*network{},
	}
	for _, rec := range nets {
		d.networks[rec.Name] = &network{rec: rec}
	}
	return d
}

func intp(v int) *int { return &v }

// fieldsOf returns the fields of err, which must be a ValidationError.
func fieldsOf(t *testing.T, err error) []api.FieldError {
	t.Helper()
	var ve *api.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *api.ValidationError", err, err)
	}
	if !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("error %v is not an api.ErrInvalid", err)
	}
	return ve.Fields
}

// Each invalid request names the JSON field at fault, never a CLI flag.
func TestNetworkCreateFieldErrors(t *testing.T) {
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	tun := func(r api.NetworkCreate) api.NetworkCreate {
		r.Name, r.Subnet = "n", "10.250.0.0/16"
		if r.Tunnel == "" {
			r.Tunnel = "vxlan"
		}
		return r
	}
	cases := []struct {
		name  string
		req   api.NetworkCreate
		field string
		value string
	}{
		{"bad name", api.NetworkCreate{Name: "a b"}, "name", "a b"},
		{"empty name", api.NetworkCreate{}, "name", ""},
		{"mtu too small", api.NetworkCreate{Name: "n", MTU: 10}, "mtu", "10"},
		{"mtu too large", api.NetworkCreate{Name: "n", MTU: 70000}, "mtu", "70000"},
		{"subnet not CIDR", api.NetworkCreate{Name: "n", Subnet: "10.5.0.0/33"}, "subnet", "10.5.0.0/33"},
		{"subnet host bits", api.NetworkCreate{Name: "n", Subnet: "10.5.0.1/24"}, "subnet", "10.5.0.1/24"},
		{"gateway not IP", api.NetworkCreate{Name: "n", Gateway: "gw"}, "gateway", "gw"},
		{"gateway outside", api.NetworkCreate{Name: "n", Subnet: "10.5.0.0/24", Gateway: "10.6.0.1"}, "gateway", "10.6.0.1"},
		{"ip_range not CIDR", api.NetworkCreate{Name: "n", IPRange: "x"}, "ip_range", "x"},
		{"ip_range outside", api.NetworkCreate{Name: "n", Subnet: "10.5.0.0/24", IPRange: "10.6.0.0/25"}, "ip_range", "10.6.0.0/25"},
		{"aux not name=IP", api.NetworkCreate{Name: "n", AuxAddresses: []string{"router"}}, "aux_addresses", "router"},
		{"aux twice", api.NetworkCreate{Name: "n", AuxAddresses: []string{"r=10.5.0.2", "r=10.5.0.3"}}, "aux_addresses", "r=10.5.0.3"},
		{"aux outside", api.NetworkCreate{Name: "n", Subnet: "10.5.0.0/24", AuxAddresses: []string{"r=10.6.0.2"}}, "aux_addresses", ""},
		{"host_loopback_addr alone", api.NetworkCreate{Name: "n", HostLoopbackAddr: "169.254.9.9"}, "host_loopback_addr", "169.254.9.9"},
		{"host_loopback internal", api.NetworkCreate{Name: "n", HostLoopback: true, Internal: true}, "host_loopback", ""},
		{"host_loopback_addr bad", api.NetworkCreate{Name: "n", HostLoopback: true, HostLoopbackAddr: "127.0.0.1"}, "host_loopback_addr", "127.0.0.1"},
		{"host_loopback_addr inside", api.NetworkCreate{Name: "n", Subnet: "10.5.0.0/24", HostLoopback: true, HostLoopbackAddr: "10.5.0.9"}, "host_loopback_addr", "10.5.0.9"},
		{"subnet link-local", api.NetworkCreate{Name: "n", Subnet: "169.254.1.0/24"}, "subnet", "169.254.1.0/24"},
		{"subnet loopback", api.NetworkCreate{Name: "n", Subnet: "127.5.0.0/24"}, "subnet", "127.5.0.0/24"},
		{"subnet multicast", api.NetworkCreate{Name: "n", Subnet: "239.1.0.0/16"}, "subnet", "239.1.0.0/16"},
		{"subnet covering loopback", api.NetworkCreate{Name: "n", Subnet: "96.0.0.0/3"}, "subnet", "96.0.0.0/3"},
		{"subnet IPv6 multicast", api.NetworkCreate{Name: "n", Subnet: "ff05::/64"}, "subnet", "ff05::/64"},
		{"vni without tunnel", api.NetworkCreate{Name: "n", VNI: intp(5)}, "vni", ""},
		{"peers without tunnel", api.NetworkCreate{Name: "n", Peers: []string{"192.0.2.2"}}, "peers", ""},
		{"unknown tunnel", tun(api.NetworkCreate{Tunnel: "gre"}), "tunnel", "gre"},
		{"tunnel without subnet", api.NetworkCreate{Name: "n", Tunnel: "vxlan"}, "subnet", ""},
		{"vni out of range", tun(api.NetworkCreate{VNI: intp(1 << 24)}), "vni", "16777216"},
		{"underlay_mtu", tun(api.NetworkCreate{UnderlayMTU: 100}), "underlay_mtu", "100"},
		{"label key", api.NetworkCreate{Name: "n", Labels: map[string]string{"a b": "x"}}, "labels", "a b"},
		{"label value", api.NetworkCreate{Name: "n", Labels: map[string]string{"k": strings.Repeat("v", 257)}}, "labels", "k=vvvvvvvvvvvvvvvv…"},
		{"tunnel_listen", tun(api.NetworkCreate{TunnelListen: "host:1"}), "tunnel_listen", "host:1"},
		{"peer unspecified", tun(api.NetworkCreate{Peers: []string{"0.0.0.0"}}), "peers", "0.0.0.0"},
		{"secure without key", tun(api.NetworkCreate{Tunnel: "secure"}), "key_file", ""},
		{"key with vxlan", tun(api.NetworkCreate{KeyFile: key}), "key_file", key},
		{"bad key", tun(api.NetworkCreate{Tunnel: "secure", KeyFile: key}), "key_file", key},
		{"subnet_len without cluster", tun(api.NetworkCreate{SubnetLen: 24}), "subnet_len", "24"},
		{"lease_ttl without cluster", tun(api.NetworkCreate{LeaseTTL: 5}), "lease_ttl", "5"},
		{"bad cluster", tun(api.NetworkCreate{Cluster: "http://x", TunnelListen: "192.0.2.1:4789"}), "cluster", "http://x"},
		{"cluster without listen", tun(api.NetworkCreate{Cluster: "etcd://127.0.0.1:2379"}), "tunnel_listen", ""},
		{"cluster with ip_range", tun(api.NetworkCreate{Cluster: "etcd://127.0.0.1:2379", TunnelListen: "192.0.2.1:4789", IPRange: "10.250.1.0/24"}), "ip_range", "10.250.1.0/24"},
		{"negative lease_ttl", tun(api.NetworkCreate{Cluster: "etcd://127.0.0.1:2379", TunnelListen: "192.0.2.1:4789", LeaseTTL: -1}), "lease_ttl", "-1"},
		{"subnet_len too short", tun(api.NetworkCreate{Cluster: "etcd://127.0.0.1:2379", TunnelListen: "192.0.2.1:4789", SubnetLen: 16}), "subnet_len", "16"},
		{"etcd_cacert without cluster", tun(api.NetworkCreate{EtcdCACert: "/ca.pem"}), "etcd_cacert", "/ca.pem"},
		{"etcd_cacert without TLS", tun(api.NetworkCreate{Cluster: "etcd://127.0.0.1:2379", TunnelListen: "192.0.2.1:4789", EtcdCACert: "/ca.pem"}), "etcd_cacert", "/ca.pem"},
		{"etcd_cacert unreadable", tun(api.NetworkCreate{Cluster: "etcds://127.0.0.1:2379", TunnelListen: "192.0.2.1:4789", EtcdCACert: "/nonexistent/ca.pem"}), "etcd_cacert", "/nonexistent/ca.pem"},
		{"etcd_user without password", tun(api.NetworkCreate{Cluster: "etcds://127.0.0.1:2379", TunnelListen: "192.0.2.1:4789", EtcdUser: "root"}), "etcd_password_file", ""},
		{"etcd password file unreadable", tun(api.NetworkCreate{Cluster: "etcd://127.0.0.1:2379", TunnelListen: "192.0.2.1:4789", EtcdUser: "root", EtcdPasswordFile: "/nonexistent/pw"}), "etcd_password_file", "/nonexistent/pw"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := checkDaemon().newNetworkRecord(c.req)
			fs := fieldsOf(t, err)
			if len(fs) != 1 {
				t.Fatalf("got %d problems, want 1: %v", len(fs), err)
			}
			f := fs[0]
			if f.Field != c.field || f.Value != c.value || f.Problem == "" {
				t.Fatalf("got %+v, want field %q value %q and a problem", f, c.field, c.value)
			}
			if msg := err.Error(); strings.Contains(msg, "--") {
				t.Fatalf("message speaks in CLI flags: %s", msg)
			}
		})
	}
}

// A request with several bad fields gets them all, always in the order
// of api.NetworkCreate's fields, whatever the order of the checks.
func TestNetworkCreateErrorsInFixedOrder(t *testing.T) {
	req := api.NetworkCreate{
		Name: "bad name", MTU: 1, Subnet: "10.0.0.0/24", HostLoopbackAddr: "169.254.9.9",
		VNI: intp(1), TunnelListen: "x", Peers: []string{"192.0.2.2"}, KeyFile: "/k", Cluster: "etcd://h:1",
		SubnetLen: 20, LeaseTTL: 3, UnderlayMTU: 1400,
	}
	checkOrder(t, req, "name", "mtu", "host_loopback_addr", "vni", "tunnel_listen", "peers", "key_file", "cluster", "subnet_len", "lease_ttl", "underlay_mtu")
	// The cluster checks find ip_range wrong after vni.
	checkOrder(t, api.NetworkCreate{Name: "n", Subnet: "10.250.0.0/16", IPRange: "10.250.1.0/24", Tunnel: "vxlan", VNI: intp(-1),
		Cluster: "etcd://127.0.0.1:2379", TunnelListen: "192.0.2.1:4789", LeaseTTL: -5}, "ip_range", "vni", "lease_ttl")
}

func checkOrder(t *testing.T, req api.NetworkCreate, want ...string) {
	t.Helper()
	var first string
	for i := range 200 {
		_, err := checkDaemon().newNetworkRecord(req)
		var got []string
		for _, f := range fieldsOf(t, err) {
			got = append(got, f.Field)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("run %d: fields %v, want %v", i, got, want)
		}
		if i == 0 {
			first = err.Error()
		} else if err.Error() != first {
			t.Fatalf("run %d: message changed:\n%s\n%s", i, first, err)
		}
	}
}

// Problems with the request come before conflicts with what exists; a
// valid request that clashes is a conflict, not a validation error.
func TestNetworkCreateConflicts(t *testing.T) {
	web := store.Network{Name: "web", Subnet: netip.MustParsePrefix("10.1.0.0/16")}
	d := checkDaemon(web)
	if _, err := d.newNetworkRecord(api.NetworkCreate{Name: "web", MTU: 1}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("taken name and bad mtu: %v, want invalid first", err)
	}
	if _, err := d.newNetworkRecord(api.NetworkCreate{Name: "web"}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("taken name: %v, want a conflict", err)
	}
	if _, err := d.newNetworkRecord(api.NetworkCreate{Name: "db", Subnet: "10.1.2.0/24"}); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "web") {
		t.Fatalf("overlapping subnet: %v, want a conflict naming web", err)
	}
}

// A valid request becomes a record with the defaults filled in.
func TestNetworkCreateValid(t *testing.T) {
	rec, err := checkDaemon().newNetworkRecord(api.NetworkCreate{
		Name: "n", Subnet: "10.250.0.0/16", Tunnel: "vxlan", VNI: intp(42), Peers: []string{"192.0.2.2", "192.0.2.2:4789"},
		TunnelListen: "192.0.2.1", Cluster: "etcd://127.0.0.1:2379", HostLoopback: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Gateway != netip.MustParseAddr("10.250.0.1") || rec.MTU != 1450 || rec.HostLoopback != DefaultHostLoopback {
		t.Fatalf("record %+v: want gateway 10.250.0.1, MTU 1450, host loopback %s", rec, DefaultHostLoopback)
	}
	tc := rec.Tunnel
	if tc == nil || tc.VNI != 42 || len(tc.Peers) != 1 || tc.Listen.Port() != 4789 || tc.SubnetLen != DefaultSubnetLen || tc.HostID == "" {
		t.Fatalf("tunnel %+v: want VNI 42, one peer, port 4789, /24 leases and a host ID", tc)
	}
	picked, err := checkDaemon().newNetworkRecord(api.NetworkCreate{Name: "p"})
	if err != nil || !picked.Subnet.IsValid() {
		t.Fatalf("picked subnet %v, %v", picked.Subnet, err)
	}
}

// A subnet that overlaps the host's addresses or routes is a conflict
// naming the host's prefix; one beside them is fine.
func TestNetworkCreateHostOverlap(t *testing.T) {
	d := checkDaemon()
	d.cfg.HostPrefixes = func() ([]netip.Prefix, error) {
		return []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("10.8.0.0/16")}, nil
	}
	for _, subnet := range []string{"192.0.2.0/25", "10.0.0.0/8", "10.8.3.0/24"} {
		_, err := d.newNetworkRecord(api.NetworkCreate{Name: "n", Subnet: subnet})
		if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "host") {
			t.Errorf("subnet %s over a host prefix: %v, want a conflict naming the host", subnet, err)
		}
	}
	if _, err := d.newNetworkRecord(api.NetworkCreate{Name: "n", Subnet: "10.9.0.0/24"}); err != nil {
		t.Errorf("subnet beside the host's: %v", err)
	}
}
