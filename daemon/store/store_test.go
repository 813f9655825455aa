package store_test

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/daemon/store"
	"github.com/switchyard-net/switchyard/internal/nsenter"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

func TestRoundTripAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	n := store.Network{
		Name: "web", Subnet: netip.MustParsePrefix("10.240.0.0/24"), Gateway: netip.MustParseAddr("10.240.0.1"),
		GatewayMAC: vswitch.MAC{2, 0x42, 10, 240, 0, 1}, IPRange: netip.MustParsePrefix("10.240.0.128/25"),
		AuxAddresses: map[string]netip.Addr{"router": netip.MustParseAddr("10.240.0.5")},
		MTU:          1450, ICC: false, Internal: true, Created: created,
	}
	e := store.Endpoint{
		Network: "web", Name: "a", NetNS: "/var/run/netns/a", NetNSID: nsenter.ID{Dev: 4, Ino: 4026532000},
		IfName: "eth0", MAC: vswitch.MAC{2, 0x42, 10, 240, 0, 2}, Address: netip.MustParsePrefix("10.240.0.2/24"), Created: created,
	}
	if err := s.PutNetwork(n); err != nil {
		t.Fatal(err)
	}
	if err := s.PutEndpoint(e); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ns, err := s.Networks()
	if err != nil || len(ns) != 1 || !reflect.DeepEqual(ns[0], n) {
		t.Fatalf("networks after reopen = %+v (err %v), want [%+v]", ns, err, n)
	}
	es, err := s.Endpoints()
	if err != nil || len(es) != 1 || !reflect.DeepEqual(es[0], e) {
		t.Fatalf("endpoints after reopen = %+v (err %v), want [%+v]", es, err, e)
	}
	if err := s.DeleteEndpoint("web", "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteNetwork("web"); err != nil {
		t.Fatal(err)
	}
	if es, _ := s.Endpoints(); len(es) != 0 {
		t.Errorf("%d endpoints after delete", len(es))
	}
	if ns, _ := s.Networks(); len(ns) != 0 {
		t.Errorf("%d networks after delete", len(ns))
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := store.Open(dir); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second open: err %v, want ErrLocked", err)
	}
}
