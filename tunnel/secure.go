package tunnel

import (
	"cmp"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// Secure datagram, the whole UDP payload (multi-byte fields big-endian):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Version = 1  |   Type = 1    |            Key ID             |  ┐
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  │
//	|                           Sender ID                           |  │ header, 16 bytes:
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  │ the AEAD's associated
//	|                                                               |  │ data; bytes 4–15 are
//	+                            Counter                            +  │ also its 96-bit nonce
//	|                                                               |  ┘
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |  ┐
//	+     VXLAN header (8 bytes: flags 0x08, VNI; see wire.go)      +  │ ChaCha20-Poly1305
//	|                                                               |  │ ciphertext (RFC 8439),
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  │ same length as the
//	|                                                               |  │ plaintext
//	~          inner Ethernet frame (at least 14 bytes)             ~  │
//	|                                                               |  ┘
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+               Poly1305 tag (16 bytes)                         +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Version: 1. A receiver drops other versions (ErrVersion). The value
// differs from VXLAN's first byte (0x08), so VXLAN sent to a secure port is
// told apart.
//
// Type: 1 = data, the only type so far. The other values are reserved for a
// future handshake (key agreement) and keepalives. Receivers drop types
// they do not know (ErrType).
//
// Key ID: which key sealed the datagram. A receiver may hold several keys at
// once, so that a new key can be rolled out before the old one is removed
// (see "Key rotation" in the package doc). Hosts derive it from the key
// with KeyIDOf, so that they agree on it without talking.
//
// Sender ID: the sealing host. Each host sharing a key must use a different
// sender ID: it is part of the nonce (see below). The receiver keeps one
// replay window per (key ID, sender ID).
//
// Counter: per sender and key, increasing by one per datagram. By default a
// sender starts it at the wall clock in nanoseconds since 1970 (see
// NewSealer), so that a restarted sender continues above every counter it
// used before, without stored state, and receivers accept it at once.
//
// Nonce: the 12 bytes Sender ID ‖ Counter exactly as on the wire. Because
// one pre-shared key is shared by all hosts, the sender ID must be in the
// nonce: a nonce of the counter alone would repeat across hosts, and a
// repeated ChaCha20-Poly1305 nonce under one key reveals the XOR of the
// plaintexts and lets an attacker forge tags.
//
// Associated data: the 16-byte header, so no header bit can be changed
// without failing authentication.
//
// The plaintext is exactly a VXLAN datagram, so a receiver runs the same
// DecodeVXLAN on what Open returns as on a plain VXLAN payload, and the
// VNI is hidden from observers.

const (
	// SecureVersion is the version byte of secure datagrams.
	SecureVersion = 1
	// TypeData is the type of a datagram carrying a VXLAN-tagged frame.
	TypeData = 1

	// SecureHeaderLen is the length of the secure header.
	SecureHeaderLen = 16
	// TagLen is the length of the Poly1305 authentication tag.
	TagLen = chacha20poly1305.Overhead
	// SecureHeadroom is the space Seal needs in front of a frame: the
	// secure header and the VXLAN header.
	SecureHeadroom = SecureHeaderLen + VXLANHeaderLen
	// minSecureLen is the shortest datagram Open considers.
	minSecureLen = SecureHeadroom + EthHeaderLen + TagLen

	// SecureOverhead is what secure mode over IPv4 adds to an inner IP
	// packet: outer IPv4 (20) + UDP (8) + secure header (16) + VXLAN
	// header (8) + tag (16) + inner Ethernet header (14). A 1500-byte
	// underlay leaves an inner MTU of 1418.
	SecureOverhead = 20 + 8 + SecureHeadroom + TagLen + EthHeaderLen
	// SecureOverheadIPv6 is SecureOverhead for an IPv6 underlay (40-byte
	// outer header): a 1500-byte underlay leaves an inner MTU of 1398.
	SecureOverheadIPv6 = SecureOverhead + 20

	// CounterLimit is the first counter a Sealer refuses to use and an
	// Opener refuses to accept. Leaving 2^13 values unused keeps the
	// arithmetic of both ends far from wrapping to 0, which would reuse
	// nonces. A sender starting from today's clock (about 2^60.5) has more
	// than 2^63 datagrams before it; a future handshake rekeys long before.
	CounterLimit = math.MaxUint64 - 1<<13 + 1
)

// Errors returned, unwrapped, by Open and Seal.
var (
	// ErrVersion: the first byte is not SecureVersion.
	ErrVersion = errors.New("tunnel: unknown secure datagram version")
	// ErrType: a datagram type this receiver does not know.
	ErrType = errors.New("tunnel: unknown secure datagram type")
	// ErrUnknownKey: the key ID names no key the Opener holds.
	ErrUnknownKey = errors.New("tunnel: unknown key ID")
	// ErrReplay: a counter already accepted from this sender under this
	// key, too far behind the newest one to tell, or not below
	// CounterLimit.
	ErrReplay = errors.New("tunnel: replayed or stale datagram")
	// ErrAuth: authentication failed: the datagram was forged, corrupted,
	// or sealed with a different key under the same key ID.
	ErrAuth = errors.New("tunnel: datagram failed authentication")
	// ErrReflected: an authentic datagram carrying the receiver's own
	// sender ID: one of ours sent back to us, or a peer misconfigured with
	// our sender ID (which also repeats nonces; fix it).
	ErrReflected = errors.New("tunnel: datagram carries our own sender ID")
	// ErrCounterExhausted: the Sealer has used every counter below
	// CounterLimit and must be replaced with one under a new key.
	ErrCounterExhausted = errors.New("tunnel: counter exhausted, new key needed")
)

// newAEAD builds the cipher for key once; Seal and Open reuse it.
func newAEAD(key *Key) (cipher.AEAD, error) {
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		return nil, fmt.Errorf("ChaCha20-Poly1305: %w", err) // only in FIPS 140-only mode
	}
	return aead, nil
}

// SecureMTUFor is MTUFor for secure mode: linkMTU-SecureOverhead, or 0.
func SecureMTUFor(linkMTU int) int {
	return max(linkMTU-SecureOverhead, 0)
}

// SecureMTUFor6 is SecureMTUFor over an IPv6 underlay:
// linkMTU-SecureOverheadIPv6, or 0.
func SecureMTUFor6(linkMTU int) int {
	return max(linkMTU-SecureOverheadIPv6, 0)
}

// Sealer seals the frames of one sender under one key. It is safe for
// concurrent use by several writer goroutines; each datagram takes the next
// counter.
//
// There must be exactly one Sealer per (key, sender ID) at any time, across
// every process and host: two Sealers with the same key and sender ID would
// reuse nonces. Share one Sealer between the goroutines that send.
type Sealer struct {
	aead   cipher.AEAD
	keyID  uint16
	sender uint32
	next   atomic.Uint64 // next counter to use
}

// NewSealer returns a Sealer for sender under key, announced as keyID. Its
// first counter is the wall clock in nanoseconds since 1970, so that a
// sender restarted later starts above every counter it used before (it
// sends fewer than 10^9 datagrams a second) and neither nonces repeat nor
// peers' replay windows refuse it. A wall clock stepped backwards between
// two runs breaks that; NewSealerAt takes an explicit first counter.
func NewSealer(key Key, keyID uint16, sender uint32) (*Sealer, error) {
	return NewSealerAt(key, keyID, sender, uint64(max(time.Now().UnixNano(), 0)))
}

// NewSealerAt is NewSealer with first as the first counter, for keys that
// are new (where 0 is fine) and for tests.
func NewSealerAt(key Key, keyID uint16, sender uint32, first uint64) (*Sealer, error) {
	aead, err := newAEAD(&key)
	if err != nil {
		return nil, fmt.Errorf("sealer for key %d: %w", keyID, err)
	}
	s := &Sealer{aead: aead, keyID: keyID, sender: sender}
	s.next.Store(first)
	return s, nil
}

// KeyID returns the key ID the Sealer writes.
func (s *Sealer) KeyID() uint16 { return s.keyID }

// Sender returns the sender ID the Sealer writes.
func (s *Sealer) Sender() uint32 { return s.sender }

// Next returns the counter the next datagram will carry.
func (s *Sealer) Next() uint64 { return s.next.Load() }

// takeCounter reserves the next counter, or reports false once none is left.
// It never moves the counter past CounterLimit, however often it is called.
func (s *Sealer) takeCounter() (uint64, bool) {
	for {
		c := s.next.Load()
		if c >= CounterLimit {
			return 0, false
		}
		if s.next.CompareAndSwap(c, c+1) {
			return c, true
		}
	}
}

// Seal turns pkt into a secure datagram carrying the frame in
// pkt[SecureHeadroom:] on VNI vni, in place, and returns the datagram:
// pkt[:len(pkt)+TagLen], sharing pkt's array. The first SecureHeadroom
// bytes of pkt are overwritten with the headers, and cap(pkt) must leave
// TagLen bytes after len(pkt) for the tag.
//
//	buf := make([]byte, tunnel.SecureHeadroom+maxFrame+tunnel.TagLen) // once
//	n := copy(buf[tunnel.SecureHeadroom:], frame)
//	dgram, err := sealer.Seal(buf[:tunnel.SecureHeadroom+n], vni)
//
// Seal does not allocate unless it fails because pkt is too short or vni
// is out of range, which are bugs in the caller. After CounterLimit
// datagrams it returns ErrCounterExhausted.
func (s *Sealer) Seal(pkt []byte, vni uint32) ([]byte, error) {
	if len(pkt) < SecureHeadroom+EthHeaderLen || cap(pkt)-len(pkt) < TagLen {
		return nil, fmt.Errorf("seal: buffer of length %d and capacity %d: %w (want length ≥ %d for headroom and an Ethernet header, and %d spare bytes of capacity for the tag)",
			len(pkt), cap(pkt), ErrShortBuffer, SecureHeadroom+EthHeaderLen, TagLen)
	}
	if vni > MaxVNI {
		return nil, fmt.Errorf("seal: VNI %d: %w (want 0 to %d)", vni, ErrVNIRange, MaxVNI)
	}
	counter, ok := s.takeCounter()
	if !ok {
		return nil, ErrCounterExhausted
	}
	hdr := pkt[:SecureHeaderLen]
	hdr[0] = SecureVersion
	hdr[1] = TypeData
	binary.BigEndian.PutUint16(hdr[2:4], s.keyID)
	binary.BigEndian.PutUint32(hdr[4:8], s.sender)
	binary.BigEndian.PutUint64(hdr[8:16], counter)
	binary.BigEndian.PutUint32(pkt[16:20], vxlanFlagI<<24)
	binary.BigEndian.PutUint32(pkt[20:24], vni<<8)
	plain := pkt[SecureHeaderLen:]
	s.aead.Seal(plain[:0], hdr[4:16], plain, hdr)
	return pkt[:len(pkt)+TagLen], nil
}

// Opener authenticates and decrypts secure datagrams and refuses replays.
// It is safe for concurrent use by several reader goroutines: Open reads an
// immutable snapshot of the keys and windows without locking, and locks
// only the replay window of the datagram's sender.
type Opener struct {
	self uint32

	mu    sync.Mutex // serialises writers of state; Open takes it only to add a sender
	state atomic.Pointer[openerState]
}

// openerState is a snapshot; writers copy it, change the copy and publish it.
type openerState struct {
	keys    map[uint16]*openerKey
	windows map[windowID]*ReplayWindow
}

// openerKey is one key an Opener holds.
type openerKey struct {
	aead cipher.AEAD
	key  Key           // to tell a repeated SetKey from a new key under the same ID
	rx   atomic.Uint64 // datagrams accepted under the key
}

// KeyStats is what an Opener has accepted under one of its keys.
type KeyStats struct {
	// ID is the key's ID on the wire.
	ID uint16
	// RXDatagrams counts the authentic datagrams accepted under the key
	// since it was set: during a rotation, the count of the old key tells
	// whether peers still send under it.
	RXDatagrams uint64
}

// windowID names a replay window: counters are per sender and per key.
type windowID struct {
	keyID  uint16
	sender uint32
}

// NewOpener returns an Opener holding no keys. self is the receiver's own
// sender ID (that of its Sealer); authentic datagrams carrying it are
// refused with ErrReflected.
func NewOpener(self uint32) *Opener {
	o := &Opener{self: self}
	o.state.Store(&openerState{keys: map[uint16]*openerKey{}, windows: map[windowID]*ReplayWindow{}})
	return o
}

// SetKey makes the Opener accept datagrams sealed with key under keyID,
// alongside its other keys. Setting the key a keyID already has changes
// nothing; setting a different one forgets the replay windows of the old.
func (o *Opener) SetKey(keyID uint16, key Key) error {
	aead, err := newAEAD(&key)
	if err != nil {
		return fmt.Errorf("opener key %d: %w", keyID, err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	old := o.state.Load()
	if k := old.keys[keyID]; k != nil && subtle.ConstantTimeCompare(k.key[:], key[:]) == 1 {
		return nil
	}
	next := &openerState{keys: maps.Clone(old.keys), windows: old.windowsExcept(keyID)}
	next.keys[keyID] = &openerKey{aead: aead, key: key}
	o.state.Store(next)
	return nil
}

// RemoveKey stops accepting datagrams under keyID and forgets their replay
// windows.
func (o *Opener) RemoveKey(keyID uint16) {
	o.mu.Lock()
	defer o.mu.Unlock()
	old := o.state.Load()
	next := &openerState{keys: maps.Clone(old.keys), windows: old.windowsExcept(keyID)}
	delete(next.keys, keyID)
	o.state.Store(next)
}

// Forget drops the replay windows of sender under every key, when the peer
// is removed. If the peer comes back, its datagrams are accepted again, and
// so would be replays of its old datagrams: forget only peers that are gone
// for good or whose key changes.
func (o *Opener) Forget(sender uint32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	old := o.state.Load()
	next := &openerState{keys: old.keys, windows: maps.Clone(old.windows)}
	maps.DeleteFunc(next.windows, func(id windowID, _ *ReplayWindow) bool { return id.sender == sender })
	o.state.Store(next)
}

// Keys returns the keys the Opener holds, by ID, and what each accepted.
func (o *Opener) Keys() []KeyStats {
	st := o.state.Load()
	out := make([]KeyStats, 0, len(st.keys))
	for id, k := range st.keys {
		out = append(out, KeyStats{ID: id, RXDatagrams: k.rx.Load()})
	}
	slices.SortFunc(out, func(a, b KeyStats) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// hasOtherKey reports whether the Opener holds a key under keyID that is
// not key.
func (o *Opener) hasOtherKey(keyID uint16, key *Key) bool {
	k := o.state.Load().keys[keyID]
	return k != nil && subtle.ConstantTimeCompare(k.key[:], key[:]) != 1
}

// ReplayWindows returns how many replay windows the Opener holds: one per
// (key ID, sender ID) it has accepted a datagram from.
func (o *Opener) ReplayWindows() int { return len(o.state.Load().windows) }

func (s *openerState) windowsExcept(keyID uint16) map[windowID]*ReplayWindow {
	w := maps.Clone(s.windows)
	maps.DeleteFunc(w, func(id windowID, _ *ReplayWindow) bool { return id.keyID == keyID })
	return w
}

// addWindow returns the replay window of id, creating it, as long as k is
// still the key the Opener holds for id.keyID; otherwise nil.
func (o *Opener) addWindow(id windowID, k *openerKey) *ReplayWindow {
	o.mu.Lock()
	defer o.mu.Unlock()
	old := o.state.Load()
	if old.keys[id.keyID] != k {
		return nil
	}
	if w := old.windows[id]; w != nil {
		return w
	}
	w := new(ReplayWindow)
	next := &openerState{keys: old.keys, windows: maps.Clone(old.windows)}
	next.windows[id] = w
	o.state.Store(next)
	return w
}

// Open authenticates the secure datagram b and decrypts it in place. It
// returns the plaintext, a VXLAN datagram for DecodeVXLAN that is a view
// into b, and the sender ID. b is overwritten: it holds the plaintext on
// success and unspecified bytes after an error.
//
// Errors, unwrapped, one per reason a Port counts: ErrTruncated,
// ErrVersion, ErrType, ErrUnknownKey, ErrReplay, ErrAuth, ErrReflected.
// Header checks and the replay check come before decryption, so stale and
// malformed datagrams cost no cryptography; the replay window moves only
// after authentication. Open does not allocate per datagram; the first
// authentic datagram of a new sender allocates its replay window.
func (o *Opener) Open(b []byte) (inner []byte, sender uint32, err error) {
	if len(b) == 0 {
		return nil, 0, ErrTruncated
	}
	if b[0] != SecureVersion {
		return nil, 0, ErrVersion
	}
	if len(b) < minSecureLen {
		return nil, 0, ErrTruncated
	}
	if b[1] != TypeData {
		return nil, 0, ErrType
	}
	id := windowID{keyID: binary.BigEndian.Uint16(b[2:4]), sender: binary.BigEndian.Uint32(b[4:8])}
	counter := binary.BigEndian.Uint64(b[8:16])
	st := o.state.Load()
	k := st.keys[id.keyID]
	if k == nil {
		return nil, 0, ErrUnknownKey
	}
	if counter >= CounterLimit {
		return nil, 0, ErrReplay
	}
	w := st.windows[id]
	if w != nil && !w.Check(counter) {
		return nil, 0, ErrReplay
	}
	hdr, sealed := b[:SecureHeaderLen], b[SecureHeaderLen:]
	plain, err := k.aead.Open(sealed[:0], hdr[4:16], sealed, hdr)
	if err != nil {
		return nil, 0, ErrAuth
	}
	if id.sender == o.self {
		return nil, 0, ErrReflected
	}
	if w == nil {
		if w = o.addWindow(id, k); w == nil {
			return nil, 0, ErrUnknownKey // the key was replaced or removed meanwhile
		}
	}
	if !w.Accept(counter) {
		return nil, 0, ErrReplay
	}
	k.rx.Add(1)
	return plain, id.sender, nil
}
