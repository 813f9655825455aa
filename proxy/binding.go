package proxy

import (
	"context"
	"net/netip"
	"time"

	"go.uber.org/zap"
)

// binding is one host listener with its goroutines.
type binding interface {
	published() Published
	// start starts the listener's goroutines.
	start()
	// stop closes the listener and its connections or flows, and cancels
	// dials in progress. It does not wait and may be called with
	// Manager.mu held.
	stop()
	// wait returns when every goroutine of the binding has ended.
	wait()
	stats() BindingStats
}

// bindingBase is what TCP and UDP bindings share.
type bindingBase struct {
	pub         Published
	dialer      Dialer
	dst         netip.AddrPort
	dialTimeout time.Duration
	log         *zap.Logger
	ctx         context.Context // cancelled by stop: aborts dials
	cancel      context.CancelFunc
	epoch       time.Time // the Manager's clock

	// Connection limits (limits.go): the published port's, for TCP (nil
	// for UDP, whose flow table has its size instead), and the Manager's.
	port, global *connLimit
	// Warnings about refusals and failed accepts, one per warnEvery.
	warnEvery time.Duration
	warns     *bindingWarns
}

// bindingWarns are the gates of a binding's rate-limited warnings.
type bindingWarns struct{ overLimit, acceptFailed warnGate }

func (b *bindingBase) published() Published { return b.pub }

// now returns the Manager's monotonic clock, as Manager.now does.
func (b *bindingBase) now() int64 { return int64(time.Since(b.epoch)) }

// pause sleeps for d, or returns false at once when the binding stops.
func (b *bindingBase) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-b.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// warnOverLimit logs, at most once per warnEvery, that connections (or
// flows) were refused because scope's limit was full; total is the
// binding's count of refusals so far.
func (b *bindingBase) warnOverLimit(scope limitScope, total uint64) {
	n, ok := b.warns.overLimit.due(b.now(), b.warnEvery, total)
	if !ok {
		return
	}
	lim := b.global
	if scope == scopePort {
		lim = b.port
	}
	b.log.Warn("connection limit reached; refusing new connections",
		zap.String("limit", string(scope)), zap.Int64("max", lim.max),
		zap.Uint64("refused", n), zap.Duration("window", b.warnEvery))
}

// warnAcceptFailed logs, at most once per warnEvery, that accept failed
// (out of file descriptors, usually); total is the count so far.
func (b *bindingBase) warnAcceptFailed(err error, total uint64, backoff time.Duration) {
	if n, ok := b.warns.acceptFailed.due(b.now(), b.warnEvery, total); ok {
		b.log.Warn("accept failed; backing off", zap.Error(err), zap.Uint64("failures", n),
			zap.Duration("backoff", backoff), zap.Duration("window", b.warnEvery))
	}
}

func (m *Manager) newBase(pub Published, d Dialer, opts Options) bindingBase {
	ctx, cancel := context.WithCancel(context.Background())
	dst := pub.TargetAddr()
	return bindingBase{
		pub:         pub,
		dialer:      d,
		dst:         dst,
		dialTimeout: positiveOr(opts.DialTimeout, m.cfg.DialTimeout),
		log: m.log.With(zap.String("owner", pub.Owner),
			zap.String("listen", pub.HostAddr().String()+"/"+pub.Proto.String()), zap.Stringer("target", dst)),
		ctx:       ctx,
		cancel:    cancel,
		epoch:     m.epoch,
		global:    &m.conns,
		warnEvery: m.cfg.WarnInterval,
		warns:     new(bindingWarns),
	}
}
