package dhcp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"go.uber.org/zap"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// reply is what the Server answers a client message with.
type reply struct {
	typ    dhcpv4.MessageType // MessageTypeNone: no answer
	yiaddr netip.Addr         // the client's address (OFFER, ACK to REQUEST)
	ciaddr netip.Addr         // copied from the request (ACK)
	// to, if valid, is where the reply goes (INFORM: the client's
	// configured address); otherwise it is chosen from the request.
	to      netip.Addr
	lease   bool   // carries lease time, T1 and T2
	config  bool   // carries the network's configuration options
	message string // NAK: why (option 56)
}

// handle serves one DHCP message from the client at src (Ethernet) and
// ipSrc (IPv4 source, 0.0.0.0 before it has an address). msg is the UDP
// payload, owned by the caller.
func (s *Server) handle(src vswitch.MAC, ipSrc [4]byte, msg []byte) {
	req, err := dhcpv4.FromBytes(msg)
	if err != nil || req.OpCode != dhcpv4.OpcodeBootRequest || req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		s.stats.malformed.Add(1)
		return
	}
	if addrOf(req.GatewayIPAddr).IsValid() {
		s.stats.relayed.Add(1)
		return
	}
	if mac := vswitch.MAC(req.ClientHWAddr); mac != src || mac.IsMulticast() || mac.IsZero() {
		// Not the sender's own MAC; or a group MAC, which no station
		// has and which holds declined addresses.
		s.stats.spoofed.Add(1)
		return
	}
	now := s.now()
	var r reply
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		s.stats.discovers.Add(1)
		r = s.discover(req, src, now)
	case dhcpv4.MessageTypeRequest:
		s.stats.requests.Add(1)
		r = s.request(req, src, now)
	case dhcpv4.MessageTypeRelease:
		s.stats.releases.Add(1)
		s.release(req, src)
	case dhcpv4.MessageTypeDecline:
		s.stats.declines.Add(1)
		s.decline(req, src, now)
	case dhcpv4.MessageTypeInform:
		s.stats.informs.Add(1)
		r = s.inform(req, netip.AddrFrom4(ipSrc))
	default:
		s.stats.malformed.Add(1)
	}
	if r.typ != dhcpv4.MessageTypeNone {
		s.send(req, r)
	}
}

// discover answers a DISCOVER with an OFFER (RFC 2131, section 4.3.1): the
// client's current address if it has one, else the address the Allocator
// gives, preferring the one the client asks for.
func (s *Server) discover(req *dhcpv4.DHCPv4, mac vswitch.MAC, now time.Time) reply {
	host := hostname(req)
	requested := addrOf(req.RequestedIPAddress())
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leases[mac]
	if l != nil && l.state == StateOffered && requested.IsValid() && requested != l.addr && s.usable(requested) {
		// An offer is no binding: the client may prefer another
		// address, and gets it if it is free.
		s.releaseLocked(l)
		l = nil
	}
	if l == nil {
		a, ok := s.allocateLocked(mac, host, requested)
		if !ok {
			return reply{}
		}
		l = &lease{holder: mac, client: mac, addr: a, state: StateOffered}
		s.leases[mac] = l
	}
	if host != "" {
		l.hostname = host
	}
	if l.state == StateOffered {
		l.expiry = now.Add(OfferHold)
	}
	s.log.Debug("offer", zap.Stringer("mac", mac), zap.Stringer("addr", l.addr))
	return reply{typ: dhcpv4.MessageTypeOffer, yiaddr: l.addr, lease: true, config: true}
}

// request answers a REQUEST (RFC 2131, section 4.3.2) in each of the
// client's states, told apart by the fields it fills in:
//
//	SELECTING    server identifier, requested address    (after our OFFER)
//	INIT-REBOOT  requested address, no server identifier (a rebooted client)
//	RENEWING     ciaddr, unicast to the server           (at T1)
//	REBINDING    ciaddr, broadcast                       (at T2)
func (s *Server) request(req *dhcpv4.DHCPv4, mac vswitch.MAC, now time.Time) reply {
	host := hostname(req)
	ciaddr := addrOf(req.ClientIPAddr)
	requested := addrOf(req.RequestedIPAddress())
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leases[mac]
	var want netip.Addr
	switch {
	case req.Options.Has(dhcpv4.OptionServerIdentifier):
		if addrOf(req.ServerIdentifier()) != s.cfg.Router {
			// The client took another server's offer: ours is free
			// again.
			if l != nil && l.state == StateOffered {
				s.releaseLocked(l)
			}
			s.stats.ignored.Add(1)
			return reply{}
		}
		want = requested
		if !want.IsValid() {
			want = ciaddr // some clients fill in ciaddr instead
		}
	case requested.IsValid():
		want = requested
	case ciaddr.IsValid():
		want = ciaddr
	}
	if !want.IsValid() {
		s.stats.malformed.Add(1)
		return reply{}
	}
	nak := reply{typ: dhcpv4.MessageTypeNak}
	switch {
	case l != nil && l.addr != want:
		nak.message = "requested address is not the one leased to this client"
		s.log.Debug("nak", zap.Stringer("mac", mac), zap.Stringer("requested", want), zap.Stringer("leased", l.addr))
		return nak
	case l != nil:
		l.state = StateBound
		l.expiry = now.Add(s.leaseTime)
		if host != "" {
			l.hostname = host
		}
	case !s.usable(want):
		nak.message = "requested address is not on this network"
		s.log.Debug("nak", zap.Stringer("mac", mac), zap.Stringer("requested", want))
		return nak
	case !s.adoptLocked(mac, host, want, now):
		// No record of the client, and the address is not free for
		// it: this server is authoritative for its subnet, so it says
		// no rather than stay silent.
		nak.message = "requested address is not available"
		s.log.Debug("nak", zap.Stringer("mac", mac), zap.Stringer("requested", want))
		return nak
	}
	s.log.Debug("ack", zap.Stringer("mac", mac), zap.Stringer("addr", want), zap.String("hostname", host))
	return reply{typ: dhcpv4.MessageTypeAck, yiaddr: want, ciaddr: ciaddr, lease: true, config: true}
}

// release returns the address a client gives back (RFC 2131, section
// 4.3.4), if it is the client's.
func (s *Server) release(req *dhcpv4.DHCPv4, mac vswitch.MAC) {
	if !s.forUs(req) {
		s.stats.ignored.Add(1)
		return
	}
	ciaddr := addrOf(req.ClientIPAddr)
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leases[mac]
	if l == nil || l.addr != ciaddr {
		s.stats.ignored.Add(1)
		return
	}
	s.releaseLocked(l)
	s.log.Debug("released", zap.Stringer("mac", mac), zap.Stringer("addr", ciaddr))
}

// decline takes back an address the client found in use (RFC 2131,
// section 4.3.3) and keeps it out of use for DeclineHold, so that the
// client's next DISCOVER gets another one.
func (s *Server) decline(req *dhcpv4.DHCPv4, mac vswitch.MAC, now time.Time) {
	if !s.forUs(req) {
		s.stats.ignored.Add(1)
		return
	}
	addr := addrOf(req.RequestedIPAddress())
	if !addr.IsValid() {
		s.stats.malformed.Add(1)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leases[mac]
	if l == nil || l.addr != addr {
		s.stats.ignored.Add(1)
		return
	}
	s.releaseLocked(l)
	s.quarantineLocked(mac, addr, now)
	s.log.Debug("declined", zap.Stringer("mac", mac), zap.Stringer("addr", addr))
}

// inform answers an INFORM (RFC 2131, section 4.3.5) from a client that
// has an address of the subnet: an ACK with the configuration options, no
// lease.
func (s *Server) inform(req *dhcpv4.DHCPv4, ipSrc netip.Addr) reply {
	ciaddr := addrOf(req.ClientIPAddr)
	to := ciaddr
	if !to.IsValid() {
		to = ipSrc
	}
	if !s.usable(to) {
		s.stats.ignored.Add(1)
		return reply{}
	}
	return reply{typ: dhcpv4.MessageTypeAck, ciaddr: ciaddr, to: to, config: true}
}

// forUs reports whether a RELEASE or DECLINE is for this server: its
// server identifier, if any, is the router address.
func (s *Server) forUs(req *dhcpv4.DHCPv4) bool {
	return !req.Options.Has(dhcpv4.OptionServerIdentifier) || addrOf(req.ServerIdentifier()) == s.cfg.Router
}

// send encodes r as the answer to req and puts it on the switch (RFC 2131,
// section 4.1, for a client on the server's own link): a NAK is broadcast;
// a reply to a client with an address (ciaddr) goes to that address; with
// the broadcast flag, or no address to send to, it is broadcast; otherwise
// it goes to the offered address, at the client's MAC.
func (s *Server) send(req *dhcpv4.DHCPv4, r reply) {
	resp := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        req.HWType,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientIPAddr:  ipOf(r.ciaddr),
		YourIPAddr:    ipOf(r.yiaddr),
		ClientHWAddr:  req.ClientHWAddr,
		Options:       dhcpv4.Options{},
	}
	resp.UpdateOption(dhcpv4.OptMessageType(r.typ))
	resp.UpdateOption(dhcpv4.OptServerIdentifier(net.IP(s.router[:])))
	if r.lease {
		resp.UpdateOption(dhcpv4.OptIPAddressLeaseTime(s.leaseTime))
		resp.UpdateOption(dhcpv4.OptRenewTimeValue(s.leaseTime / 2))
		resp.UpdateOption(dhcpv4.OptRebindingTimeValue(s.leaseTime / 8 * 7))
	}
	if r.config {
		for _, o := range s.options {
			resp.UpdateOption(o)
		}
	}
	if r.message != "" {
		resp.UpdateOption(dhcpv4.OptMessage(r.message))
	}
	if id := req.Options.Get(dhcpv4.OptionClientIdentifier); id != nil {
		resp.Options[dhcpv4.OptionClientIdentifier.Code()] = id // RFC 6842
	}

	dstMAC, dstIP := vswitch.Broadcast, limitedBroadcast
	to := r.to
	if !to.IsValid() {
		to = addrOf(req.ClientIPAddr)
	}
	switch {
	case r.typ == dhcpv4.MessageTypeNak:
	case to.IsValid():
		dstMAC, dstIP = vswitch.MAC(req.ClientHWAddr), to.As4()
	case req.IsBroadcast():
	case r.yiaddr.IsValid():
		dstMAC, dstIP = vswitch.MAC(req.ClientHWAddr), r.yiaddr.As4()
	}
	if !s.sendFrame(dstMAC, dstIP, resp.ToBytes()) {
		s.stats.sendFailures.Add(1)
		return
	}
	switch r.typ {
	case dhcpv4.MessageTypeOffer:
		s.stats.offers.Add(1)
	case dhcpv4.MessageTypeAck:
		s.stats.acks.Add(1)
	case dhcpv4.MessageTypeNak:
		s.stats.naks.Add(1)
	}
}

// configOptions returns the options that describe the network, carried by
// every OFFER and ACK.
func (s *Server) configOptions() []dhcpv4.Option {
	opts := []dhcpv4.Option{
		dhcpv4.OptSubnetMask(net.IPMask(s.mask[:])),
		dhcpv4.OptRouter(net.IP(s.router[:])),
		dhcpv4.OptBroadcastAddress(net.IP(s.bcast[:])),
		dhcpv4.OptGeneric(dhcpv4.OptionInterfaceMTU, binary.BigEndian.AppendUint16(nil, uint16(s.cfg.MTU))),
	}
	if len(s.cfg.DNS) > 0 {
		dns := make([]net.IP, len(s.cfg.DNS))
		for i, a := range s.cfg.DNS {
			dns[i] = ipOf(a)
		}
		opts = append(opts, dhcpv4.OptDNS(dns...))
	}
	if s.cfg.DomainName != "" {
		opts = append(opts, dhcpv4.OptDomainName(s.cfg.DomainName))
	}
	return opts
}

// addrOf converts an IPv4 address from the DHCP decoder; 0.0.0.0, absent
// and malformed addresses give the zero Addr.
func addrOf(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	a = a.Unmap()
	if !a.Is4() || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

// ipOf converts a for the DHCP encoder; the zero Addr gives 0.0.0.0.
func ipOf(a netip.Addr) net.IP {
	if !a.Is4() {
		return net.IPv4zero.To4()
	}
	b := a.As4()
	return net.IP(b[:])
}

// maxHostname is the longest host name kept from a client (a DNS label).
const maxHostname = 63

// hostname returns the client's host name option, reduced to the
// characters of a DNS label (letters, digits, '-', and '_' and '.' that
// some clients use) so that it is safe to show.
func hostname(req *dhcpv4.DHCPv4) string {
	raw := req.Options.Get(dhcpv4.OptionHostName)
	out := make([]byte, 0, min(len(raw), maxHostname))
	for _, c := range raw {
		if len(out) == maxHostname {
			break
		}
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			out = append(out, c)
		}
	}
	return string(out)
}
