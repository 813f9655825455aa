package nat

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Tuple is one direction of a tracked flow, as its packets arrive at the
// gateway.
type Tuple struct {
	Src, Dst netip.Addr
	// SrcPort and DstPort are the ports. For ICMP echo, SrcPort is the
	// identifier and DstPort the ICMP type.
	SrcPort, DstPort uint16
}

// Entry is one tracked flow, as Entries reports it.
type Entry struct {
	Proto Proto
	// Orig is the initiator's packets as they arrive (container A to the
	// published address and port); Reply is the responder's (container
	// B to the gateway's masquerade port).
	Orig, Reply Tuple
	// State is the TCP state ("ESTABLISHED", …); empty for UDP and ICMP.
	State string
	// Timeout is how long the entry lives without another packet.
	Timeout time.Duration
	// Assured entries are never evicted to make room while open.
	Assured bool
	// Replied says that the responder has sent a packet.
	Replied bool
	// Packets and Bytes count each direction (orig, reply).
	Packets, Bytes [2]uint64
	// Mapping is the published port the flow was DNATed by.
	Mapping PortMapping

	created int64
}

// Entries returns the live entries, oldest first, with their time left
// at now.
func (t *Table) Entries(now int64) []Entry {
	t.mu.Lock()
	out := make([]Entry, 0, t.n)
	for k, c := range t.conns {
		if k != c.orig || c.expires <= now {
			continue
		}
		e := Entry{
			Proto:   c.mapping.Proto,
			Orig:    c.orig.export(),
			Reply:   c.reply.export(),
			Timeout: time.Duration(c.expires - now),
			Assured: c.assured,
			Replied: c.seenReply,
			Packets: c.packets,
			Bytes:   c.bytes,
			Mapping: c.mapping,
			created: c.created,
		}
		if c.orig.proto == protoTCP {
			e.State = c.state.String()
		}
		out = append(out, e)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(a.created, b.created), a.Orig.Src.Compare(b.Orig.Src),
			cmp.Compare(a.Orig.SrcPort, b.Orig.SrcPort), a.Orig.Dst.Compare(b.Orig.Dst),
			cmp.Compare(a.Orig.DstPort, b.Orig.DstPort))
	})
	return out
}

func (t tuple) export() Tuple {
	return Tuple{Src: t.src, Dst: t.dst, SrcPort: t.sport, DstPort: t.dport}
}

// String formats e as `conntrack -L` does with accounting on:
//
//	tcp      6 431999 ESTABLISHED src=172.17.0.3 dst=172.17.0.1 sport=40000 dport=8080 packets=3 bytes=180 src=172.17.0.2 dst=172.17.0.1 sport=80 dport=61000 packets=2 bytes=112 [ASSURED]
func (e Entry) String() string {
	var b strings.Builder
	name, num := e.Proto.String(), int(e.Proto)
	if e.Proto == ICMP && e.Orig.Src.Is6() {
		name, num = "ipv6-icmp", protoICMPv6
	}
	fmt.Fprintf(&b, "%-8s %d %d ", name, num, int64(e.Timeout/time.Second))
	if e.State != "" {
		b.WriteString(e.State)
		b.WriteByte(' ')
	}
	e.Orig.format(&b, e.Proto)
	fmt.Fprintf(&b, " packets=%d bytes=%d ", e.Packets[dirOrig], e.Bytes[dirOrig])
	if !e.Replied {
		b.WriteString("[UNREPLIED] ")
	}
	e.Reply.format(&b, e.Proto)
	fmt.Fprintf(&b, " packets=%d bytes=%d", e.Packets[dirReply], e.Bytes[dirReply])
	if e.Assured {
		b.WriteString(" [ASSURED]")
	}
	return b.String()
}

func (t Tuple) format(b *strings.Builder, p Proto) {
	if p == ICMP {
		fmt.Fprintf(b, "src=%s dst=%s type=%d code=0 id=%d", t.Src, t.Dst, t.DstPort, t.SrcPort)
		return
	}
	fmt.Fprintf(b, "src=%s dst=%s sport=%d dport=%d", t.Src, t.Dst, t.SrcPort, t.DstPort)
}
