package dhcp6

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"time"

	"go.uber.org/zap"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// handle serves one client message from the client at Ethernet address
// src and link-local address srcIP. payload is the UDP payload, owned by
// the caller.
func (s *Server) handle(src vswitch.MAC, srcIP [16]byte, payload []byte) {
	if len(payload) > 0 && payload[0] == MsgRelayForw {
		// A relay's message has another layout (RFC 8415, section
		// 9); this server serves its own link only.
		s.stats.relayed.Add(1)
		return
	}
	m, err := parse(payload)
	if err != nil {
		s.stats.malformed.Add(1)
		return
	}
	if !s.admit(&m) {
		return
	}
	bp := s.bufs.Get().(*[]byte)
	w := builder{b: (*bp)[:0]}
	if s.answer(&w, &m, src) {
		s.send(src, srcIP, w.b)
	}
	*bp = w.b[:0]
	s.bufs.Put(bp)
}

// admit counts m by its type and checks the identifiers it must and must
// not carry (RFC 8415, section 16). It reports whether m is to be
// answered.
func (s *Server) admit(m *message) bool {
	var needClient, needServer, noServer bool
	switch m.typ {
	case MsgSolicit:
		s.stats.solicits.Add(1)
		needClient, noServer = true, true
	case MsgRequest:
		s.stats.requests.Add(1)
		needClient, needServer = true, true
	case MsgConfirm:
		s.stats.confirms.Add(1)
		needClient, noServer = true, true
	case MsgRenew:
		s.stats.renews.Add(1)
		needClient, needServer = true, true
	case MsgRebind:
		s.stats.rebinds.Add(1)
		needClient, noServer = true, true
	case MsgRelease:
		s.stats.releases.Add(1)
		needClient, needServer = true, true
	case MsgDecline:
		s.stats.declines.Add(1)
		needClient, needServer = true, true
	case MsgInformationRequest:
		s.stats.infoRequests.Add(1)
		if m.nIAs > 0 || m.otherIAs {
			s.stats.ignored.Add(1)
			return false
		}
	default: // a server's or a relay's message, or no message at all
		s.stats.malformed.Add(1)
		return false
	}
	switch {
	case needClient && m.clientID == nil, needServer && m.serverID == nil, noServer && m.serverID != nil:
		s.stats.malformed.Add(1)
		return false
	case m.serverID != nil && !bytes.Equal(m.serverID, s.duid):
		s.stats.ignored.Add(1) // the client chose another server
		return false
	}
	return true
}

// answer writes into w the reply to m from the client at MAC src, and
// reports whether there is one.
func (s *Server) answer(w *builder, m *message, src vswitch.MAC) bool {
	now := s.now()
	switch m.typ {
	case MsgSolicit:
		addr, ok := s.reserved(src)
		if !ok {
			// RFC 8415, section 18.3.9: only a status, no IA.
			s.stats.noAddrs.Add(1)
			s.head(w, MsgAdvertise, m)
			w.status(StatusNoAddrsAvail, "no address is reserved for this MAC")
			return true
		}
		if m.rapidCommit {
			s.head(w, MsgReply, m)
			w.option(OptRapidCommit, nil)
			s.assign(w, m, src, addr, now)
		} else {
			s.head(w, MsgAdvertise, m)
			// The only server of the link, authoritative: preference
			// 255 lets the client request at once instead of waiting
			// a second for other offers (RFC 8415, section 18.2.1).
			w.option(OptPreference, []byte{255})
			s.offer(w, m, src, addr)
		}
		s.config(w)
	case MsgRequest, MsgRenew, MsgRebind:
		addr, ok := s.reserved(src)
		s.head(w, MsgReply, m)
		switch {
		case ok:
			s.assign(w, m, src, addr, now)
		case m.typ == MsgRequest:
			s.stats.noAddrs.Add(1)
			s.noAddrs(w, m, StatusNoAddrsAvail)
		default:
			// This server is authoritative for the link: a client it
			// has no address for holds none, and what it thinks it
			// holds is withdrawn (RFC 8415, sections 18.3.4, 18.3.5).
			s.stats.noAddrs.Add(1)
			s.withdraw(w, m)
		}
		s.config(w)
	case MsgConfirm:
		n, onLink := 0, true
		for _, x := range m.ias[:m.nIAs] {
			for _, a := range x.addrs[:x.nAddrs] {
				n++
				onLink = onLink && s.cfg.Subnet.Contains(a)
			}
		}
		if n == 0 { // RFC 8415, section 18.3.3: no address, no reply
			s.stats.ignored.Add(1)
			return false
		}
		s.head(w, MsgReply, m)
		if onLink {
			w.status(StatusSuccess, "on link")
		} else {
			w.status(StatusNotOnLink, "not on this link")
		}
	case MsgRelease, MsgDecline:
		s.forget(src, m)
		s.head(w, MsgReply, m)
		w.status(StatusSuccess, "")
	case MsgInformationRequest:
		s.head(w, MsgReply, m)
		s.config(w)
	}
	return true
}

// reserved returns the address reserved for mac, if it is one of the
// subnet's.
func (s *Server) reserved(mac vswitch.MAC) (netip.Addr, bool) {
	a, ok := s.cfg.Reservations.Reserved(mac)
	if !ok || !a.Is6() || !s.cfg.Subnet.Contains(a) {
		return netip.Addr{}, false
	}
	return a, true
}

// head starts a reply of type typ to m: transaction ID, server and
// client identifiers.
func (s *Server) head(w *builder, typ uint8, m *message) {
	w.header(typ, m.xid)
	w.option(OptServerID, s.duid)
	if m.clientID != nil {
		w.option(OptClientID, m.clientID)
	}
}

// config appends the network's configuration: DNS servers and domain.
func (s *Server) config(w *builder) {
	if len(s.cfg.DNS) > 0 {
		mark := w.begin(OptDNSServers)
		for _, a := range s.cfg.DNS {
			w.addr(a)
		}
		w.end(mark)
	}
	if s.cfg.DomainName != "" {
		mark := w.begin(OptDomainList)
		w.b, _ = appendDomain(w.b, s.cfg.DomainName) // checked by New
		w.end(mark)
	}
}

// chosen returns the index of the IA_NA of m that gets the client's
// address: the one the client holds it in, if the table knows, else the
// first. It returns -1 if m has no IA_NA.
func (s *Server) chosen(m *message, mac vswitch.MAC) int {
	if m.nIAs == 0 {
		return -1
	}
	s.mu.Lock()
	l := s.leases[mac]
	s.mu.Unlock()
	if l != nil {
		for i, x := range m.ias[:m.nIAs] {
			if x.id == l.iaid {
				return i
			}
		}
	}
	return 0
}

// offer appends m's IAs to an ADVERTISE to mac: the chosen one with
// addr, the others with NoAddrsAvail (one address per client). An offer
// binds nothing.
func (s *Server) offer(w *builder, m *message, mac vswitch.MAC, addr netip.Addr) {
	c := s.chosen(m, mac)
	for i, x := range m.ias[:m.nIAs] {
		mark := s.beginIA(w, x)
		if i == c {
			s.iaAddr(w, addr, s.leaseTime)
		} else {
			w.status(StatusNoAddrsAvail, "one address per client")
		}
		w.end(mark)
	}
}

// assign appends m's IAs to a REPLY that binds addr to the client: the
// chosen IA gets addr (and any other address the client listed there,
// with lifetimes 0: withdrawn), the others NoAddrsAvail; and it records
// the lease. Without an IA_NA in m, it binds nothing.
func (s *Server) assign(w *builder, m *message, mac vswitch.MAC, addr netip.Addr, now time.Time) {
	c := s.chosen(m, mac)
	for i, x := range m.ias[:m.nIAs] {
		mark := s.beginIA(w, x)
		if i == c {
			s.iaAddr(w, addr, s.leaseTime)
			for _, a := range x.addrs[:x.nAddrs] {
				if a != addr {
					s.iaAddr(w, a, 0)
				}
			}
		} else {
			w.status(StatusNoAddrsAvail, "one address per client")
		}
		w.end(mark)
	}
	if c < 0 {
		return
	}
	s.mu.Lock()
	l := s.leases[mac]
	if l == nil {
		l = &lease{}
		s.leases[mac] = l
	}
	if l.addr != addr || l.duid != string(m.clientID) {
		s.log.Debug("bound", zap.Stringer("mac", mac), zap.Stringer("addr", addr))
	}
	l.addr, l.iaid, l.expiry = addr, m.ias[c].id, now.Add(s.leaseTime)
	if l.duid != string(m.clientID) {
		l.duid = string(m.clientID)
	}
	s.mu.Unlock()
}

// noAddrs appends each IA of m with status code, no address.
func (s *Server) noAddrs(w *builder, m *message, code uint16) {
	for _, x := range m.ias[:m.nIAs] {
		mark := s.beginIA(w, x)
		w.status(code, "no address is reserved for this MAC")
		w.end(mark)
	}
}

// withdraw appends each IA of m with the addresses the client listed at
// lifetimes 0; an IA with no address gets NoBinding.
func (s *Server) withdraw(w *builder, m *message) {
	for _, x := range m.ias[:m.nIAs] {
		mark := s.beginIA(w, x)
		for _, a := range x.addrs[:x.nAddrs] {
			s.iaAddr(w, a, 0)
		}
		if x.nAddrs == 0 {
			w.status(StatusNoBinding, "no address is reserved for this MAC")
		}
		w.end(mark)
	}
}

// beginIA starts an IA_NA option for x with this server's T1 and T2.
func (s *Server) beginIA(w *builder, x ia) int {
	mark := w.begin(OptIANA)
	w.b = append(w.b, x.id[:]...)
	secs := uint32(s.leaseTime / time.Second)
	w.u32(secs / 2)
	w.u32(secs / 5 * 4)
	return mark
}

// iaAddr appends an IA Address option for a with preferred and valid
// lifetimes life.
func (s *Server) iaAddr(w *builder, a netip.Addr, life time.Duration) {
	mark := w.begin(OptIAAddr)
	w.addr(a)
	secs := uint32(life / time.Second)
	w.u32(secs)
	w.u32(secs)
	w.end(mark)
}

// forget removes the lease of mac if the client gives back (RELEASE) or
// declines its address. The reservation stays with the endpoint: a client
// that declined gets the same address again.
func (s *Server) forget(mac vswitch.MAC, m *message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leases[mac]
	if l == nil {
		return
	}
	for _, x := range m.ias[:m.nIAs] {
		for _, a := range x.addrs[:x.nAddrs] {
			if a == l.addr {
				delete(s.leases, mac)
				if m.typ == MsgDecline {
					s.log.Debug("a client declined its reserved address: another host uses it",
						zap.Stringer("mac", mac), zap.Stringer("addr", a))
				}
				return
			}
		}
	}
}

// Sweep forgets the leases that expired by now. The gateway's janitor
// calls it every few seconds.
func (s *Server) Sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for mac, l := range s.leases {
		if !now.Before(l.expiry) {
			delete(s.leases, mac)
		}
	}
}

// Leases returns the lease table, ordered by address.
func (s *Server) Leases() []Lease {
	s.mu.Lock()
	out := make([]Lease, 0, len(s.leases))
	for mac, l := range s.leases {
		out = append(out, Lease{MAC: mac, Addr: l.addr, DUID: hex.EncodeToString([]byte(l.duid)),
			IAID: uint32(l.iaid[0])<<24 | uint32(l.iaid[1])<<16 | uint32(l.iaid[2])<<8 | uint32(l.iaid[3]), Expiry: l.expiry})
	}
	s.mu.Unlock()
	sortLeases(out)
	return out
}
