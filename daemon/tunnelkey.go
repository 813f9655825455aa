package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/store"
	"github.com/switchyard-net/switchyard/tunnel"
)

// Live rotation of a sealed tunnel's key (tunnel rotate-key). Each host's
// daemon is asked on its own; the schedule that makes that lossless is
// tunnel.Rotation's (see the tunnel package doc, "Key rotation"). The
// record keeps the new key file, the old one and the rotation's start and
// window, so that a restart in the middle resumes it.

// DefaultRotateWindow is the rotation window when the request names none:
// the time an operator has to rotate every host after the first.
const DefaultRotateWindow = 60 * time.Second

// maxRotateWindow bounds the window: a rotation that keeps an old key for
// days is a rotation forgotten.
const maxRotateWindow = 24 * time.Hour

// startKeys returns the key a secure tunnel starts with: tc.KeyFile's,
// or, if a restart interrupted a rotation, the previous key with the
// rotation to resume.
func startKeys(log *zap.Logger, tc *store.Tunnel, now time.Time) (tunnel.Key, *tunnel.Rotation, error) {
	key, err := tunnel.LoadKey(tc.KeyFile)
	if err != nil {
		return tunnel.Key{}, nil, err
	}
	if tc.PrevKeyFile == "" || !now.Before(tc.RotateStart.Add(2*tc.RotateWindow)) {
		return key, nil, nil
	}
	prev, err := tunnel.LoadKey(tc.PrevKeyFile)
	if err != nil {
		log.Warn("a key rotation was under way, but the previous key is gone: starting with the new key alone; frames peers still seal under the old key are dropped until they switch",
			zap.String("key_file", tc.KeyFile), zap.Error(err))
		return key, nil, nil
	}
	if tunnel.KeyIDOf(prev) == tunnel.KeyIDOf(key) { // the file was rewritten in place
		return key, nil, nil
	}
	log.Info("resuming a key rotation", zap.String("key_file", tc.KeyFile), zap.Time("start", tc.RotateStart),
		zap.Duration("window", tc.RotateWindow))
	return prev, &tunnel.Rotation{Key: key, KeyID: tunnel.KeyIDOf(key), Start: tc.RotateStart, Window: tc.RotateWindow}, nil
}

// parseKeyRotation checks req: the new key and the window.
func parseKeyRotation(req api.KeyRotation) (tunnel.Key, time.Duration, fieldErrs) {
	var errs fieldErrs
	var key tunnel.Key
	if req.KeyFile == "" {
		errs.add("key_file", "", "missing: the new key", "a file with 32 random bytes in base64, like the output of head -c 32 /dev/urandom | base64")
	} else if k, err := tunnel.LoadKey(req.KeyFile); err != nil {
		errs.add("key_file", req.KeyFile, err.Error(), "")
	} else {
		key = k
	}
	window := DefaultRotateWindow
	if req.Window != "" {
		w, err := time.ParseDuration(req.Window)
		switch {
		case err != nil:
			errs.add("window", req.Window, "not a duration", "a duration like 60s or 5m")
		case w < 0 || w > maxRotateWindow:
			errs.add("window", req.Window, "out of range", "0s to "+maxRotateWindow.String())
		default:
			window = w
		}
	}
	return key, window, errs
}

// RotateTunnelKey starts replacing the key of network name's sealed
// tunnel with the key in req.KeyFile, and stores the rotation. It returns
// once the tunnel accepts the new key; the rest follows on the clock. ctx
// ended before it begins cancels it.
func (d *Daemon) RotateTunnelKey(ctx context.Context, name string, req api.KeyRotation) (api.Tunnel, error) {
	d.mu.Lock()
	n, err := d.rotateLocked(ctx, name, req)
	d.mu.Unlock()
	if err != nil {
		return api.Tunnel{}, err
	}
	r := n.tun.port.Keys().Rotation
	if r != nil {
		d.log.Info("tunnel key rotation started", zap.String("network", name), zap.String("key_file", req.KeyFile),
			zap.Uint16("key_id", r.KeyID), zap.Time("send_at", r.SendAt()), zap.Time("drop_at", r.DropAt()))
	} else {
		d.log.Info("tunnel key replaced", zap.String("network", name), zap.String("key_file", req.KeyFile))
	}
	return d.Tunnel(name)
}

func (d *Daemon) rotateLocked(ctx context.Context, name string, req api.KeyRotation) (*network, error) {
	n, err := d.tunnelNetworkLocked(name)
	if err != nil {
		return nil, err
	}
	tc := n.rec.Tunnel
	if tc.Mode != "secure" {
		return nil, invalid("network %q has a %s tunnel, which is not encrypted: there is no key to rotate", name, tc.Mode)
	}
	key, window, errs := parseKeyRotation(req)
	if len(errs) > 0 {
		return nil, api.Validate(api.KeyRotation{}, errs)
	}
	if r := n.tun.port.Keys().Rotation; r != nil && window > 0 {
		return nil, conflict("a key rotation of network %q is under way until %s: wait for it to end, or give a window of 0 to replace every key at once",
			name, r.DropAt().UTC().Format(time.RFC3339))
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rotate the key of network %s: %w", name, err)
	}
	now := time.Now()
	err = n.tun.port.Rotate(tunnel.Rotation{Key: key, KeyID: tunnel.KeyIDOf(key), Start: now, Window: window})
	if errors.Is(err, tunnel.ErrKeyID) {
		return nil, conflict("key file %s: %v", req.KeyFile, err)
	} else if err != nil {
		return nil, fmt.Errorf("rotate the key of network %s: %w", name, err)
	}
	rec := n.rec
	next := *tc
	next.PrevKeyFile, next.KeyFile = tc.KeyFile, req.KeyFile
	next.RotateStart, next.RotateWindow = now.UTC(), window
	rec.Tunnel = &next
	if err := d.store.PutNetwork(rec); err != nil {
		return nil, fmt.Errorf("rotate the key of network %s: the tunnel uses the new key, but saving it failed (a restart goes back to %s): %w",
			name, tc.KeyFile, err)
	}
	n.rec = rec
	return n, nil
}

// tunnelKeys describes p's keys; nil for a plain VXLAN port.
func tunnelKeys(p *tunnel.Port) *api.TunnelKeys {
	ks := p.Keys()
	if ks.Keys == nil {
		return nil
	}
	out := &api.TunnelKeys{SendID: ks.SendID, Accepted: make([]api.TunnelKey, 0, len(ks.Keys))}
	for _, k := range ks.Keys {
		out.Accepted = append(out.Accepted, api.TunnelKey{ID: k.ID, RXDatagrams: k.RXDatagrams})
	}
	if r := ks.Rotation; r != nil {
		out.Rotation = &api.TunnelRotation{KeyID: r.KeyID, Start: r.Start, SendAt: r.SendAt(), DropAt: r.DropAt()}
	}
	return out
}
