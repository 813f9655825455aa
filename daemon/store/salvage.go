package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// bucketQuarantine holds records that could not be read, under
// "bucket/key", so that one bad record neither stops the daemon nor is
// lost: an operator can still read it with bbolt's own tools.
var bucketQuarantine = []byte("quarantine")

// A state file is corrupt when bbolt refuses it, panics on it (bbolt
// asserts on inconsistent pages rather than returning errors), or cannot
// walk it. Such a file is moved aside as state.db.corrupt-TIMESTAMP and
// the daemon starts with empty state; the move is reported through
// Warnings.

// openChecked opens path and walks every record once, turning a bbolt
// panic into an error. Records whose JSON does not decode into their
// bucket's type are moved to the quarantine bucket.
func openChecked(path string, opts *bolt.Options) (db *bolt.DB, warnings []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				closeQuietly(db)
			}
			db, err = nil, fmt.Errorf("%w: %v", errCorrupt, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, opts)
	if err != nil {
		if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) {
			err = fmt.Errorf("%w: %v", errCorrupt, err)
		}
		return nil, nil, err
	}
	if err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err // the first inconsistency is enough; Check recovers bbolt's panics
		}
		return nil
	}); err != nil {
		closeQuietly(db)
		return nil, nil, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	// A write that always commits, before the records are walked: some
	// damage (a freelist page above the high-water mark) shows only when
	// bbolt writes, and the write may move pages the walk then reads.
	if err := db.Update(func(tx *bolt.Tx) error {
		q, err := tx.CreateBucketIfNotExists(bucketQuarantine)
		if err != nil {
			return err
		}
		if err := q.Put([]byte("\x00probe"), nil); err != nil {
			return err
		}
		return q.Delete([]byte("\x00probe"))
	}); err != nil {
		closeQuietly(db)
		return nil, nil, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	warnings, err = quarantineBadRecords(db, path)
	if err != nil {
		closeQuietly(db)
		return nil, nil, err
	}
	return db, warnings, nil
}

// closeQuietly closes a database that may be inconsistent: Close itself
// can panic on one.
func closeQuietly(db *bolt.DB) {
	defer func() { _ = recover() }()
	db.Close()
}

var errCorrupt = errors.New("corrupt state file")

// decoders check one bucket's records.
var decoders = map[string]func([]byte) error{
	string(bucketNetworks):  func(b []byte) error { var n Network; return json.Unmarshal(b, &n) },
	string(bucketEndpoints): func(b []byte) error { var e Endpoint; return json.Unmarshal(b, &e) },
}

// quarantineBadRecords creates the buckets, reads every record, and moves
// the ones that do not decode to the quarantine bucket, one warning each.
func quarantineBadRecords(db *bolt.DB, path string) ([]string, error) {
	var warnings []string
	err := db.Update(func(tx *bolt.Tx) error {
		q, err := tx.CreateBucketIfNotExists(bucketQuarantine)
		if err != nil {
			return err
		}
		for _, name := range [][]byte{bucketNetworks, bucketEndpoints} {
			b, err := tx.CreateBucketIfNotExists(name)
			if err != nil {
				return err
			}
			var bad [][]byte
			err = b.ForEach(func(k, v []byte) error {
				if err := decoders[string(name)](v); err != nil {
					bad = append(bad, k)
					warnings = append(warnings, fmt.Sprintf("state file %s: %s record %q cannot be read (%v): skipped, kept in bucket %q",
						path, name, k, err, bucketQuarantine))
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, k := range bad {
				qk := append(append(append([]byte{}, name...), '/'), k...)
				if err := q.Put(qk, b.Get(k)); err != nil {
					return err
				}
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	return warnings, nil
}

// moveAside renames a corrupt state file out of the way, keeping it for
// inspection, and says where it went.
func moveAside(path, why string, now time.Time) (string, error) {
	aside := path + ".corrupt-" + now.UTC().Format("20060102T150405Z")
	if err := os.Rename(path, aside); err != nil {
		return "", fmt.Errorf("state file %s is corrupt (%s) and could not be moved aside: %w", path, why, err)
	}
	return fmt.Sprintf("state file %s was corrupt (%s): moved to %s; starting with empty state", path, why, aside), nil
}
