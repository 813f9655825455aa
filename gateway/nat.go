package gateway

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/nat"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// NAT for published ports reached from inside the network (hairpin):
// container A connects to a published port at the gateway address or one
// of the host's addresses; the packet is translated here, on the switch's
// goroutine, and sent straight back onto the switch towards the container
// B that publishes the port, as the kernel routes a DNATed packet back
// out of docker0. The netstack never sees it.
//
// Only packets addressed to the gateway or to a host address can be
// translated (nat.Table.Candidate); those are copied first, since the
// translation rewrites in place and the frame's buffer belongs to the
// port it came in on. Egress traffic is never copied.

// The masquerade ports (the table's MasqPorts, nat.DefaultMasqPorts
// unless configured) and the netstack's own ephemeral ports must not
// overlap. The netstack takes the larger part of 16000-65535 (gVisor's
// own range) left by the masquerade range: 16000-60999 with the default.
const (
	netstackPortsStart = 16000
	netstackPortsEnd   = 65535
	// netstackPortsFloor is where the netstack's range may start when the
	// masquerade range takes all of 16000-65535.
	netstackPortsFloor = 1024
)

// netstackPorts returns the netstack's ephemeral port range for
// masquerade range masq, or an error if masq leaves no room for it.
func netstackPorts(masq [2]uint16) (first, last uint16, err error) {
	if masq[1] < netstackPortsStart {
		return netstackPortsStart, netstackPortsEnd, nil
	}
	below := [2]int{netstackPortsStart, int(masq[0]) - 1}
	above := [2]int{int(masq[1]) + 1, netstackPortsEnd}
	best := below
	if above[1]-above[0] > below[1]-below[0] {
		best = above
	}
	if best[0] > best[1] {
		best = [2]int{netstackPortsFloor, int(masq[0]) - 1}
	}
	if best[0] > best[1] {
		return 0, 0, fmt.Errorf("masquerade ports %d-%d leave the netstack no ephemeral ports: keep some of %d-%d out of them",
			masq[0], masq[1], netstackPortsFloor, netstackPortsEnd)
	}
	return uint16(best[0]), uint16(best[1]), nil
}

// natSweepEvery is how often expired connection-table entries are removed.
const natSweepEvery = 5 * time.Second

type natPath struct {
	g       *Gateway
	table   *nat.Table
	epoch   time.Time
	sweeper *periodic

	noNeighbor atomic.Uint64 // translated packets whose target has no known MAC
	bufs       sync.Pool
}

func (g *Gateway) startNAT(t *nat.Table) error {
	first, last, err := netstackPorts(t.MasqPorts())
	if err != nil {
		return err
	}
	if err := g.stack.SetPortRange(first, last); err != nil {
		return fmt.Errorf("netstack port range %d-%d: %s", first, last, err)
	}
	p := &natPath{g: g, table: t, epoch: g.clock.Now()}
	p.bufs.New = func() any { b := make([]byte, 0, 2048); return &b }
	g.nat = p
	// Remove expired connections until the gateway closes.
	p.sweeper = g.every(natSweepEvery, func() { p.table.Sweep(p.now()) })
	return nil
}

func (p *natPath) now() int64 { return int64(p.g.clock.Now().Sub(p.epoch)) }

func (p *natPath) wait() { p.sweeper.stop() }

// intercept translates f if it belongs to a published-port flow and sends
// it on; it reports true if f was consumed (translated or dropped).
func (p *natPath) intercept(f vswitch.Frame) bool {
	ip := f.Data[vswitch.EthHeaderLen:]
	if !p.table.Candidate(ip) {
		return false
	}
	bp := p.bufs.Get().(*[]byte)
	defer p.bufs.Put(bp)
	cp := append((*bp)[:0], f.Data...)
	*bp = cp
	var v nat.Verdict
	if f.Offload.NeedsCsum() {
		v = p.table.ProcessPartial(cp[vswitch.EthHeaderLen:], p.now())
	} else {
		v = p.table.Process(cp[vswitch.EthHeaderLen:], p.now())
	}
	switch v {
	case nat.Translated:
		p.forward(cp, f.Offload)
		return true
	case nat.Drop:
		return true
	}
	return false
}

// forward sends a translated frame to the endpoint that owns its new
// destination address.
func (p *natPath) forward(frame []byte, off vswitch.Offload) {
	ip := frame[vswitch.EthHeaderLen:]
	var dst netip.Addr
	if header.IPVersion(ip) == 4 {
		dst = netip.AddrFrom4([4]byte(ip[16:20]))
	} else {
		dst = netip.AddrFrom16([16]byte(ip[24:40]))
	}
	mac, ok := p.g.neighbor(dst)
	if !ok {
		p.noNeighbor.Add(1)
		return
	}
	copy(frame[0:6], mac[:])
	copy(frame[6:12], p.g.cfg.MAC[:])
	p.g.port.SendFrame(vswitch.Frame{Data: frame, Offload: off})
}

// NATNow is the clock the gateway runs its NAT table on, for callers of
// nat.Table.Entries.
func (g *Gateway) NATNow() int64 {
	if g.nat == nil {
		return 0
	}
	return g.nat.now()
}

// NATStats returns the connection table's counters, and how many
// translated packets had no endpoint to go to.
func (g *Gateway) NATStats() (nat.Stats, uint64) {
	if g.nat == nil {
		return nat.Stats{}, 0
	}
	return g.nat.table.Stats(), g.nat.noNeighbor.Load()
}
