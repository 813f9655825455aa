package tap

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/internal/evloop"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// LoopBufLen is the buffer an evloop.Loop serving TAPs needs: the largest
// frame a TAP hands over.
const LoopBufLen = readBufLen

// loopBudget is how many frames a port reads in one turn of its loop
// before the loop moves on to the next ready descriptor.
const loopBudget = 32

// loopReader is a Port's reader when its frames are read by a shared
// loop (Config.Loop) instead of a goroutine of its own.
type loopReader struct {
	p     *Port
	in    vswitch.Ingress
	fd    int
	token uint64
}

// startLoop hands the device to cfg.Loop. The descriptor moves out of
// Go's netpoller first (an arrival would otherwise wake an idle runtime
// thread for nothing, the wake-up the loop exists to save).
func (p *Port) startLoop(in vswitch.Ingress) error {
	f, err := unpolled(p.file)
	if err != nil {
		return fmt.Errorf("tap %s: %w", p.name, err)
	}
	p.file = f
	if p.raw, err = f.SyscallConn(); err != nil {
		return fmt.Errorf("tap %s: %w", p.name, err)
	}
	lr := &loopReader{p: p, in: in, fd: int(f.Fd())}
	if lr.token, err = p.cfg.Loop.Add(lr.fd, lr); err != nil {
		return fmt.Errorf("tap %s: %w", p.name, err)
	}
	p.looped = lr
	return nil
}

// Readable implements evloop.Handler.
func (lr *loopReader) Readable(buf []byte) (int, bool) {
	for i := 0; i < loopBudget; i++ {
		n, err := unix.Read(lr.fd, buf)
		switch {
		case err == nil:
			lr.p.deliver(lr.in, buf[:n])
		case err == unix.EAGAIN:
			return i, false
		case err == unix.EINTR:
		case lr.p.gone(err):
			return i, true
		default:
			lr.p.readErrors.Add(1)
			return i, false
		}
	}
	return loopBudget, false
}

// unpolled returns f's descriptor as a File that Go's netpoller does not
// watch: a duplicate, made while blocking so that os.NewFile leaves it
// alone, then set non-blocking again. f is closed, which takes the old
// descriptor out of the netpoller.
func unpolled(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd, err := evloop.Dup(rc)
	if err != nil {
		return nil, err
	}
	name := f.Name()
	f.Close()
	if err := unix.SetNonblock(nfd, false); err != nil {
		unix.Close(nfd)
		return nil, err
	}
	nf := os.NewFile(uintptr(nfd), name)
	if err := unix.SetNonblock(nfd, true); err != nil {
		nf.Close()
		return nil, err
	}
	return nf, nil
}
