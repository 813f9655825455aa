//go:build linux

package tunnel_test

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/internal/evloop"
	"github.com/switchyard-net/switchyard/internal/threadwake"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tap"
	"github.com/switchyard-net/switchyard/tunnel"
)

func newLoop(tb testing.TB, spin time.Duration) *evloop.Loop {
	tb.Helper()
	// Contention off: the tests count wake-ups, which a loaded machine
	// would raise by stopping the spin.
	l, err := evloop.New(evloop.Config{Spin: spin, BufLen: tap.LoopBufLen, Contention: -1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// The point of reading the tunnel in the network's loop: the answer to a
// ping that host a's loop forwarded from its TAP into the tunnel comes
// back on the tunnel's socket while the loop still spins, and is read
// without a wake-up. Host a's loop reads both halves of every round trip
// (≥ 100 frames for 50 pings; 50 with a reader goroutine on the socket),
// and with a spin longer than the ping interval it is woken a handful of
// times, not once per datagram.
func TestLoopCatchesTheAnswerThroughTheTunnel(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			u := newUnderlay(t)
			// Host b's loop does not spin: at most GOMAXPROCS-1 loops
			// of a process spin at once, and host a's is counted.
			la, lb := newLoop(t, 2*time.Second), newLoop(t, 0)
			a, b := u.syHost(hostOpts{mode: mode, loop: la}), u.syHost(hostOpts{mode: mode, loop: lb})
			peerWith(t, a, b)
			mtu := a.tun.Info().MTU
			ca, cb := a.container(t, "10.240.0.2", mtu), b.container(t, "10.240.0.3", mtu)
			if err := ca.ns.Ping(cb.addr(), 1); err != nil { // ARP, MACs learned
				t.Fatal(err)
			}
			before, rx := la.Stats(), a.tun.Stats().RXDatagrams
			ca.ns.MustRun("ping", "-c", "50", "-i", "0.01", "-W", "1", "-q", cb.addr())
			after := la.Stats()
			frames, wakeups := after.Frames-before.Frames, after.Wakeups-before.Wakeups
			t.Logf("50 round trips: host a's loop read %d frames with %d wake-ups; its tunnel received %d datagrams",
				frames, wakeups, a.tun.Stats().RXDatagrams-rx)
			if frames < 100 {
				t.Fatalf("host a's loop read %d frames for 50 round trips, want ≥ 100: the requests from the TAP and the answers from the tunnel", frames)
			}
			if wakeups > 10 {
				t.Errorf("%d wake-ups of host a's loop for 50 round trips 10 ms apart with a 2 s spin, want ≤ 10", wakeups)
			}
		})
	}
}

// A bulk transfer both ways through tunnels read by loops: GRO trains,
// batches of 16 messages and the coalescer's superframes, flushed before
// the next recvmmsg reuses the buffers, arrive intact (equal checksums).
func TestLoopTransferThroughTheTunnel(t *testing.T) {
	u := newUnderlay(t)
	la, lb := newLoop(t, 50*time.Microsecond), newLoop(t, 50*time.Microsecond)
	a, b := u.syHost(hostOpts{loop: la}), u.syHost(hostOpts{loop: lb})
	peerWith(t, a, b)
	mtu := a.tun.Info().MTU
	ca, cb := a.container(t, "10.240.0.2", mtu), b.container(t, "10.240.0.3", mtu)
	if err := ca.ns.Ping(cb.addr(), 1); err != nil {
		t.Fatal(err)
	}
	rxBefore := lb.Stats().Frames
	sum, d := transfer(t, ca, cb, 5201)
	t.Logf("%d MB a→b in %v, sha256 %x", transferSize>>20, d, sum[:6])
	sum, d = transfer(t, cb, ca, 5202)
	t.Logf("%d MB b→a in %v, sha256 %x", transferSize>>20, d, sum[:6])
	logTunnel(t, "a", a.tun)
	logTunnel(t, "b", b.tun)
	sb := b.tun.Stats()
	if sb.RXBytes < transferSize {
		t.Errorf("b's tunnel received %d bytes, want at least the transfer's %d", sb.RXBytes, transferSize)
	}
	if got := lb.Stats().Frames - rxBefore; got < sb.RXBatches/2 {
		t.Errorf("b's loop handled %d frames while its tunnel received %d batches: the tunnel is not read by the loop", got, sb.RXBatches)
	}
	if b.tun.Features()&tunnel.FeatureCoalesce != 0 && sb.Coalesced == 0 {
		t.Error("the receiver built no superframe")
	}
}

// loopNode is a loopback node whose tunnel is read by l.
func loopNode(tb testing.TB, id uint32, l *evloop.Loop, discard bool) *node {
	tb.Helper()
	return newNodeWith(tb, id, tunnel.Config{Loop: l}, discard)
}

// vxlanFrom returns a datagram carrying an experimental frame from
// macN(src) to macN(dst), with VNI 42.
func vxlanFrom(tb testing.TB, dst, src byte, size int) []byte {
	tb.Helper()
	f := rawFrame(macN(dst), macN(src), src, size)
	d := make([]byte, tunnel.VXLANHeaderLen+len(f))
	copy(d[tunnel.VXLANHeaderLen:], f)
	if err := tunnel.EncodeVXLAN(d, 42); err != nil {
		tb.Fatal(err)
	}
	return d
}

// peerConn is a loopback socket that n's tunnel takes as a peer.
func peerConn(tb testing.TB, n *node) *net.UDPConn {
	tb.Helper()
	c := loopbackConn(tb)
	tb.Cleanup(func() { c.Close() })
	if err := n.tun.AddPeer(c.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		tb.Fatal(err)
	}
	return c
}

// The receive path in loop mode allocates nothing per datagram: the
// loop's wake-up, recvmmsg, decapsulation, learning and delivery.
func TestLoopReceiveDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("skipping: the race detector allocates")
	}
	l := newLoop(t, 50*time.Microsecond)
	n := loopNode(t, 1, l, true)
	c := peerConn(t, n)
	to := n.tun.LocalAddr()
	msg := vxlanFrom(t, 9, 2, 200)
	send := func() {
		want := n.local.Written() + 1
		if _, err := c.WriteToUDPAddrPort(msg, to); err != nil {
			panic(err)
		}
		for n.local.Written() < want {
			time.Sleep(10 * time.Microsecond)
		}
	}
	send() // warm up
	if avg := testing.AllocsPerRun(2000, send); avg > 0.01 {
		t.Errorf("%.3f allocations per datagram through the loop, want 0", avg)
	}
	if st := n.tun.Stats(); st.RXDatagrams < 2000 || st.Drops != 0 {
		t.Fatalf("the tunnel received %d datagrams with drops %v: the run did not exercise the path", st.RXDatagrams, st.DropsBy)
	}
	if st := l.Stats(); st.Frames < 2000 {
		t.Fatalf("the loop handled %d frames, want the 2000 datagrams", st.Frames)
	}
}

// openFDs counts the process's open descriptors.
func openFDs(tb testing.TB) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	return len(ents)
}

// Closing a looped port takes its socket out of the loop and closes both
// descriptors, while datagrams are still arriving; the loop goes on
// serving the other port, and a datagram to the closed port reaches
// nothing.
func TestLoopClosePort(t *testing.T) {
	l := newLoop(t, 50*time.Microsecond)
	loopbackConn(t).Close() // Go's netpoller opens its descriptors on first use
	fds := openFDs(t)
	a := loopNode(t, 1, l, false)
	b := loopNode(t, 2, l, false)
	ca, cb := peerConn(t, a), peerConn(t, b)
	stop := make(chan struct{})
	done := make(chan struct{})
	msg := vxlanFrom(t, 9, 2, 100)
	go func() { // a stream to a, bounded in count, stopped after Close
		defer close(done)
		for i := 0; i < 100000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ca.WriteToUDPAddrPort(msg, a.tun.LocalAddr())
			if i%64 == 63 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	waitFrames(t, a.local, 10)
	if err := a.tun.Close(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-done
	got := a.local.Written()
	if _, err := cb.WriteToUDPAddrPort(vxlanFrom(t, 9, 3, 100), b.tun.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	waitFrames(t, b.local, 1)
	if a.local.Written() != got {
		t.Errorf("port a delivered %d frames after Close returned", a.local.Written()-got)
	}
	if err := b.tun.Close(); err != nil {
		t.Fatal(err)
	}
	ca.Close()
	cb.Close()
	if now := openFDs(t); now != fds {
		t.Errorf("%d descriptors open after both ports and their peers closed, %d before: the loop's duplicate leaked", now, fds)
	}
}

// A port whose loop was closed first closes without hanging; a port
// started on a closed loop fails and says which port.
func TestLoopClosedFirst(t *testing.T) {
	l, err := evloop.New(evloop.Config{Spin: time.Millisecond, BufLen: tap.LoopBufLen})
	if err != nil {
		t.Fatal(err)
	}
	a := loopNode(t, 1, l, false)
	l.Close()
	closed := make(chan error, 1)
	go func() { closed <- a.tun.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs when the port's loop was closed first")
	}

	p, err := tunnel.New(tunnel.Config{Name: "late", Conn: loopbackConn(t), Loop: l})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.Start(nopIngress{})
	if !errors.Is(err, evloop.ErrClosed) {
		t.Fatalf("Start on a closed loop: %v, want evloop.ErrClosed", err)
	}
	t.Logf("Start on a closed loop: %v", err)
}

// A Loop reads a socket: with a PacketConn, New says so and names the
// field to leave out.
func TestLoopNeedsASocket(t *testing.T) {
	l := newLoop(t, 0)
	pc := loopbackConn(t)
	_, err := tunnel.New(tunnel.Config{Name: "pc", PacketConn: pc, Loop: l})
	if err == nil {
		t.Fatal("New with a PacketConn and a Loop succeeded")
	}
	t.Log(err)
	if _, werr := pc.WriteToUDPAddrPort([]byte{0}, netip.MustParseAddrPort("127.0.0.1:9")); !errors.Is(werr, net.ErrClosed) {
		t.Errorf("New failed but left its PacketConn open (write: %v)", werr)
	}
}

// nopIngress takes frames and drops them.
type nopIngress struct{}

func (nopIngress) Receive(vswitch.Frame) {}

// A looped port's socket is not in Go's netpoller (sysConn.unpoll):
// datagrams that the spinning loop reads wake no other thread of the
// process. In the netpoller every arrival woke the runtime thread waiting
// there, about one wake-up per datagram in this test. The process keeps a
// goroutine waiting in the netpoller (an accept), as the daemon always
// has, and a processor idle for that thread. (The sends of a socket in
// the netpoller wake it as well, when room comes back in its buffer, so
// the same holds for the datagrams the port sends.)
func TestLoopSocketWakesNoOtherThread(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3)) // the loop's, the sender's, an idle one
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go ln.Accept()

	l := newLoop(t, time.Second)
	n := loopNode(t, 1, l, true)
	// The peer's socket is out of the netpoller too: a UDP socket in it
	// reports room in its buffer after every datagram it sent.
	peer, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(peer)
	if err := unix.Bind(peer, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(peer)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.tun.AddPeer(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port))); err != nil {
		t.Fatal(err)
	}
	local := n.tun.LocalAddr()
	to := &unix.SockaddrInet4{Addr: local.Addr().As4(), Port: int(local.Port())}
	msg := vxlanFrom(t, 9, 2, 200)
	const datagrams = 2000
	send := func(k int) error {
		for range k {
			want := n.local.Written() + 1
			if err := unix.Sendto(peer, msg, 0, to); err != nil {
				return err
			}
			for deadline := time.Now().Add(5 * time.Second); n.local.Written() < want; {
				if time.Now().After(deadline) {
					return errors.New("a datagram was not delivered within 5 s")
				}
			}
		}
		return nil
	}
	if err := send(100); err != nil { // the loop starts spinning
		t.Fatal(err)
	}
	// The sender waits for each datagram to be read, spinning, on a
	// thread of its own, left out of the count.
	others, err := threadwake.During(func() error { return send(datagrams) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d datagrams: %d voluntary context switches of the process's other threads; loop %+v", datagrams, others, l.Stats())
	if others > datagrams/4 {
		t.Errorf("the process's other threads slept and woke %d times for %d datagrams read by a spinning loop, want at most %d", others, datagrams, datagrams/4)
	}
}
