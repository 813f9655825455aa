// Package relay copies between two stream connections the way a proxy
// must: both directions at once, half-close propagated (when one side stops
// sending, the other side's write half is shut, and the reply still flows),
// both connections closed exactly once when both directions are done or
// either fails (a failure passed on as a reset), and no goroutine left
// behind.
//
// When both ends are kernel TCP sockets io.Copy splices on Linux and no
// byte crosses userspace; otherwise Copy moves the bytes through pooled
// buffers sized to the traffic.
package relay

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// closeWriter is implemented by connections that can be half-closed
// (*net.TCPConn, gVisor's gonet.TCPConn, *net.UnixConn).
type closeWriter interface {
	CloseWrite() error
}

// Result is what Stream moved.
type Result struct {
	// AToB and BToA count the bytes copied each way.
	AToB, BToA int64
	// Err is the first error other than the end of a stream, if any.
	Err error
}

// lingerer is implemented by connections that can be reset on close
// (*net.TCPConn, the gateway's netstack connections).
type lingerer interface {
	SetLinger(sec int) error
}

// Stream relays between a and b until both directions have ended, then
// closes both. It blocks; run it on a goroutine of the connection's own.
// A failure in either direction (a reset, a broken write) ends the relay
// at once and is passed on as a reset: both connections are closed with
// SO_LINGER 0 where they allow it, as the kernel's NAT would pass an RST
// through.
func Stream(a, b net.Conn) Result {
	var closeA, closeB sync.Once
	closeBoth := func(reset bool) {
		closeA.Do(func() { closeConn(a, reset) })
		closeB.Do(func() { closeConn(b, reset) })
	}
	var res Result
	var errBToA error
	done := make(chan struct{})
	go func() {
		defer close(done)
		res.BToA, errBToA = copyBToA(a, b, closeBoth)
	}()
	var errAToB error
	res.AToB, errAToB = copyAToB(b, a, closeBoth)
	<-done
	closeBoth(false)
	res.Err = errors.Join(errAToB, errBToA)
	return res
}

func closeConn(c net.Conn, reset bool) {
	if l, ok := c.(lingerer); ok && reset {
		l.SetLinger(0)
	}
	c.Close()
}

// copyAToB and copyBToA are the same; two names make stack dumps of a
// stuck relay say which direction is stuck.
func copyAToB(dst, src net.Conn, abort func(reset bool)) (int64, error) {
	return half(dst, src, abort)
}
func copyBToA(dst, src net.Conn, abort func(reset bool)) (int64, error) {
	return half(dst, src, abort)
}

// half copies src to dst until src ends, then shuts dst's write half. On
// an error it resets both connections so the other direction ends too.
func half(dst, src net.Conn, abort func(reset bool)) (int64, error) {
	var n int64
	var err error
	_, dstTCP := dst.(*net.TCPConn)
	_, srcTCP := src.(*net.TCPConn)
	if dstTCP && srcTCP {
		n, err = io.Copy(dst, src) // splice(2)
	} else {
		n, err = Copy(dst, src, nil)
	}
	if err != nil {
		abort(true)
		return n, err
	}
	if cw, ok := dst.(closeWriter); ok {
		if cerr := cw.CloseWrite(); cerr == nil {
			return n, nil
		}
	}
	abort(false) // cannot half-close: end the whole relay
	return n, nil
}

// Copy's buffers. A small one serves interactive and idle connections; a
// read that fills it marks a bulk transfer, which moves to a large one
// until a read comes back shorter than the small one again. The large
// buffer is what makes a relay into gVisor's netstack fast: each Write is
// sent as one run of 64 KiB superframes, and host socket reads of 512 KiB
// rather than 32 KiB about double a single stream (published ports: 4.8 →
// 8.9 Gbit/s at MTU 1500 and 4.9 → 10.3 at MTU 65520 on a 2-vCPU VM,
// benchmarks/bench.sh ports; 1 MiB adds under 10%).
const (
	smallBuf = 32 << 10
	bulkBuf  = 512 << 10
)

var (
	smallBufs = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}
	bulkBufs  = sync.Pool{New: func() any { b := make([]byte, bulkBuf); return &b }}
)

// Copy copies src to dst until src's EOF (then the error is nil) or an
// error, adding what it writes to n (if not nil) as it goes. It reads into
// its own pooled buffers, never src's WriteTo or dst's ReadFrom; an idle
// connection holds only the small one.
func Copy(dst io.Writer, src io.Reader, n *atomic.Uint64) (int64, error) {
	small := smallBufs.Get().(*[]byte)
	defer smallBufs.Put(small)
	var bulk *[]byte
	defer func() {
		if bulk != nil {
			bulkBufs.Put(bulk)
		}
	}()
	var total int64
	buf := *small
	for {
		k, rerr := src.Read(buf)
		if k > 0 {
			w, werr := dst.Write(buf[:k])
			total += int64(w)
			if n != nil {
				n.Add(uint64(w))
			}
			if werr != nil {
				return total, werr
			}
			if w != k {
				return total, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
		switch {
		case bulk == nil && k == len(buf):
			bulk = bulkBufs.Get().(*[]byte)
			buf = *bulk
		case bulk != nil && k < smallBuf:
			bulkBufs.Put(bulk)
			bulk, buf = nil, *small
		}
	}
}
