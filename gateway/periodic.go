package gateway

import (
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// periodic runs a janitor's job (a sweep) every period on the gateway's
// clock, from the clock's timer: no goroutine waits between runs, and on
// a virtual clock the runs come as the clock is moved.
//
// Lock order: mu, then whatever the job takes, then the clock's own.
type periodic struct {
	period time.Duration
	job    func()

	mu      sync.Mutex
	timer   tcpip.Timer
	stopped bool
}

// every starts running job every period until stop.
func (g *Gateway) every(period time.Duration, job func()) *periodic {
	p := &periodic{period: period, job: job}
	p.mu.Lock()
	p.timer = g.clock.AfterFunc(period, p.run)
	p.mu.Unlock()
	return p
}

func (p *periodic) run() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.job()
	p.timer.Reset(p.period)
}

// stop ends the runs; a run under way finishes first. Stopping twice,
// or a nil periodic, is harmless.
func (p *periodic) stop() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	p.timer.Stop()
}
