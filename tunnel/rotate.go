package tunnel

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Live rotation of a sealed Port's key. The schedule, and why it loses no
// frame when hosts rotate at different moments, is in the package doc
// ("Key rotation").

// Errors of Rotate.
var (
	// ErrNotSealed: the port is plain VXLAN and has no key.
	ErrNotSealed = errors.New("tunnel: not a sealed (secure mode) port")
	// ErrKeyID: the new key's ID is already taken, by the key the port
	// sends with or by another key it accepts.
	ErrKeyID = errors.New("key ID already in use")
)

// Rotation replaces the key of a sealed Port. From Start the port accepts
// Key as well as the keys it held; from Start+Window it seals under Key;
// from Start+2×Window it accepts Key alone.
type Rotation struct {
	// Key is the new key and KeyID its ID on the wire: every host must
	// use the same ID for the same key (KeyIDOf derives one).
	Key   Key
	KeyID uint16
	// Start is when this host began the rotation. If zero, now; a time
	// in the past resumes a rotation after a restart.
	Start time.Time
	// Window is how long after Start the port keeps sealing under the
	// old key, and how long after that it still accepts it. Every host
	// must start its rotation within Window of the first one to lose
	// nothing. Zero switches and drops at once: frames peers still seal
	// under the old key are then dropped (DropUnknownKey), which is what
	// a stolen key calls for.
	Window time.Duration
}

// SendAt is when the port starts sealing under the new key.
func (r Rotation) SendAt() time.Time { return r.Start.Add(r.Window) }

// DropAt is when the port stops accepting every other key.
func (r Rotation) DropAt() time.Time { return r.Start.Add(2 * r.Window) }

// KeyState describes a sealed Port's keys.
type KeyState struct {
	// SendID is the ID of the key the port seals under.
	SendID uint16
	// Keys are the keys the port accepts, by ID, and what each accepted.
	Keys []KeyStats
	// Rotation is the rotation under way (its Key zeroed), or nil.
	Rotation *Rotation
}

// keyring holds a sealed port's keys: the Sealer it sends with, the
// Opener that holds the keys it accepts, and the rotation under way. Its
// Seal is the data path's; everything else is control plane.
type keyring struct {
	sender uint32
	opener *Opener
	log    *zap.Logger
	cur    atomic.Pointer[Sealer]

	mu      sync.Mutex // guards the fields below and serialises key changes
	pending *Rotation  // the rotation under way, nil if none
	timer   *time.Timer
	gen     uint64 // bumped by every rotate, so a stale timer does nothing
	closed  bool
}

// newKeyring returns the keyring of a port that seals and accepts key
// under keyID.
func newKeyring(key Key, keyID uint16, sender uint32, log *zap.Logger) (*keyring, error) {
	s, err := NewSealer(key, keyID, sender)
	if err != nil {
		return nil, err
	}
	k := &keyring{sender: sender, opener: NewOpener(sender), log: log}
	if err := k.opener.SetKey(keyID, key); err != nil {
		return nil, err
	}
	k.cur.Store(s)
	return k, nil
}

// Seal seals pkt under the current key; see Sealer.Seal. It loads one
// pointer more than Sealer.Seal and allocates nothing either.
func (k *keyring) Seal(pkt []byte, vni uint32) ([]byte, error) {
	return k.cur.Load().Seal(pkt, vni)
}

// Rotate starts replacing the port's key with r.Key (see Rotation). It
// accepts r.Key at once, and returns without waiting for the other
// phases, which a timer runs. A rotation started while another is under
// way replaces it: the port keeps sealing under its current key until
// r's SendAt, and keeps accepting every key it holds until r's DropAt.
//
// Errors: ErrNotSealed in plain VXLAN mode; ErrKeyID if r.KeyID is the ID
// of the key the port seals under, or of another key than r.Key that it
// accepts; ErrClosed after Close.
func (p *Port) Rotate(r Rotation) error {
	if p.sealer == nil {
		return fmt.Errorf("tunnel %s: rotate key: %w", p.name, ErrNotSealed)
	}
	if r.Key == (Key{}) {
		return fmt.Errorf("tunnel %s: rotate to key %d: the all-zero key is refused", p.name, r.KeyID)
	}
	if r.Window < 0 {
		return fmt.Errorf("tunnel %s: rotate to key %d: negative window %v (want 0 or more)", p.name, r.KeyID, r.Window)
	}
	return p.sealer.rotate(r, time.Now())
}

// Keys returns the keys of a sealed port; the zero KeyState in plain
// VXLAN mode.
func (p *Port) Keys() KeyState {
	if p.sealer == nil {
		return KeyState{}
	}
	return p.sealer.state()
}

func (k *keyring) rotate(r Rotation, now time.Time) error {
	if r.Start.IsZero() {
		r.Start = now
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return ErrClosed
	}
	if id := k.cur.Load().KeyID(); r.KeyID == id {
		return fmt.Errorf("rotate to key %d: %w: the port seals under key %d now (the same key, or another with the same ID: generate another)", r.KeyID, ErrKeyID, id)
	}
	if k.opener.hasOtherKey(r.KeyID, &r.Key) {
		return fmt.Errorf("rotate to key %d: %w by another key the port still accepts: generate another key, or wait until the rotation under way ends", r.KeyID, ErrKeyID)
	}
	if err := k.opener.SetKey(r.KeyID, r.Key); err != nil {
		return err
	}
	k.log.Info("key rotation: accepting the new key", zap.Uint16("key_id", r.KeyID),
		zap.Time("send_at", r.SendAt()), zap.Time("drop_at", r.DropAt()))
	if k.timer != nil {
		k.timer.Stop()
	}
	k.gen++
	k.pending = &r
	k.advanceLocked(now)
	return nil
}

// advanceLocked runs the phases of the pending rotation that are due at
// now, and arms the timer for the next one.
func (k *keyring) advanceLocked(now time.Time) {
	r := k.pending
	if r == nil {
		return
	}
	if !now.Before(r.SendAt()) && k.cur.Load().KeyID() != r.KeyID {
		s, err := NewSealer(r.Key, r.KeyID, k.sender)
		if err != nil { // only in FIPS 140-only mode, which refused the first key too
			k.log.Error("key rotation: cannot seal under the new key; still sealing under the old", zap.Error(err))
			return
		}
		k.cur.Store(s)
		k.log.Info("key rotation: sealing under the new key", zap.Uint16("key_id", r.KeyID))
	}
	if !now.Before(r.DropAt()) {
		for _, ks := range k.opener.Keys() {
			if ks.ID != r.KeyID {
				k.opener.RemoveKey(ks.ID)
				k.log.Info("key rotation: old key dropped", zap.Uint16("key_id", ks.ID), zap.Uint64("rx_datagrams", ks.RXDatagrams))
			}
		}
		k.pending, k.timer = nil, nil
		return
	}
	next := r.DropAt()
	if now.Before(r.SendAt()) {
		next = r.SendAt()
	}
	gen := k.gen
	k.timer = time.AfterFunc(next.Sub(now), func() { k.tick(gen) })
}

// tick runs on the timer's goroutine.
func (k *keyring) tick(gen uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed || gen != k.gen {
		return
	}
	k.advanceLocked(time.Now())
}

func (k *keyring) state() KeyState {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := KeyState{SendID: k.cur.Load().KeyID(), Keys: k.opener.Keys()}
	if k.pending != nil {
		r := *k.pending
		r.Key = Key{}
		st.Rotation = &r
	}
	return st
}

// close stops the timer; later rotations fail.
func (k *keyring) close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
	if k.timer != nil {
		k.timer.Stop()
	}
}
