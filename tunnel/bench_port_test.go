package tunnel_test

import (
	"fmt"
	"net/netip"
	"testing"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tunnel"
)

// BenchmarkPortSend measures Write: lookup, segmentation of superframes,
// encapsulation (sealing) and the send system calls, over loopback to a
// receiving port in the same process. One op is one frame the switch
// hands over: a full-size frame (1464 bytes, the 1450-byte MTU), or a
// 64 KiB superframe cut into 45 datagrams sent with UDP GSO (TCP/IPv4;
// superframe6 is TCP/IPv6, 48 datagrams).
func BenchmarkPortSend(b *testing.B) {
	for _, mode := range modes {
		for _, size := range []string{"mtu", "superframe", "superframe6"} {
			b.Run(fmt.Sprintf("%v/%s", mode, size), func(b *testing.B) {
				tx := newNodeWith(b, 1, tunnel.Config{Mode: mode}, true)
				rx := newNodeWith(b, 2, tunnel.Config{Mode: mode}, true)
				mesh(b, tx, rx)
				rx.local.Inject(rawFrame(vswitch.Broadcast, macN(2), 0, 60))
				waitFor(b, "the MAC to be learned", func() bool { return len(tx.tun.MACs()) == 1 })
				f := vswitch.Frame{Data: rawFrame(macN(2), macN(1), 0, tx.tun.Info().MTU)}
				switch size {
				case "superframe":
					f = tcpSuper{dst: macN(2), src: macN(1), mss: tx.tun.Info().MTU - 52, payload: 65000,
						srcIP: netip.MustParseAddr("10.0.0.1"), dstIP: netip.MustParseAddr("10.0.0.2")}.frame()
				case "superframe6": // IPv6 inside the overlay: 20 bytes more header per segment
					f = tcpSuper{dst: macN(2), src: macN(1), mss: tx.tun.Info().MTU - 72, payload: 65000, v6: true,
						srcIP: netip.MustParseAddr("fd00::1"), dstIP: netip.MustParseAddr("fd00::2")}.frame()
				}
				before := tx.tun.Stats()
				b.ReportAllocs()
				b.SetBytes(int64(len(f.Data)))
				for b.Loop() {
					if err := tx.tun.Write(f); err != nil {
						b.Fatal(err)
					}
				}
				s := tx.tun.Stats()
				dg := float64(s.TXDatagrams - before.TXDatagrams)
				b.ReportMetric(dg/b.Elapsed().Seconds(), "datagrams/s")
				b.ReportMetric(dg/float64(s.TXSyscalls-before.TXSyscalls), "datagrams/syscall")
			})
		}
	}
}
