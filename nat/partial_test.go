package nat

import (
	"bytes"
	"net/netip"
	"sync"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// TestProcessPartial: packets whose transport checksum is left partial by
// checksum offload are translated so that completing the checksum
// afterwards gives a valid one, in both directions; a superframe of 60 KiB
// is no different.
func TestProcessPartial(t *testing.T) {
	ms := append(testMappings(), PortMapping{Proto: ICMP, Target: ap(b6, 0)}, PortMapping{Proto: ICMP, Target: ap(b4, 0)})
	for name, tc := range map[string]struct {
		fromA func() []byte
		reply func(masq uint16) []byte
	}{
		"tcp superframe": {
			func() []byte { return tcpSeg(ap(a4, 40000), ap(gw4, 8080), syn, 1, 0, make([]byte, 60<<10)) },
			func(m uint16) []byte { return tcpSeg(ap(b4, 80), ap(gw4, m), syn|ack, 1, 2, make([]byte, 60<<10)) },
		},
		"udp": {
			func() []byte { return udpDgram(ap(a4, 40000), ap(gw4, 5353), []byte("q"), false) },
			func(m uint16) []byte { return udpDgram(ap(b4, 53), ap(gw4, m), []byte("a"), false) },
		},
		"tcp6": {
			func() []byte { return tcpSeg(ap(a6, 40000), ap(host6, 8080), syn, 1, 0, []byte("x")) },
			func(m uint16) []byte { return tcpSeg(ap(b6, 80), ap(gw6, m), syn|ack, 1, 2, []byte("y")) },
		},
		"udp6": {
			func() []byte { return udpDgram(ap(a6, 40000), ap(gw6, 5353), []byte("q"), false) },
			func(m uint16) []byte { return udpDgram(ap(b6, 53), ap(gw6, m), []byte("a"), false) },
		},
		"echo6": {
			func() []byte { return echo(a6, gw6, true, 5, 1) },
			func(m uint16) []byte { return echo(b6, gw6, false, m, 1) },
		},
		"echo4": {
			func() []byte { return echo(a4, gw4, true, 5, 1) },
			func(m uint16) []byte { return echo(b4, gw4, false, m, 1) },
		},
	} {
		t.Run(name, func(t *testing.T) {
			tb := newTestTable(t, testConfig(), ms)
			full := tc.fromA()
			want := bytes.Clone(full)
			if tb.Process(want, 0) != Translated { // the same packet, complete checksums, for reference
				t.Fatal("not translated")
			}
			tb = newTestTable(t, testConfig(), ms)
			pkt := bytes.Clone(full)
			makePartial(pkt)
			if v := tb.ProcessPartial(pkt, 0); v != Translated {
				t.Fatalf("ProcessPartial = %v", v)
			}
			completePartial(pkt)
			checksumsValid(t, pkt)
			if !sameModuloZero(pkt, want) {
				t.Fatalf("partial and full translations differ:\n partial % x\n    full % x", pkt[:60], want[:60])
			}
			f := flowOf(t, pkt)
			r := tc.reply(f.src.Port())
			makePartial(r)
			if v := tb.ProcessPartial(r, 0); v != Translated {
				t.Fatalf("reply: ProcessPartial = %v", v)
			}
			completePartial(r)
			checksumsValid(t, r)
		})
	}
}

// TestConcurrentFlows runs flows on many goroutines at once (for -race):
// each goroutine opens its own connections and checks its own packets.
func TestConcurrentFlows(t *testing.T) {
	cfg := testConfig()
	cfg.MasqPortsPerSource = 1 << 16 // all flows are a's
	tb := newTestTable(t, cfg, testMappings())
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				aEnd := ap(a4, uint16(1000+g*1000+i))
				s := tcpSeg(aEnd, ap(gw4, 8080), syn, 1, 0, nil)
				if tb.Process(s, int64(i)) != Translated {
					t.Error("SYN not translated")
					return
				}
				r := tcpSeg(ap(b4, 80), flowOf(t, s).src, syn|ack, 1, 2, nil)
				if tb.Process(r, int64(i)) != Translated {
					t.Error("SYN+ACK not translated")
					return
				}
				if f := flowOf(t, r); f.dst != aEnd {
					t.Errorf("reply went to %v, want %v", f.dst, aEnd)
				}
				if i%50 == 0 {
					tb.Sweep(int64(i))
					tb.Entries(int64(i))
					tb.Stats()
					tb.Rules()
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			tb.SetMappings(testMappings())
			tb.SetHostAddrs([]netip.Addr{host4, host6})
		}
	}()
	wg.Wait()
}

// TestTCPTransitions checks the state machine on its own, for the cases the
// connection tests do not reach.
func TestTCPTransitions(t *testing.T) {
	for _, tc := range []struct {
		s      tcpState
		seg    segment
		dir    uint8
		finDir uint8
		want   tcpState
		unexp  bool
	}{
		{tcpEstablished, segRST, dirReply, 0, tcpClose, false},
		{tcpSynSent, segSYN, dirOrig, 0, tcpSynSent, false},
		{tcpSynSent, segSYN, dirReply, 0, tcpSynSent, true},
		{tcpEstablished, segSYN, dirOrig, 0, tcpEstablished, true},
		{tcpSynSent, segSYNACK, dirOrig, 0, tcpSynSent, true},
		{tcpEstablished, segSYNACK, dirReply, 0, tcpEstablished, false},
		{tcpTimeWait, segSYNACK, dirReply, 0, tcpTimeWait, true},
		{tcpSynSent, segFIN, dirOrig, 0, tcpSynSent, true},
		{tcpSynRecv, segFIN, dirReply, 0, tcpFinWait, false},
		{tcpFinWait, segFIN, dirReply, dirOrig, tcpLastAck, false}, // simultaneous close
		{tcpFinWait, segFIN, dirOrig, dirOrig, tcpFinWait, false},
		{tcpCloseWait, segFIN, dirOrig, dirOrig, tcpCloseWait, false},
		{tcpFinWait, segACK, dirOrig, dirOrig, tcpFinWait, false},
		{tcpSynRecv, segACK, dirReply, 0, tcpSynRecv, false},
		{tcpLastAck, segACK, dirReply, dirReply, tcpTimeWait, false},
		{tcpTimeWait, segACK, dirOrig, 0, tcpTimeWait, false},
	} {
		got, unexp := tcpNext(tc.s, tc.seg, tc.dir, tc.finDir)
		if got != tc.want || unexp != tc.unexp {
			t.Errorf("%v + seg %d dir %d finDir %d = %v unexpected=%v, want %v %v", tc.s, tc.seg, tc.dir, tc.finDir, got, unexp, tc.want, tc.unexp)
		}
	}
	for f, want := range map[header.TCPFlags]segment{
		syn: segSYN, syn | ack: segSYNACK, syn | ack | header.TCPFlagEce | header.TCPFlagCwr: segSYNACK,
		rst: segRST, rst | ack: segRST, fin | ack: segFIN, fin | ack | psh: segFIN, ack | psh: segACK,
		0: segInvalid, fin: segInvalid, syn | fin: segInvalid, syn | rst: segInvalid, header.TCPFlagUrg: segInvalid,
	} {
		if got := classify(f); got != want {
			t.Errorf("classify(%v) = %d, want %d", f, got, want)
		}
	}
}
