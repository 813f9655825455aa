package tunnel

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// BenchmarkPortReceive measures the receive path over loopback: recvmmsg
// (with UDP GRO), sender lookup, decapsulation (opening), learning,
// checksum verification, coalescing and delivery to a discarding switch
// port, run by the benchmark goroutine itself in place of the port's
// reader. A second goroutine feeds the socket with trains of 44 datagrams
// (UDP GSO), each carrying a full-size (1450-byte MTU) TCP segment of one
// flow, so that the receiver merges them; it keeps a bounded
// number in flight so that none is dropped. One op is one datagram.
func BenchmarkPortReceive(b *testing.B) {
	for _, mode := range []Mode{ModeVXLAN, ModeSecure} {
		b.Run(mode.String(), func(b *testing.B) {
			benchReceive(b, mode)
		})
	}
}

func benchReceive(b *testing.B, mode Mode) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{Mode: mode, VNI: fuzzVNI, Conn: conn}
	if mode == ModeSecure {
		cfg.Key, cfg.KeyID, cfg.SenderID = fuzzKey, fuzzKeyID, fuzzSelf
	}
	p, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	feeder, err := New(Config{Mode: mode, VNI: fuzzVNI, Conn: mustLoopback(b), Key: fuzzKey, KeyID: fuzzKeyID, SenderID: fuzzSender})
	if err != nil {
		b.Fatal(err)
	}
	defer feeder.Close()
	if err := p.AddPeer(feeder.LocalAddr()); err != nil {
		b.Fatal(err)
	}
	if err := feeder.AddPeer(p.LocalAddr()); err != nil {
		b.Fatal(err)
	}
	r := p.newRxBatch(discard{})
	const train = 44
	seg := tcpSegment(1, 1, p.mtu-40, 0x10)

	var done atomic.Int64
	stop := make(chan struct{})
	fed := make(chan struct{})
	go func() { // the feeder: trains of segments, at most 8 trains ahead
		defer close(fed)
		t := feeder.txPool.Get().(*txBatch)
		t.targets = feeder.peers.Load().list
		t.cur = feeder.txBufs.Get().(*txBuf)
		t.cur.setTargets(t.targets)
		sent := int64(0)
		for seq := uint32(1); ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			if sent-done.Load() > 8*train {
				time.Sleep(20 * time.Microsecond)
				continue
			}
			for range train {
				t.add(seg, vswitch.Offload{})
			}
			t.flush()
			sent += train
		}
	}()
	b.ReportAllocs()
	b.SetBytes(int64(len(seg)))
	n, calls := 0, 0
	for b.Loop() {
		for n == 0 {
			var err error
			if n, err = p.sock.recv(r); err != nil {
				b.Fatal(err)
			}
			calls++
			got := 0
			for i := range n {
				src, data, segSize, _ := r.sys.msg(r, i)
				p.receiveMessage(r.co, src, data, segSize)
				if segSize > 0 {
					got += (len(data) + segSize - 1) / segSize
				} else {
					got++
				}
			}
			r.co.flush()
			done.Add(int64(got))
			n = got
		}
		n--
	}
	close(stop)
	<-fed
	s := p.Stats()
	if s.Drops != 0 {
		b.Fatalf("drops %v", s.DropsBy)
	}
	b.ReportMetric(float64(s.RXDatagrams)/b.Elapsed().Seconds(), "datagrams/s")
	b.ReportMetric(float64(s.RXDatagrams)/float64(max(calls, 1)), "datagrams/syscall")
}

func mustLoopback(tb testing.TB) *net.UDPConn {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}
