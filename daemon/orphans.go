package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/internal/nsenter"
)

// The daemon's ID tells its own TAPs from every other Switchyard's: it is
// written into each TAP's mark (tap.Config.Owner), and kept in the state
// directory beside, not inside, the state file, so that it outlives a
// state file that is lost or moved aside as corrupt. A daemon whose state
// directory is gone altogether gets a new ID and cannot tell the old
// TAPs apart from another daemon's: those it leaves.

const idFile = "daemon-id"

// defaultNetnsDir is where named network namespaces are (`ip netns add`).
const defaultNetnsDir = "/run/netns"

// loadID reads the daemon's ID from dir, making one on first use.
func loadID(dir string) (string, error) {
	path := filepath.Join(dir, idFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("daemon ID %s: %w", path, err)
	}
	raw := make([]byte, 8)
	rand.Read(raw)
	id := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("daemon ID %s: %w", path, err)
	}
	return id, nil
}

// sweepOrphans removes the TAPs this daemon made that no endpoint names
// any more: left by a life of the daemon whose state was lost (an empty
// or corrupt state file moved aside, a record skipped). It looks where it
// can without a process to follow: its own namespace (VM TAPs) and the
// named namespaces (Config.NetnsDir). A TAP of a restored endpoint, or of
// another daemon, is never touched.
func (d *Daemon) sweepOrphans() {
	vm := map[string]bool{}
	inNS := map[nsenter.ID]map[string]bool{}
	d.mu.Lock()
	for _, n := range d.networks {
		if hi := n.rec.HostInterface; hi != nil {
			vm[hi.Name] = true
		}
		for _, e := range n.endpoints {
			if e.rec.TapOnly {
				vm[e.rec.IfName] = true
				continue
			}
			if inNS[e.rec.NetNSID] == nil {
				inNS[e.rec.NetNSID] = map[string]bool{}
			}
			inNS[e.rec.NetNSID][e.rec.IfName] = true
		}
	}
	d.mu.Unlock()

	// The daemon's own namespace may be a named one too (a daemon run
	// with ip netns exec): it is swept once, keeping its host interfaces
	// and VM TAPs as well as any endpoint's TAP there.
	own, ownErr := d.attach.NetNS("/proc/self/ns/net")
	if ownErr == nil {
		for name := range inNS[own] {
			vm[name] = true
		}
	}
	d.sweepIn("", vm)
	dir := d.cfg.NetnsDir
	if dir == "" {
		dir = defaultNetnsDir
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // no named namespaces, or none this daemon may read
	}
	for _, ent := range entries {
		path := filepath.Join(dir, ent.Name())
		id, err := d.attach.NetNS(path)
		if err != nil || (ownErr == nil && id == own) {
			continue
		}
		d.sweepIn(path, inNS[id])
	}
}

// sweepIn removes this daemon's TAPs in the namespace at nsPath that are
// not in keep.
func (d *Daemon) sweepIn(nsPath string, keep map[string]bool) {
	names, err := d.attach.Marked(nsPath, d.id)
	if err != nil {
		d.log.Debug("looking for orphaned TAPs", zap.String("netns", nsPath), zap.Error(err))
		return
	}
	for _, name := range names {
		if keep[name] {
			continue
		}
		where := nsPath
		if where == "" {
			where = "the daemon's namespace"
		}
		if err := d.attach.Remove(nsPath, name); err != nil {
			d.log.Warn("could not remove an orphaned TAP", zap.String("ifname", name), zap.String("netns", where), zap.Error(err))
			continue
		}
		d.log.Warn("removed a TAP this daemon made whose endpoint is no longer in its state",
			zap.String("ifname", name), zap.String("netns", where))
	}
}
