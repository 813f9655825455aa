package dhcp6

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Message types (RFC 8415, section 7.3).
const (
	MsgSolicit            = 1
	MsgAdvertise          = 2
	MsgRequest            = 3
	MsgConfirm            = 4
	MsgRenew              = 5
	MsgRebind             = 6
	MsgReply              = 7
	MsgRelease            = 8
	MsgDecline            = 9
	MsgReconfigure        = 10
	MsgInformationRequest = 11
	MsgRelayForw          = 12
	MsgRelayRepl          = 13
)

// Option codes (RFC 8415, section 21; RFC 3646).
const (
	OptClientID    = 1
	OptServerID    = 2
	OptIANA        = 3
	OptIATA        = 4
	OptIAAddr      = 5
	OptORO         = 6
	OptPreference  = 7
	OptElapsedTime = 8
	OptStatusCode  = 13
	OptRapidCommit = 14
	OptDNSServers  = 23
	OptDomainList  = 24
	OptIAPD        = 25
	OptInfoRefresh = 32
	optHeaderLen   = 4
	msgHeaderLen   = 4
	iaNAFixedLen   = 12 // IAID, T1, T2
	iaAddrFixedLen = 24 // address, preferred and valid lifetimes
	minDUIDLen     = 3  // RFC 8415 11.1: a type and 1 to 128 octets
	maxDUIDLen     = 130
	duidLLT        = 1
	duidEN         = 2
	duidLL         = 3
	duidUUID       = 4
	hwTypeEthernet = 1
)

// Status codes (RFC 8415, section 21.13).
const (
	StatusSuccess      = 0
	StatusNoAddrsAvail = 2
	StatusNoBinding    = 3
	StatusNotOnLink    = 4
)

// Limits on what a message may make the server do: IA_NA options beyond
// MaxIAs, and addresses in an IA_NA beyond MaxIAAddrs, are ignored (a
// client asks for one address per interface; more only makes the reply
// larger).
const (
	MaxIAs     = 4
	MaxIAAddrs = 4
)

// errMalformed is what parse returns, wrapped with the reason.
var errMalformed = errors.New("malformed DHCPv6 message")

// ia is an IA_NA of a client message: its identifier and the addresses
// the client put in it (its hints, or what it holds).
type ia struct {
	id     [4]byte
	addrs  [MaxIAAddrs]netip.Addr
	nAddrs int
}

// message is a client message, read in place: clientID and serverID are
// views of the buffer parse was given, valid while it is.
type message struct {
	typ         uint8
	xid         [3]byte
	clientID    []byte // nil if absent
	serverID    []byte // nil if absent
	rapidCommit bool
	ias         [MaxIAs]ia
	nIAs        int
	// otherIAs: IA_TA or IA_PD options, or IA_NAs beyond MaxIAs.
	otherIAs bool
}

// parse reads the client message b (a UDP payload). It does not allocate
// unless it fails, never keeps b beyond the returned views, and its work is
// linear in len(b): every option is visited once, IA_NA sub-options once.
// It accepts what RFC 8415 says every message must be: a type, a
// transaction ID and options whose lengths fit; a Client or Server
// Identifier of 2 to 130 bytes, at most one of each; a Rapid Commit
// without data; IA_NA options of at least 12 bytes whose IA Address
// sub-options hold at least 24. Options it does not use are skipped.
func parse(b []byte) (message, error) {
	var m message
	if len(b) < msgHeaderLen {
		return m, fmt.Errorf("%w: %d bytes, want at least %d", errMalformed, len(b), msgHeaderLen)
	}
	m.typ = b[0]
	copy(m.xid[:], b[1:4])
	opts := b[msgHeaderLen:]
	for len(opts) > 0 {
		code, data, rest, err := nextOption(opts)
		if err != nil {
			return m, err
		}
		opts = rest
		switch code {
		case OptClientID, OptServerID:
			if err := checkDUID(code, data); err != nil {
				return m, err
			}
			p := &m.clientID
			if code == OptServerID {
				p = &m.serverID
			}
			if *p != nil {
				return m, fmt.Errorf("%w: option %d twice", errMalformed, code)
			}
			*p = data
		case OptRapidCommit:
			if len(data) != 0 {
				return m, fmt.Errorf("%w: rapid commit option with %d bytes of data, want none", errMalformed, len(data))
			}
			m.rapidCommit = true
		case OptIANA:
			if len(data) < iaNAFixedLen {
				return m, fmt.Errorf("%w: IA_NA of %d bytes, want at least %d", errMalformed, len(data), iaNAFixedLen)
			}
			var x ia
			copy(x.id[:], data[:4])
			if err := readIAAddrs(&x, data[iaNAFixedLen:]); err != nil {
				return m, err
			}
			if m.nIAs == MaxIAs {
				m.otherIAs = true
				continue
			}
			m.ias[m.nIAs] = x
			m.nIAs++
		case OptIATA, OptIAPD:
			m.otherIAs = true
		}
	}
	return m, nil
}

// checkDUID checks the DUID in identifier option code: 3 to 130 bytes,
// and for the types RFC 8415 defines (section 11), the fields of the type:
// DUID-LLT a hardware type, a time and a link-layer address; DUID-EN an
// enterprise number and an identifier; DUID-LL a hardware type and a
// link-layer address; DUID-UUID 16 bytes.
func checkDUID(code uint16, d []byte) error {
	if len(d) < minDUIDLen || len(d) > maxDUIDLen {
		return fmt.Errorf("%w: identifier option %d of %d bytes, want %d to %d", errMalformed, code, len(d), minDUIDLen, maxDUIDLen)
	}
	typ := binary.BigEndian.Uint16(d)
	var ok bool
	switch typ {
	case duidLLT:
		ok = len(d) > 2+2+4
	case duidEN:
		ok = len(d) > 2+4
	case duidLL:
		ok = len(d) > 2+2
	case duidUUID:
		ok = len(d) == 2+16
	default:
		ok = true
	}
	if !ok {
		return fmt.Errorf("%w: identifier option %d holds a DUID of type %d and %d bytes, too short or long for its type", errMalformed, code, typ, len(d))
	}
	return nil
}

// readIAAddrs reads the IA Address sub-options of an IA_NA into x.
func readIAAddrs(x *ia, opts []byte) error {
	for len(opts) > 0 {
		code, data, rest, err := nextOption(opts)
		if err != nil {
			return err
		}
		opts = rest
		if code != OptIAAddr {
			continue
		}
		if len(data) < iaAddrFixedLen {
			return fmt.Errorf("%w: IA address of %d bytes, want at least %d", errMalformed, len(data), iaAddrFixedLen)
		}
		if x.nAddrs < MaxIAAddrs {
			x.addrs[x.nAddrs] = netip.AddrFrom16([16]byte(data[:16]))
			x.nAddrs++
		}
	}
	return nil
}

// nextOption splits the option at the start of b from the rest.
func nextOption(b []byte) (code uint16, data, rest []byte, err error) {
	if len(b) < optHeaderLen {
		return 0, nil, nil, fmt.Errorf("%w: %d bytes left, too few for an option header", errMalformed, len(b))
	}
	code = binary.BigEndian.Uint16(b)
	n := int(binary.BigEndian.Uint16(b[2:]))
	if n > len(b)-optHeaderLen {
		return 0, nil, nil, fmt.Errorf("%w: option %d of %d bytes overruns the message (%d left)", errMalformed, code, n, len(b)-optHeaderLen)
	}
	end := optHeaderLen + n
	return code, b[optHeaderLen:end:end], b[end:], nil
}

// builder appends a server message to a buffer. Options nest: begin
// returns a mark that end uses to write the option's length.
type builder struct{ b []byte }

func (w *builder) header(typ uint8, xid [3]byte) {
	w.b = append(w.b, typ, xid[0], xid[1], xid[2])
}

func (w *builder) begin(code uint16) int {
	w.b = binary.BigEndian.AppendUint16(w.b, code)
	w.b = append(w.b, 0, 0)
	return len(w.b)
}

func (w *builder) end(mark int) {
	binary.BigEndian.PutUint16(w.b[mark-2:], uint16(len(w.b)-mark))
}

func (w *builder) option(code uint16, data []byte) {
	m := w.begin(code)
	w.b = append(w.b, data...)
	w.end(m)
}

func (w *builder) u32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }

func (w *builder) addr(a netip.Addr) {
	a16 := a.As16()
	w.b = append(w.b, a16[:]...)
}

// status appends a Status Code option.
func (w *builder) status(code uint16, text string) {
	m := w.begin(OptStatusCode)
	w.b = binary.BigEndian.AppendUint16(w.b, code)
	w.b = append(w.b, text...)
	w.end(m)
}
