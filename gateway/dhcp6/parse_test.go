package dhcp6

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// msgWith is a SOLICIT-typed message with the given raw options.
func msgWith(opts ...[]byte) []byte {
	b := []byte{MsgSolicit, 1, 2, 3}
	for _, o := range opts {
		b = append(b, o...)
	}
	return b
}

func opt(code uint16, data []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, code)
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

func iaNA(id byte, subopts ...[]byte) []byte {
	d := []byte{0, 0, 0, id, 0, 0, 0, 0, 0, 0, 0, 0}
	for _, o := range subopts {
		d = append(d, o...)
	}
	return opt(OptIANA, d)
}

func iaAddrOpt(last byte) []byte {
	d := make([]byte, 24)
	d[0], d[1], d[15] = 0xfd, 0, last
	return opt(OptIAAddr, d)
}

var duid = []byte{0, 3, 0, 1, 0x52, 0x54, 0, 0, 0, 1}

// The parser keeps at most MaxIAs IA_NAs of at most MaxIAAddrs addresses:
// a message that lists more makes no more work for the server.
func TestParseBounds(t *testing.T) {
	var subs [][]byte
	for i := range 20 {
		subs = append(subs, iaAddrOpt(byte(i)))
	}
	opts := [][]byte{opt(OptClientID, duid)}
	for i := range 20 {
		opts = append(opts, iaNA(byte(i), subs...))
	}
	b := msgWith(opts...)
	if len(b) > 65535 {
		t.Fatalf("test message of %d bytes", len(b))
	}
	m, err := parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.nIAs != MaxIAs || !m.otherIAs || m.ias[MaxIAs-1].nAddrs != MaxIAAddrs || m.ias[MaxIAs-1].id != [4]byte{0, 0, 0, MaxIAs - 1} {
		t.Errorf("kept %d IAs (other %v), the last with %d addresses and id %x", m.nIAs, m.otherIAs, m.ias[MaxIAs-1].nAddrs, m.ias[MaxIAs-1].id)
	}
	if n := testing.AllocsPerRun(100, func() { parse(b) }); n != 0 {
		t.Errorf("parse allocates %v times", n)
	}
}

// The parser refuses what RFC 8415 forbids in every message, naming it.
func TestParseRefuses(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		want string
	}{
		{[]byte{1, 2}, "2 bytes, want at least 4"},
		{msgWith([]byte{0, 1, 0}), "too few for an option header"},
		{msgWith(opt(OptClientID, duid)[:8]), "overruns the message"},
		{msgWith(opt(OptClientID, []byte{1})), "identifier option 1 of 1 bytes"},
		{msgWith(opt(OptServerID, make([]byte, 131))), "identifier option 2 of 131 bytes"},
		{msgWith(opt(OptClientID, []byte{0, 1, 0, 1, 0, 0, 0, 0})), "DUID of type 1 and 8 bytes"},
		{msgWith(opt(OptClientID, []byte{0, 3, 0, 1})), "DUID of type 3 and 4 bytes"},
		{msgWith(opt(OptClientID, []byte{0, 4, 1})), "DUID of type 4 and 3 bytes"},
		{msgWith(opt(OptClientID, duid), opt(OptClientID, duid)), "option 1 twice"},
		{msgWith(opt(OptRapidCommit, []byte{0})), "rapid commit option with 1 bytes"},
		{msgWith(opt(OptIANA, make([]byte, 11))), "IA_NA of 11 bytes"},
		{msgWith(iaNA(1, opt(OptIAAddr, make([]byte, 23)))), "IA address of 23 bytes"},
		{msgWith(iaNA(1, []byte{0, 5, 0, 30})), "overruns the message"},
	} {
		_, err := parse(c.b)
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
			t.Errorf("parse(%x): %v, want an error with %q", c.b, err, c.want)
		}
	}
}

// FuzzParse: the parser never panics; what it accepts has views inside
// the input, identifiers of legal length and its bounds kept; and a
// message rebuilt from what it read parses to the same.
func FuzzParse(f *testing.F) {
	f.Add(msgWith(opt(OptClientID, duid), iaNA(1, iaAddrOpt(7)), opt(OptRapidCommit, nil)))
	f.Add(msgWith(opt(OptClientID, duid), opt(OptServerID, duid), iaNA(1), iaNA(2, iaAddrOpt(1), iaAddrOpt(2))))
	f.Add(msgWith(opt(OptIAPD, make([]byte, 12)), opt(OptORO, []byte{0, 23, 0, 24})))
	f.Add([]byte{MsgRelayForw})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parse(b)
		if err != nil {
			return
		}
		for _, id := range [][]byte{m.clientID, m.serverID} {
			if id != nil && (len(id) < minDUIDLen || len(id) > maxDUIDLen || !bytes.Contains(b, id)) {
				t.Fatalf("identifier %x of %d bytes", id, len(id))
			}
		}
		if m.nIAs > MaxIAs {
			t.Fatalf("%d IAs", m.nIAs)
		}
		var w builder
		w.header(m.typ, m.xid)
		if m.clientID != nil {
			w.option(OptClientID, m.clientID)
		}
		if m.serverID != nil {
			w.option(OptServerID, m.serverID)
		}
		if m.rapidCommit {
			w.option(OptRapidCommit, nil)
		}
		for _, x := range m.ias[:m.nIAs] {
			mark := w.begin(OptIANA)
			w.b = append(w.b, x.id[:]...)
			w.u32(0)
			w.u32(0)
			for _, a := range x.addrs[:x.nAddrs] {
				am := w.begin(OptIAAddr)
				w.addr(a)
				w.u32(0)
				w.u32(0)
				w.end(am)
			}
			w.end(mark)
		}
		again, err := parse(w.b)
		if err != nil {
			t.Fatalf("rebuilt message %x does not parse: %v", w.b, err)
		}
		if again.typ != m.typ || again.xid != m.xid || !bytes.Equal(again.clientID, m.clientID) || !bytes.Equal(again.serverID, m.serverID) ||
			again.rapidCommit != m.rapidCommit || again.nIAs != m.nIAs || again.ias != m.ias {
			t.Fatalf("parse(%x) = %+v, rebuilt parses to %+v", b, m, again)
		}
	})
}
