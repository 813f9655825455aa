package tap

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
)

// reader is the life cycle Port and VMPort share: one goroutine reading
// file, started by Start, and a Close that closes the file (which ends
// the goroutine's blocked read) and waits for the goroutine.
type reader struct {
	file    *os.File
	done    chan struct{}
	started atomic.Bool
	closed  atomic.Bool
	once    sync.Once
}

// start runs loop on the reader goroutine.
func (r *reader) start(loop func()) {
	r.started.Store(true)
	go func() {
		defer close(r.done)
		loop()
	}()
}

// stopping reports whether a read error comes from Close.
func (r *reader) stopping(err error) bool {
	return r.closed.Load() || errors.Is(err, os.ErrClosed)
}

// close closes the file, once, and waits for the reader to end.
func (r *reader) close() error {
	var err error
	r.once.Do(func() {
		r.closed.Store(true)
		err = r.file.Close()
		if r.started.Load() {
			<-r.done
		}
	})
	return err
}
