package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/tunnel"
)

// The sealed tunnel's key is replaced on both hosts, one after the other,
// while a ping runs across it: no echo is lost, no datagram is refused,
// every frame one host sent the other received, and both hosts end with
// the new key alone.
func TestTunnelKeyRotation(t *testing.T) {
	const window = 2 * time.Second
	hs := newHosts(t, 2)
	a, b := hs.h[0], hs.h[1]
	dir := t.TempDir()
	oldKey, newKey := tunnel.GenerateKey(), tunnel.GenerateKey()
	oldFile, newFile := filepath.Join(dir, "old"), filepath.Join(dir, "new")
	for f, k := range map[string]tunnel.Key{oldFile: oldKey, newFile: newKey} {
		if err := os.WriteFile(f, []byte(k.Base64()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i, h := range hs.h {
		h.d.MustRun("network", "create", "sealed", "--subnet", "10.251.0.0/16", "--ip-range", fmt.Sprintf("10.251.%d.0/24", i+1),
			"--tunnel", "secure", "--key-file", oldFile, "--tunnel-listen", h.addr, "--peer", hs.h[1-i].addr)
	}
	ca, _ := a.container(t, "sealed", "ca")
	_, addrB := b.container(t, "sealed", "cb")
	if err := ca.Ping(addrB, 1); err != nil {
		t.Fatalf("ping across the sealed tunnel: %v", err)
	}

	// 200 echoes, 50 ms apart: 10 s, several times what the rotation takes.
	const echoes = 200
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ping := ca.Command(ctx, "ping", "-n", "-q", "-i", "0.05", "-c", fmt.Sprint(echoes), "-W", "2", addrB)
	var pingOut bytes.Buffer
	ping.Stdout, ping.Stderr = &pingOut, &pingOut
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	pingDone := make(chan error, 1)
	go func() { pingDone <- ping.Wait() }()
	rx := tunnelOf(t, b.d, "sealed").Stats.RXDatagrams
	waitTunnel(t, b, "the ping to reach host2", func(s tunnelKeys) bool { return s.rx >= rx+10 })

	oldID, newID := tunnel.KeyIDOf(oldKey), tunnel.KeyIDOf(newKey)
	start := time.Now()
	a.d.MustRun("tunnel", "rotate-key", "sealed", "--key-file", newFile, "--window", window.String())
	// Host2 rotates at a moment of its own, ten echoes later.
	rx = tunnelOf(t, b.d, "sealed").Stats.RXDatagrams
	waitTunnel(t, b, "ten more echoes", func(s tunnelKeys) bool { return s.rx >= rx+10 })
	b.d.MustRun("tunnel", "rotate-key", "sealed", "--key-file", newFile, "--window", window.String())
	if late := time.Since(start); late >= window {
		t.Fatalf("host2 rotated %v after host1, outside the %v window: the machine is too slow for this test", late, window)
	}
	for _, h := range hs.h {
		waitTunnel(t, h, "the rotation to end", func(s tunnelKeys) bool {
			return !s.rotating && s.send == newID && len(s.accepted) == 1 && s.accepted[0] == newID
		})
	}
	select {
	case err := <-pingDone:
		t.Fatalf("the ping ended before the rotation did, so it covered only part of it: %v\n%s", err, pingOut.String())
	default:
	}
	select {
	case err := <-pingDone:
		if err != nil || !strings.Contains(pingOut.String(), fmt.Sprintf("%d packets transmitted, %d received", echoes, echoes)) {
			t.Errorf("ping across the rotation: %v\n%s", err, pingOut.String())
		}
	case <-ctx.Done():
		t.Fatal("ping did not end")
	}

	// Every frame sent was received, and nothing was refused.
	for i, h := range hs.h {
		other := hs.h[1-i]
		waitTunnel(t, other, "every frame from "+h.addr, func(tunnelKeys) bool {
			sent := tunnelOf(t, h.d, "sealed").Peers[0].TXFrames
			return tunnelOf(t, other.d, "sealed").Peers[0].RXFrames == sent
		})
		tn := tunnelOf(t, h.d, "sealed")
		for _, reason := range []string{"unknown_key", "auth", "replay", "version"} {
			if n := tn.DropsBy[reason]; n > 0 {
				t.Errorf("host %s dropped %d datagrams (%s) during the rotation: %v", h.addr, n, reason, tn.DropsBy)
			}
		}
		if tn.Keys.Accepted[0].RXDatagrams == 0 {
			t.Errorf("host %s received nothing under the new key", h.addr)
		}
	}
	out := a.d.MustRun("tunnel", "ls", "sealed")
	if want := fmt.Sprintf("sealing under %04x, accepting %04x", newID, newID); !strings.Contains(out, want) {
		t.Errorf("tunnel ls lacks %q:\n%s", want, out)
	}
	for _, c := range []struct{ args, want string }{
		{"tunnel rotate-key sealed --key-file " + newFile, "key ID already in use"},
		{"tunnel rotate-key sealed", "invalid --key-file: missing"},
		{"tunnel rotate-key sealed --key-file " + oldFile + " --window soon", `invalid --window "soon": not a duration`},
	} {
		if r := a.d.Run(strings.Fields(c.args)...); r.Code == 0 || !strings.Contains(r.Stderr, c.want) {
			t.Errorf("%s: %s\nwant an error containing %q", c.args, r, c.want)
		}
	}
	t.Logf("keys %04x → %04x on two hosts under a ping: %d of %d echoes answered", oldID, newID, echoes, echoes)
}

// tunnelKeys is what waitTunnel's conditions look at.
type tunnelKeys struct {
	rx       uint64
	send     uint16
	accepted []uint16
	rotating bool
}

// waitTunnel polls h's tunnel until cond holds, for up to 20 s.
func waitTunnel(t *testing.T, h *host, what string, cond func(tunnelKeys) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		tn := tunnelOf(t, h.d, "sealed")
		s := tunnelKeys{rx: tn.Stats.RXDatagrams}
		if tn.Keys != nil {
			s.send, s.rotating = tn.Keys.SendID, tn.Keys.Rotation != nil
			for _, k := range tn.Keys.Accepted {
				s.accepted = append(s.accepted, k.ID)
			}
		}
		if cond(s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("host %s: timed out waiting for %s: %+v", h.addr, what, tn.Keys)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
