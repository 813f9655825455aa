package daemon

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/tunnel"
)

// keyFile writes key to a new file in dir.
func keyFile(t *testing.T, dir, name string, key tunnel.Key) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(key.Base64()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// freeUDP returns a loopback UDP address no socket holds right now.
func freeUDP(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return "127.0.0.1:" + strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port)
}

func startDaemon(t *testing.T, dir string) *Daemon {
	t.Helper()
	d, err := New(Config{StateDir: dir, Logger: zaptest.NewLogger(t), NoDefaultNetwork: true,
		HostPrefixes: func() ([]netip.Prefix, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// keysOf returns network name's tunnel keys: the sealing key and the
// accepted ones.
func keysOf(t *testing.T, d *Daemon, name string) (send uint16, accepted []uint16, r *api.TunnelRotation) {
	t.Helper()
	tn, err := d.Tunnel(name)
	if err != nil {
		t.Fatal(err)
	}
	if tn.Keys == nil {
		t.Fatalf("tunnel of %s shows no keys", name)
	}
	for _, k := range tn.Keys.Accepted {
		accepted = append(accepted, k.ID)
	}
	return tn.Keys.SendID, accepted, tn.Keys.Rotation
}

// rotate-key through the daemon: the request is checked, the rotation is
// stored and resumed by a restart at the point the clock puts it, a
// second rotation waits for the first unless it has no window, and a
// vanished old key file does not stop the network.
func TestRotateTunnelKey(t *testing.T) {
	ctx := context.Background()
	dir, keys := t.TempDir(), t.TempDir()
	var k [4]tunnel.Key
	var f [4]string
	var id [4]uint16
	for i := range k {
		k[i] = tunnel.GenerateKey()
		f[i] = keyFile(t, keys, "key"+strconv.Itoa(i), k[i])
		id[i] = tunnel.KeyIDOf(k[i])
	}
	d := startDaemon(t, dir)
	defer func() { d.Close() }()
	if _, err := d.CreateNetwork(ctx, api.NetworkCreate{Name: "sealed", Subnet: "10.251.0.0/16", Tunnel: "secure",
		KeyFile: f[0], TunnelListen: freeUDP(t)}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateNetwork(ctx, api.NetworkCreate{Name: "plain", Subnet: "10.252.0.0/16", Tunnel: "vxlan",
		TunnelListen: freeUDP(t)}); err != nil {
		t.Fatal(err)
	}
	if send, acc, _ := keysOf(t, d, "sealed"); send != id[0] || len(acc) != 1 {
		t.Fatalf("new network: sealing under %04x, accepting %04x; want %04x alone", send, acc, id[0])
	}

	for _, c := range []struct {
		name    string
		network string
		req     api.KeyRotation
		kind    error
		field   string
	}{
		{"no key file", "sealed", api.KeyRotation{}, api.ErrInvalid, "key_file"},
		{"unreadable key file", "sealed", api.KeyRotation{KeyFile: filepath.Join(keys, "none")}, api.ErrInvalid, "key_file"},
		{"bad window", "sealed", api.KeyRotation{KeyFile: f[1], Window: "soon"}, api.ErrInvalid, "window"},
		{"negative window", "sealed", api.KeyRotation{KeyFile: f[1], Window: "-1s"}, api.ErrInvalid, "window"},
		{"the key in use", "sealed", api.KeyRotation{KeyFile: f[0]}, api.ErrConflict, ""},
		{"plain VXLAN", "plain", api.KeyRotation{KeyFile: f[1]}, api.ErrInvalid, ""},
		{"no such network", "nope", api.KeyRotation{KeyFile: f[1]}, api.ErrNotFound, ""},
	} {
		_, err := d.RotateTunnelKey(ctx, c.network, c.req)
		if !errors.Is(err, c.kind) {
			t.Errorf("%s: %v, want %v", c.name, err, c.kind)
			continue
		}
		if c.field != "" {
			if fs := fieldsOf(t, err); len(fs) != 1 || fs[0].Field != c.field {
				t.Errorf("%s: fields %+v, want %s", c.name, fs, c.field)
			}
		}
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.RotateTunnelKey(cancelled, "sealed", api.KeyRotation{KeyFile: f[1]}); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled request: %v, want context.Canceled", err)
	}
	if _, _, r := keysOf(t, d, "sealed"); r != nil {
		t.Fatalf("refused requests started a rotation: %+v", r)
	}

	tn, err := d.RotateTunnelKey(ctx, "sealed", api.KeyRotation{KeyFile: f[1], Window: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	r := tn.Keys.Rotation
	if r == nil || r.KeyID != id[1] || !r.DropAt.Equal(r.Start.Add(2*time.Hour)) || tn.Keys.SendID != id[0] || len(tn.Keys.Accepted) != 2 {
		t.Fatalf("rotation started: %+v", tn.Keys)
	}
	if _, err := d.RotateTunnelKey(ctx, "sealed", api.KeyRotation{KeyFile: f[2], Window: "1h"}); !errors.Is(err, api.ErrConflict) {
		t.Errorf("a second rotation during the first: %v, want a conflict", err)
	}

	// A restart resumes the rotation: the same schedule, both keys.
	d.Close()
	d = startDaemon(t, dir)
	send, acc, r2 := keysOf(t, d, "sealed")
	if send != id[0] || len(acc) != 2 || r2 == nil || r2.KeyID != id[1] || !r2.DropAt.Equal(r.DropAt) {
		t.Fatalf("after a restart: sealing under %04x, accepting %04x, rotation %+v; want %04x, both, %+v", send, acc, r2, id[0], r)
	}

	// No window: every key replaced at once, also while a rotation runs.
	if _, err := d.RotateTunnelKey(ctx, "sealed", api.KeyRotation{KeyFile: f[2], Window: "0s"}); err != nil {
		t.Fatal(err)
	}
	if send, acc, r := keysOf(t, d, "sealed"); send != id[2] || len(acc) != 1 || r != nil {
		t.Fatalf("after a rotation with no window: sealing under %04x, accepting %04x, rotation %+v; want %04x alone", send, acc, r, id[2])
	}
	d.Close()
	d = startDaemon(t, dir)
	if send, acc, r := keysOf(t, d, "sealed"); send != id[2] || len(acc) != 1 || r != nil {
		t.Fatalf("restarted after a rotation with no window: sealing under %04x, accepting %04x, rotation %+v", send, acc, r)
	}

	// The old key file gone during a rotation: the restart goes on with
	// the new key alone.
	if _, err := d.RotateTunnelKey(ctx, "sealed", api.KeyRotation{KeyFile: f[3], Window: "1h"}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if err := os.Remove(f[2]); err != nil {
		t.Fatal(err)
	}
	d = startDaemon(t, dir)
	if send, acc, r := keysOf(t, d, "sealed"); send != id[3] || len(acc) != 1 || r != nil {
		t.Fatalf("restarted without the old key file: sealing under %04x, accepting %04x, rotation %+v; want %04x alone", send, acc, r, id[3])
	}
}
