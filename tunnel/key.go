package tunnel

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// KeySize is the length of a pre-shared key: a ChaCha20-Poly1305 key.
const KeySize = 32

// maxKeyFileSize bounds what LoadKey reads: a key file is one short line.
const maxKeyFileSize = 1024

// ErrKeyFormat: text that is not a key in an accepted form.
var ErrKeyFormat = errors.New("not a 32-byte key")

// keyForms is how errors describe what a key file may contain.
const keyForms = "want 64 hex digits or 44 base64 characters encoding 32 bytes, " +
	"e.g. the output of `head -c 32 /dev/urandom | base64`"

// Key is a 32-byte pre-shared key. Its String method does not reveal it, so
// that a key passed to a logger by mistake is not written out.
type Key [KeySize]byte

// String returns a fixed placeholder, never the key.
func (Key) String() string { return "tunnel.Key(redacted)" }

// GoString returns the same placeholder as String, for %#v.
func (k Key) GoString() string { return k.String() }

// Base64 returns the key in standard base64, the 44-character form that
// ParseKey and LoadKey accept. Use it only to write a key file.
func (k Key) Base64() string { return base64.StdEncoding.EncodeToString(k[:]) }

// GenerateKey returns a new random key from crypto/rand (which, since Go
// 1.24, never fails: it aborts the program if the system has no entropy).
func GenerateKey() Key {
	var k Key
	_, _ = rand.Read(k[:])
	return k
}

// ParseKey parses a key written as 64 hex digits or as 44 characters of
// standard base64, ignoring surrounding white space. It refuses the
// all-zero key, which is always a placeholder left in a config. Errors
// wrap ErrKeyFormat and never quote the text, which may be a real key with
// a typo.
func ParseKey(s string) (Key, error) {
	var k Key
	s = strings.TrimSpace(s)
	var form string
	var ok bool
	switch len(s) {
	case hex.EncodedLen(KeySize):
		form = "hex"
		_, err := hex.Decode(k[:], []byte(s))
		ok = err == nil
	case base64.StdEncoding.EncodedLen(KeySize):
		form = "base64"
		// Decode writes up to DecodedLen bytes (33 for 44 characters
		// without padding), so decode into a buffer that large.
		var raw [KeySize + 1]byte
		n, err := base64.StdEncoding.Decode(raw[:], []byte(s))
		ok = err == nil && n == KeySize
		copy(k[:], raw[:KeySize])
		clear(raw[:])
	default:
		return Key{}, fmt.Errorf("%w: %d characters, %s", ErrKeyFormat, len(s), keyForms)
	}
	if !ok {
		return Key{}, fmt.Errorf("%w: %d characters that are not valid %s; %s", ErrKeyFormat, len(s), form, keyForms)
	}
	if subtle.ConstantTimeCompare(k[:], make([]byte, KeySize)) == 1 {
		return Key{}, fmt.Errorf("%w: the all-zero key is a placeholder, not a secret; %s", ErrKeyFormat, keyForms)
	}
	return k, nil
}

// LoadKey reads a key file holding one key in a form ParseKey accepts. Its
// errors name the file and the accepted forms.
func LoadKey(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return Key{}, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return Key{}, fmt.Errorf("key file %s: %w", path, err)
	}
	if len(b) > maxKeyFileSize {
		return Key{}, fmt.Errorf("key file %s: %w: longer than %d bytes, %s", path, ErrKeyFormat, maxKeyFileSize, keyForms)
	}
	k, err := ParseKey(string(b))
	clear(b)
	if err != nil {
		return Key{}, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// keyIDLabel separates the hash that names a key from any other use of it.
const keyIDLabel = "switchyard tunnel key ID\x00"

// KeyIDOf returns the key ID under which hosts that share key announce
// it: the first two bytes of SHA-256(label ‖ key). Every host derives the
// same ID from the same key, so hosts that rotate keys independently
// agree on the new key's ID without talking to each other. Two bytes of a
// hash of a 256-bit random key reveal nothing useful about it; they let
// an observer tell when the key changes, which the key ID does anyway.
// Two keys share an ID once in 65,536 rotations; Port.Rotate refuses such
// a key (ErrKeyID), and another one is generated.
func KeyIDOf(key Key) uint16 {
	h := sha256.New()
	h.Write([]byte(keyIDLabel))
	h.Write(key[:])
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	id := binary.BigEndian.Uint16(sum[:2])
	clear(sum[:])
	return id
}
