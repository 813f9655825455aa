// Package relay copies between two stream connections the way a proxy
// must: both directions at once, half-close propagated (when one side stops
// sending, the other side's write half is shut, and the reply still flows),
// both connections closed exactly once when both directions are done or
// either fails, and no goroutine left behind.
//
// When both ends are kernel TCP sockets io.Copy splices on Linux and no
// byte crosses userspace; otherwise a pooled 64 KiB buffer is used.
package relay

import (
	"errors"
	"io"
	"net"
	"sync"
)

// closeWriter is implemented by connections that can be half-closed
// (*net.TCPConn, gVisor's gonet.TCPConn, *net.UnixConn).
type closeWriter interface {
	CloseWrite() error
}

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 64<<10)
	return &b
}}

// Result is what Stream moved.
type Result struct {
	// AToB and BToA count the bytes copied each way.
	AToB, BToA int64
	// Err is the first error other than the end of a stream, if any.
	Err error
}

// Stream relays between a and b until both directions have ended, then
// closes both. It blocks; run it on a goroutine of the connection's own.
func Stream(a, b net.Conn) Result {
	var closeA, closeB sync.Once
	closeBoth := func() {
		closeA.Do(func() { a.Close() })
		closeB.Do(func() { b.Close() })
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
	closeBoth()
	res.Err = errors.Join(errAToB, errBToA)
	return res
}

// copyAToB and copyBToA are the same; two names make stack dumps of a
// stuck relay say which direction is stuck.
func copyAToB(dst, src net.Conn, abort func()) (int64, error) { return half(dst, src, abort) }
func copyBToA(dst, src net.Conn, abort func()) (int64, error) { return half(dst, src, abort) }

// half copies src to dst until src ends, then shuts dst's write half. On
// an error it aborts both connections so the other direction ends too.
func half(dst, src net.Conn, abort func()) (int64, error) {
	var n int64
	var err error
	_, dstTCP := dst.(*net.TCPConn)
	_, srcTCP := src.(*net.TCPConn)
	if dstTCP && srcTCP {
		n, err = io.Copy(dst, src) // splice(2)
	} else {
		buf := bufPool.Get().(*[]byte)
		n, err = io.CopyBuffer(dst, onlyReader{src}, *buf)
		bufPool.Put(buf)
	}
	if err != nil {
		abort()
		return n, err
	}
	if cw, ok := dst.(closeWriter); ok {
		if cerr := cw.CloseWrite(); cerr == nil {
			return n, nil
		}
	}
	abort() // cannot half-close: end the whole relay
	return n, nil
}

// onlyReader hides src's other methods so io.CopyBuffer uses the buffer it
// is given instead of src's WriteTo.
type onlyReader struct{ io.Reader }
