// Package handoffs counts goroutine hand-offs: how many times a goroutine
// of this process is woken (moves from waiting to runnable) while a piece
// of work runs. On a small VM each such wake-up costs tens of µs of
// context switching, so for request/response traffic the count per round
// trip, not the wall clock, is the number to drive down: it does not move
// with the load of the machine.
//
// Count records the work with the runtime's execution tracer and reads the
// trace back with golang.org/x/exp/trace. Each wake-up is put in the name
// of the function the woken goroutine was started in (its outermost frame
// in Switchyard or gVisor), so a table says which hop woke whom.
package handoffs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime/trace"
	"sort"
	"strings"
	"sync"

	xtrace "golang.org/x/exp/trace"
)

// Result is what Count saw.
type Result struct {
	// Wakeups counts wake-ups per label (see Label).
	Wakeups map[string]int
	// ProcStarts counts Ps (the runtime's processors) going from idle to
	// running: each is an OS thread woken or started to run Go code, the
	// expensive kind of wake-up, which a goroutine readied on a P that is
	// already running does not need.
	ProcStarts int
}

// Total returns the sum of the wake-ups whose label does not start with
// one of the prefixes in exclude.
func (r Result) Total(exclude ...string) int {
	n := 0
	for l, c := range r.Wakeups {
		if !hasPrefix(l, exclude) {
			n += c
		}
	}
	return n
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// Table formats the wake-ups per label divided by ops, largest first.
func (r Result) Table(ops int) string {
	labels := make([]string, 0, len(r.Wakeups))
	for l := range r.Wakeups {
		labels = append(labels, l)
	}
	sort.Slice(labels, func(i, j int) bool {
		a, b := r.Wakeups[labels[i]], r.Wakeups[labels[j]]
		if a != b {
			return a > b
		}
		return labels[i] < labels[j]
	})
	var sb strings.Builder
	for _, l := range labels {
		fmt.Fprintf(&sb, "%8.3f  %s\n", float64(r.Wakeups[l])/float64(ops), l)
	}
	return sb.String()
}

// traceMu serialises Count: the process has one execution tracer.
var traceMu sync.Mutex

// Count runs fn with the execution tracer on and returns the wake-ups of
// every goroutine of the process while it ran.
func Count(fn func() error) (Result, error) {
	traceMu.Lock()
	defer traceMu.Unlock()
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		return Result{}, fmt.Errorf("start the execution tracer: %w", err)
	}
	ferr := fn()
	trace.Stop()
	if ferr != nil {
		return Result{}, ferr
	}
	return Read(&buf)
}

// Read counts the wake-ups in an execution trace.
func Read(r io.Reader) (Result, error) {
	tr, err := xtrace.NewReader(r)
	if err != nil {
		return Result{}, fmt.Errorf("read execution trace: %w", err)
	}
	res := Result{Wakeups: map[string]int{}}
	// blockedIn is the label of each goroutine, from the stack it last
	// blocked with (or was found waiting with when the trace started).
	blockedIn := map[xtrace.GoID]string{}
	for {
		ev, err := tr.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Result{}, fmt.Errorf("read execution trace: %w", err)
		}
		if ev.Kind() != xtrace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind == xtrace.ResourceProc {
			if from, to := st.Proc(); from == xtrace.ProcIdle && to == xtrace.ProcRunning {
				res.ProcStarts++
			}
			continue
		}
		if st.Resource.Kind != xtrace.ResourceGoroutine {
			continue
		}
		id := st.Resource.Goroutine()
		from, to := st.Goroutine()
		switch {
		case to == xtrace.GoWaiting:
			blockedIn[id] = Label(st.Stack)
		case from == xtrace.GoWaiting && to == xtrace.GoRunnable:
			l, ok := blockedIn[id]
			if !ok {
				l = "(unknown)"
			}
			res.Wakeups[l]++
		case to == xtrace.GoNotExist:
			delete(blockedIn, id)
		}
	}
	return res, nil
}

// Label names a goroutine by its stack: the outermost frame in Switchyard
// or gVisor (the function the goroutine was started in, or the test that
// runs it), without the module path; failing that the innermost frame
// outside the runtime; "(no stack)" for an empty one.
func Label(s xtrace.Stack) string {
	outer, inner := "", ""
	for f := range s.Frames() {
		name := f.Func
		if inner == "" && !strings.HasPrefix(name, "runtime.") && !strings.HasPrefix(name, "internal/") {
			inner = name
		}
		if short, ok := shorten(name); ok {
			outer = short
		}
	}
	switch {
	case outer != "":
		return outer
	case inner != "":
		return inner
	}
	return "(no stack)"
}

func shorten(name string) (string, bool) {
	for _, p := range []string{"github.com/switchyard-net/switchyard/", "gvisor.dev/gvisor/pkg/"} {
		if strings.HasPrefix(name, p) {
			return strings.TrimPrefix(name, p), true
		}
	}
	return name, false
}
