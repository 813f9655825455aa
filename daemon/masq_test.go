package daemon

import (
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// The daemon's masquerade range and share reach every network's NAT table.
func TestMasqueradeRangeReachesTheNetworks(t *testing.T) {
	e := newEnv(t)
	e.d.Close()
	cfg := e.config()
	cfg.MasqPorts, cfg.MasqPortsPerSource = [2]uint16{62000, 62999}, 10
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.9.0.0/24"})
	d.mu.Lock()
	got := d.networks["web"].nat.MasqPorts()
	d.mu.Unlock()
	if got != cfg.MasqPorts {
		t.Fatalf("the network's masquerade range is %v, want %v", got, cfg.MasqPorts)
	}
}
