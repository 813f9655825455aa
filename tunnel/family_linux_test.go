//go:build linux

package tunnel_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/netnstest"
	"github.com/switchyard-net/switchyard/tunnel"
)

// superframeWatch checks, on a TAP's link, the offload metadata of every
// TCP superframe of one IP family that crosses it in one direction: the
// GSO type of the family, a partial checksum that starts at the TCP
// header (so the kernel on the other side neither cuts the frame nor
// verifies its checksum in software), and segments that fit the MTU.
type superframeWatch struct {
	v6      bool
	dir     vswitch.Direction
	maxSeg  int // the largest frame a segment may be: Ethernet header and MTU
	frames  atomic.Int64
	payload atomic.Int64 // TCP payload bytes in superframes
	bad     atomic.Int64
	badWhy  atomic.Value // string: the first bad frame's description
}

func (w *superframeWatch) capture(dir vswitch.Direction, f vswitch.Frame) {
	if dir != w.dir || len(f.Data) <= w.maxSeg || len(f.Data) < vswitch.EthHeaderLen+20 {
		return
	}
	b := f.Data
	et := binary.BigEndian.Uint16(b[12:14])
	var l4 int
	var proto byte
	gso := vswitch.GSOTCPv4
	switch {
	case w.v6 && et == 0x86dd:
		l4, proto, gso = vswitch.EthHeaderLen+40, b[vswitch.EthHeaderLen+6], vswitch.GSOTCPv6
	case !w.v6 && et == 0x0800:
		l4, proto = vswitch.EthHeaderLen+int(b[vswitch.EthHeaderLen]&0xf)*4, b[vswitch.EthHeaderLen+9]
	default:
		return
	}
	if proto != 6 || len(b) < l4+20 {
		return
	}
	hdrLen := l4 + int(b[l4+12]>>4)*4
	o := f.Offload
	w.frames.Add(1)
	w.payload.Add(int64(len(b) - hdrLen))
	var why string
	switch {
	case o.GSOType&^vswitch.GSOECN != gso:
		why = fmt.Sprintf("GSO type %#x, want %#x", o.GSOType, gso)
	case !o.NeedsCsum() || int(o.CsumStart) != l4 || o.CsumOffset != 16:
		why = fmt.Sprintf("checksum flags %#x start %d offset %d, want partial from %d at 16", o.Flags, o.CsumStart, o.CsumOffset, l4)
	case o.GSOSize == 0 || hdrLen+int(o.GSOSize) > w.maxSeg:
		why = fmt.Sprintf("GSO size %d with %d header bytes, want segments of at most %d bytes", o.GSOSize, hdrLen, w.maxSeg)
	default:
		return
	}
	if w.bad.Add(1) == 1 {
		w.badWhy.Store(fmt.Sprintf("%d-byte frame: %s", len(b), why))
	}
}

func (w *superframeWatch) check(t *testing.T, side string, minPayload int64) {
	t.Helper()
	t.Logf("%s: %d TCP superframes, %d payload bytes in them, %d with bad offload metadata",
		side, w.frames.Load(), w.payload.Load(), w.bad.Load())
	if w.bad.Load() != 0 {
		t.Errorf("%s: %d superframes with bad offload metadata, the first: %v", side, w.bad.Load(), w.badWhy.Load())
	}
	if w.payload.Load() < minPayload {
		t.Errorf("%s: %d TCP payload bytes in superframes, want at least %d", side, w.payload.Load(), minPayload)
	}
}

// nstatCounter reads one of the kernel's SNMP counters in ns.
func nstatCounter(t *testing.T, ns *netnstest.NS, name string) int64 {
	t.Helper()
	out := ns.MustRun("nstat", "-az", name)
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == name {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatalf("nstat %s: %q: %v", name, l, err)
			}
			return n
		}
	}
	t.Fatalf("nstat has no %s in %q", name, out)
	return 0
}

// A bulk TCP transfer between containers on two hosts keeps its offloads
// end to end with either IP family inside the overlay (issue 10: IPv6
// must be within 10 % of IPv4): the sending TAP yields superframes (TSO
// or TSO6, read whole), the tunnel cuts them itself, the receiving tunnel
// coalesces the segments again, and the receiving TAP is written
// superframes with the family's GSO type and a partial checksum, so the
// receiving kernel neither segments nor verifies in software. At least
// half the payload must cross each TAP in superframes, and the receiver
// must count no checksum errors.
func TestTwoHostsOffloadsBothFamilies(t *testing.T) {
	for _, fam := range []struct {
		name string
		v6   bool
	}{{"IPv4", false}, {"IPv6", true}} {
		t.Run(fam.name, func(t *testing.T) {
			u := newUnderlay(t)
			a, b := u.syHost(hostOpts{}), u.syHost(hostOpts{})
			peerWith(t, a, b)
			mtu := a.tun.Info().MTU
			nsA, linkA := a.dualContainerLink(t, 2, mtu)
			nsB, linkB := b.dualContainerLink(t, 3, mtu)
			dst := netip.AddrFrom4([4]byte{10, 240, 0, 3})
			if fam.v6 {
				dst = dualV6(3).Addr()
			}
			if err := nsA.Ping(dst.String(), 2); err != nil {
				t.Fatal(err)
			}
			maxSeg := vswitch.EthHeaderLen + mtu
			sent := &superframeWatch{v6: fam.v6, dir: vswitch.DirRX, maxSeg: maxSeg}
			got := &superframeWatch{v6: fam.v6, dir: vswitch.DirTX, maxSeg: maxSeg}
			linkA.SetCapture(sent.capture)
			linkB.SetCapture(got.capture)
			errs0 := nstatCounter(t, nsB, "TcpInCsumErrors")

			_, d := netnstest.Transfer(t, nsA, nsB, netip.AddrPortFrom(dst, 5201).String(), transferSize)
			t.Logf("%d MB a→b over %s in %v", transferSize>>20, fam.name, d)
			linkA.SetCapture(nil)
			linkB.SetCapture(nil)
			logTunnel(t, "a", a.tun)
			logTunnel(t, "b", b.tun)

			sent.check(t, "sending TAP (read from the container)", transferSize/2)
			got.check(t, "receiving TAP (written to the container)", transferSize/2)
			if n := nstatCounter(t, nsB, "TcpInCsumErrors") - errs0; n != 0 {
				t.Errorf("the receiving container counted %d TCP checksum errors", n)
			}
			sa, sb := a.tun.Stats(), b.tun.Stats()
			if sa.Segmented == 0 {
				t.Error("the sending tunnel cut no superframe")
			}
			if sb.Coalesced == 0 {
				t.Error("the receiving tunnel built no superframe")
			}
			if bad := sb.Drops - sb.DropsBy[tunnel.DropSend] - sb.DropsBy[tunnel.DropQueueFull]; bad != 0 {
				t.Errorf("unexpected drops at the receiver: %v", sb.DropsBy)
			}
		})
	}
}
