package soak_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// rawSocket sends whole Ethernet frames out of one interface of the
// attacker's namespace (AF_PACKET, protocol 0: it receives nothing).
type rawSocket struct {
	fd      int
	to      unix.SockaddrLinklayer
	sent    atomic.Uint64
	refused atomic.Uint64 // sends the kernel refused (ENOBUFS: the TAP's queue was full)
}

// openRaw opens the socket inside the world's attacker namespace and
// closes it when the test ends.
func openRaw(t *testing.T, w *world) *rawSocket {
	t.Helper()
	s := &rawSocket{fd: -1}
	err := w.attacker.Do(func() error {
		ifc, err := net.InterfaceByName(w.attackerEP.IfName)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		s.fd, s.to = fd, unix.SockaddrLinklayer{Ifindex: ifc.Index, Halen: 6}
		return nil
	})
	if err != nil {
		t.Fatalf("raw socket on %s in %s: %v", w.attackerEP.IfName, w.attacker.Name, err)
	}
	t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

func (s *rawSocket) send(frame []byte) {
	if err := unix.Sendto(s.fd, frame, 0, &s.to); err != nil {
		s.refused.Add(1)
		return
	}
	s.sent.Add(1)
}

// paced calls send rate times a second, in ticks of 10 ms, until ctx ends
// or it has been called limit times.
func paced(ctx context.Context, rate, limit int, send func()) {
	const tick = 10 * time.Millisecond
	per := max(1, rate/int(time.Second/tick))
	tk := time.NewTicker(tick)
	defer tk.Stop()
	for n := 0; n < limit; {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		for i := 0; i < per && n < limit; i++ {
			send()
			n++
		}
	}
}

// attack is what the attacker sent, for the report.
type attack struct {
	flood, spoof, spray *rawSocket
	burstOK, burstFail  atomic.Uint64
	bursts              atomic.Uint64
	firstOK             uint64       // connections the first burst opened (read once run returns)
	burstErr            atomic.Value // the first failed connection's error
	on                  bool         // false: the control run
	stolen              string       // the victim's address, held by the attacker
}

// spoofRate is how many spoofed ARP/IP/ND frames the attacker sends a
// second (cycling through spoofFrames).
const spoofRate = 70

// burstEvery is the pause between connection bursts.
const burstEvery = 25 * time.Second

// newAttack prepares the attack on the test's goroutine: the raw
// sockets, and the victim's address as a second address of the
// attacker's own, held until the test calls stop, so that whatever a
// poisoned gateway sends to the victim's address is answered by the
// attacker's server (and its kernel answers the gateway's ARP requests
// for that address too). With cfg.attack false (the control run) the
// attack sends nothing.
func newAttack(t *testing.T, w *world, cfg config) *attack {
	t.Helper()
	if !cfg.attack {
		return &attack{flood: &rawSocket{}, spoof: &rawSocket{}, spray: &rawSocket{}}
	}
	a := &attack{flood: openRaw(t, w), spoof: openRaw(t, w), spray: openRaw(t, w), on: true,
		stolen: w.victimEP.Address.Addr().String() + "/32"}
	w.attacker.MustRun("ip", "addr", "add", a.stolen, "dev", w.attackerEP.IfName)
	return a
}

// stop gives the victim's address back (on the test's goroutine, once
// run has returned).
func (a *attack) stop(t *testing.T, w *world) {
	t.Helper()
	if a.on {
		w.attacker.MustRun("ip", "addr", "del", a.stolen, "dev", w.attackerEP.IfName)
	}
}

// run runs every attack until ctx ends and returns when they have all
// stopped. Each loop is bounded by ctx and by a count.
func (a *attack) run(ctx context.Context, w *world, cfg config) {
	if !a.on {
		return
	}
	secs := int(cfg.load/time.Second) + 1
	var wg sync.WaitGroup
	spawn := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	spawn(func() {
		r := rand.New(rand.NewPCG(1, 2))
		buf := make([]byte, minFrame)
		paced(ctx, cfg.pps, cfg.pps*secs, func() { a.flood.send(buf[:floodFrame(r, buf)]) })
	})
	spawn(func() {
		frames := spoofFrames(w)
		i := 0
		paced(ctx, spoofRate, spoofRate*secs, func() { a.spoof.send(frames[i%len(frames)]); i++ })
	})
	firstBurst := make(chan struct{})
	spawn(func() {
		// The spray fills the attacker's share of the gateway's NAT
		// ports, after which its own hairpin connections are dropped:
		// it starts once the first burst is over (or a sixth into the
		// load), so that one burst has the share to itself.
		select {
		case <-firstBurst:
		case <-time.After(cfg.load / 6):
		case <-ctx.Done():
			return
		}
		r := rand.New(rand.NewPCG(3, 4))
		buf := make([]byte, 128)
		src := w.attackerEP.Address.Addr()
		hw, _ := net.ParseMAC(w.attackerEP.MAC)
		rate := max(1, cfg.pps/2)
		paced(ctx, rate, rate*secs, func() {
			sport := uint16(1024 + r.IntN(64000))
			a.spray.send(buf[:udp4Frame(buf, hw, w.gwMAC, src, w.gw, sport, pubUDP, 16)])
		})
	})
	spawn(func() { a.burstLoop(ctx, w, cfg.conns, int(cfg.load/burstEvery)+1, firstBurst) })
	wg.Wait()
}

// spoofFrames are the attacker's lies, each claiming the victim's
// address (or the router role) for the attacker's MAC: "who-has gateway
// tell victim", a gratuitous ARP for the victim's address, an ARP reply
// to the gateway, IPv4 from the victim's address to the gateway itself
// and to the victim's published UDP port (hairpin), an unsolicited
// neighbour advertisement for the victim's link-local address and a
// router advertisement.
func spoofFrames(w *world) [][]byte {
	me, _ := net.ParseMAC(w.attackerEP.MAC)
	victimMAC, _ := net.ParseMAC(w.victimEP.MAC)
	victim := w.victimEP.Address.Addr()
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	zero := make(net.HardwareAddr, 6)
	build := func(f func([]byte) int) []byte {
		b := make([]byte, 256)
		return b[:f(b)]
	}
	return [][]byte{
		build(func(b []byte) int { return arpFrame(b, header.ARPRequest, me, bcast, me, victim, zero, w.gw) }),
		build(func(b []byte) int { return arpFrame(b, header.ARPRequest, me, bcast, me, victim, zero, victim) }),
		build(func(b []byte) int { return arpFrame(b, header.ARPReply, me, w.gwMAC, me, victim, w.gwMAC, w.gw) }),
		build(func(b []byte) int { return udp4Frame(b, me, w.gwMAC, victim, w.gw, 40000, 9, 8) }),
		build(func(b []byte) int { return udp4Frame(b, me, w.gwMAC, victim, w.gw, 40001, pubUDP, 8) }),
		build(func(b []byte) int { return naFrame(b, me, header.LinkLocalAddr(linkAddr(victimMAC))) }),
		build(func(b []byte) int { return raFrame(b, me) }),
	}
}

// burstLoop opens bursts of n connections from the attacker to the
// victim's published TCP port through the gateway (hairpin), holds them
// until the burst is complete, closes them, and starts again after
// burstEvery, until ctx ends or it has made most bursts. It closes first
// when the first burst is over.
func (a *attack) burstLoop(ctx context.Context, w *world, n, most int, first chan<- struct{}) {
	addr := fmt.Sprintf("%s:%d", w.gw, pubTCP)
	for i := 0; i < most && ctx.Err() == nil; i++ {
		ok := a.burstOK.Load()
		a.burst(ctx, w, addr, n)
		if a.bursts.Add(1) == 1 {
			a.firstOK = a.burstOK.Load() - ok
			close(first)
		}
		select {
		case <-ctx.Done():
		case <-time.After(burstEvery):
		}
	}
}

// burstWorkers is how many connections a burst opens at once, each
// given up after burstDialTimeout.
const (
	burstWorkers     = 64
	burstDialTimeout = 2 * time.Second
)

func (a *attack) burst(ctx context.Context, w *world, addr string, n int) {
	conns := make(chan net.Conn, n)
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	var wg sync.WaitGroup
	for range burstWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				if ctx.Err() != nil {
					return
				}
				dctx, cancel := context.WithTimeout(ctx, burstDialTimeout)
				c, err := w.attacker.Dial(dctx, "tcp", addr)
				cancel()
				if err != nil {
					a.burstFail.Add(1)
					a.burstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				a.burstOK.Add(1)
				conns <- c
			}
		}()
	}
	wg.Wait()
	close(conns)
	for c := range conns {
		c.Close()
	}
}
