package proxy

import (
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Batches. A busy UDP binding reads up to udpBatch client datagrams per
// system call (recvmmsg) and writes each run of datagrams for one flow
// whose connection is a kernel socket (the splice path) in one more
// (sendmmsg): the per-datagram cost of a relay is its system calls. A
// binding starts with the single-datagram loop and one buffer, and takes
// the batch buffers (udpBatch × 64 KiB, mostly never touched) only after
// batchAfter datagrams, so a thousand idle UDP ports cost nothing more.

const (
	udpBatch   = 16
	batchAfter = 256
)

// batchReader is ipv4.PacketConn or ipv6.PacketConn (their Message types
// are one type).
type batchReader interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
}

type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// udpBatchState is the reader's batch buffers and the write messages it
// builds from them.
type udpBatchState struct {
	r    batchReader
	msgs []ipv4.Message
	out  []ipv4.Message // views of msgs' buffers, for WriteBatch
	bufs [][][]byte     // out[i].Buffers, preallocated
}

func newBatchReader(c *net.UDPConn) batchReader {
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		return ipv6.NewPacketConn(c)
	}
	return ipv4.NewPacketConn(c)
}

func newBatchWriter(c *net.UDPConn) batchWriter {
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		return ipv6.NewPacketConn(c)
	}
	return ipv4.NewPacketConn(c)
}

func (b *udpBinding) newBatch() *udpBatchState {
	s := &udpBatchState{r: newBatchReader(b.conn), msgs: make([]ipv4.Message, udpBatch),
		out: make([]ipv4.Message, udpBatch), bufs: make([][][]byte, udpBatch)}
	for i := range s.msgs {
		s.msgs[i].Buffers = [][]byte{make([]byte, maxDatagram)}
		if b.pktinfo {
			s.msgs[i].OOB = make([]byte, pktinfoSpace)
		}
		s.bufs[i] = make([][]byte, 1)
	}
	return s
}

// readBatch reads and forwards one batch; it returns the read error.
func (b *udpBinding) readBatch(s *udpBatchState) error {
	for i := range s.msgs {
		s.msgs[i].OOB = s.msgs[i].OOB[:cap(s.msgs[i].OOB)]
	}
	n, err := s.r.ReadBatch(s.msgs, 0)
	if err != nil {
		return err
	}
	msgs := s.msgs[:n]
	for i := 0; i < len(msgs); {
		m := &msgs[i]
		client, ok := msgAddr(m)
		if !ok || m.Flags&unix.MSG_TRUNC != 0 {
			b.c.dropped.Add(1)
			i++
			continue
		}
		f := b.flowFor(client, m.OOB[:m.NN])
		// The run of datagrams from the same client.
		j := i + 1
		for j < len(msgs) {
			c, ok := msgAddr(&msgs[j])
			if !ok || c != client || msgs[j].Flags&unix.MSG_TRUNC != 0 {
				break
			}
			j++
		}
		if f == nil {
			b.c.dropped.Add(uint64(j - i))
			i = j
			continue
		}
		f.touch()
		f.sendRun(s, msgs[i:j])
		i = j
	}
	return nil
}

// sendRun forwards datagrams from the flow's client: in one sendmmsg on a
// kernel socket, one by one otherwise.
func (f *udpFlow) sendRun(s *udpBatchState, run []ipv4.Message) {
	b := f.b
	if f.wb != nil && len(run) > 1 {
		out := s.out[:len(run)]
		for k := range run {
			s.bufs[k][0] = run[k].Buffers[0][:run[k].N]
			out[k] = ipv4.Message{Buffers: s.bufs[k]}
		}
		sent := 0
		for sent < len(out) {
			n, err := f.wb.WriteBatch(out[sent:], 0)
			if err != nil || n == 0 {
				b.c.dropped.Add(uint64(len(out) - sent))
				break
			}
			for _, m := range out[sent : sent+n] {
				b.c.pktIn.Add(1)
				b.c.bytesIn.Add(uint64(len(m.Buffers[0])))
			}
			sent += n
		}
		return
	}
	for k := range run {
		p := run[k].Buffers[0][:run[k].N]
		if _, err := f.conn.Write(p); err != nil {
			b.c.dropped.Add(1)
			continue
		}
		b.c.pktIn.Add(1)
		b.c.bytesIn.Add(uint64(len(p)))
	}
}

func msgAddr(m *ipv4.Message) (netip.AddrPort, bool) {
	ua, ok := m.Addr.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}
