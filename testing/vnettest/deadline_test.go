package vnettest_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// timeoutErr reports whether err is a deadline's error: a net.Error
// whose Timeout is true.
func timeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// lossyPair is a World on virtual time with a server and a client whose
// wire loses a third of the frames and delays the rest, and a TCP
// connection from the client to the server's echo port.
func lossyPair(t *testing.T) (*vnettest.World, *vnettest.Host, net.Conn) {
	w := vnettest.New(t, vnettest.VirtualTime(), vnettest.Seed(3))
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	srv, cli := lan.NewHost("server"), lan.NewHost("client")
	if err := cli.Wire().Impair(vnettest.Loss(0.3), vnettest.Delay(20*time.Millisecond, 5*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	echoServer(t, srv)
	var c net.Conn
	var err error
	var done atomic.Bool
	go func() {
		defer done.Store(true)
		c, err = cli.Dial("tcp", "server:80")
	}()
	if ok, _ := w.AdvanceUntil(time.Minute, done.Load); !ok || err != nil {
		t.Fatalf("dial over the lossy link: done %v, %v", ok, err)
	}
	t.Cleanup(func() { c.Close() })
	return w, cli, c
}

// blockedRead runs read (a call that blocks) on a goroutine of its own
// and advances the World until it returns; it returns the virtual time
// that took and read's error.
func blockedRead(t *testing.T, w *vnettest.World, read func() error) (took time.Duration, err error) {
	t.Helper()
	var done atomic.Bool
	go func() {
		defer done.Store(true)
		err = read()
	}()
	ok, took := w.AdvanceUntil(2*time.Minute, done.Load)
	if !ok {
		t.Fatalf("the read still waits after %v of virtual time", took)
	}
	return took, err
}

// TestVirtualReadDeadline: a 30-second read deadline on a conn over a
// lossy link, waiting for more than the server sends while echoes trickle
// in, fires at exactly 30 virtual seconds, whether it is written on the
// World's clock or, as code that knows nothing of the World writes it, on
// the real one.
func TestVirtualReadDeadline(t *testing.T) {
	for _, c := range []struct {
		name string
		at   func(w *vnettest.World) time.Time
	}{
		{"world clock", func(w *vnettest.World) time.Time { return w.Now().Add(30 * time.Second) }},
		{"real clock", func(*vnettest.World) time.Time { return time.Now().Add(30 * time.Second) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			w, cli, conn := lossyPair(t)
			if err := conn.SetReadDeadline(c.at(w)); err != nil {
				t.Fatal(err)
			}
			var n int
			took, err := blockedRead(t, w, func() error {
				go conn.Write(make([]byte, 16<<10)) // echoed back, slowly
				var err error
				n, err = io.ReadFull(conn, make([]byte, 1<<20))
				return err
			})
			s := cli.Wire().Stats(vnettest.Down)
			t.Logf("read %d bytes, then %v after %v of virtual time, %v of wall time; the wire lost %d frames of %d",
				n, err, took, time.Since(start), s.Dropped, s.In)
			if !timeoutErr(err) || took != 30*time.Second {
				t.Fatalf("read returned %v after %v; want a timeout after 30s", err, took)
			}
			if n == 0 || s.Dropped == 0 {
				t.Fatalf("%d bytes echoed, %d frames lost: the link carried nothing to lose", n, s.Dropped)
			}
			// The conn still works after the deadline is cleared.
			if err := conn.SetReadDeadline(time.Time{}); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			_, err = blockedRead(t, w, func() error { _, err := conn.Read(make([]byte, 1)); return err })
			if err != nil {
				t.Fatalf("read after clearing the deadline: %v", err)
			}
		})
	}
}

// TestVirtualDeadlineMovedAndCleared: a deadline moved later fires at
// its new time, a cleared one never, and one in the past at once.
func TestVirtualDeadlineMovedAndCleared(t *testing.T) {
	w, _, conn := lossyPair(t)
	conn.SetReadDeadline(w.Now().Add(5 * time.Second))
	conn.SetReadDeadline(w.Now().Add(12 * time.Second))
	took, err := blockedRead(t, w, func() error { _, err := conn.Read(make([]byte, 1)); return err })
	if !timeoutErr(err) || took != 12*time.Second {
		t.Fatalf("moved deadline: read returned %v after %v; want a timeout after 12s", err, took)
	}

	conn.SetReadDeadline(w.Now().Add(5 * time.Second))
	conn.SetReadDeadline(time.Time{})
	var done atomic.Bool
	go func() {
		defer done.Store(true)
		_, err = conn.Read(make([]byte, 1))
	}()
	if ok, _ := w.AdvanceUntil(time.Minute, done.Load); ok {
		t.Fatalf("a cleared deadline fired: %v", err)
	}
	conn.SetReadDeadline(w.Now().Add(-time.Second)) // passed: the waiting read returns
	if ok, took := w.AdvanceUntil(time.Minute, done.Load); !ok || !timeoutErr(err) || took != 0 {
		t.Fatalf("a deadline in the past: done %v after %v, %v", ok, took, err)
	}
}

// TestVirtualWriteDeadline: a write that cannot go out (the peer is cut
// off, the send buffer fills) times out at its deadline.
func TestVirtualWriteDeadline(t *testing.T) {
	w, cli, conn := lossyPair(t)
	cli.Wire().Cut()
	conn.SetWriteDeadline(w.Now().Add(20 * time.Second))
	took, err := blockedRead(t, w, func() error {
		chunk := make([]byte, 64<<10)
		for {
			if _, err := conn.Write(chunk); err != nil {
				return err
			}
		}
	})
	if !timeoutErr(err) || took != 20*time.Second {
		t.Fatalf("write returned %v after %v; want a timeout after 20s", err, took)
	}
}

// TestVirtualPacketConnDeadline: ReadFrom on a host's UDP socket keeps
// its deadline on the World's clock.
func TestVirtualPacketConnDeadline(t *testing.T) {
	w := vnettest.New(t, vnettest.VirtualTime(), vnettest.Seed(1))
	h := w.NewNetwork("lan", "10.0.0.0/24").NewHost("h")
	pc, err := h.ListenPacket("udp", ":53")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.SetDeadline(w.Now().Add(7 * time.Second))
	took, err := blockedRead(t, w, func() error { _, _, err := pc.ReadFrom(make([]byte, 512)); return err })
	if !timeoutErr(err) || took != 7*time.Second {
		t.Fatalf("ReadFrom returned %v after %v; want a timeout after 7s", err, took)
	}
}

// TestVirtualAcceptDeadline: a listener's Accept deadline runs on the
// World's clock, and Close ends a waiting Accept with net.ErrClosed.
func TestVirtualAcceptDeadline(t *testing.T) {
	w := vnettest.New(t, vnettest.VirtualTime(), vnettest.Seed(1))
	h := w.NewNetwork("lan", "10.0.0.0/24").NewHost("h")
	l, err := h.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dl, ok := l.(interface{ SetDeadline(time.Time) error })
	if !ok {
		t.Fatalf("the listener %T has no SetDeadline", l)
	}
	dl.SetDeadline(w.Now().Add(30 * time.Second))
	took, err := blockedRead(t, w, func() error { _, err := l.Accept(); return err })
	if !timeoutErr(err) || !errors.Is(err, os.ErrDeadlineExceeded) || took != 30*time.Second {
		t.Fatalf("Accept returned %v after %v; want os.ErrDeadlineExceeded after 30s", err, took)
	}
	dl.SetDeadline(time.Time{})
	var done atomic.Bool
	go func() {
		defer done.Store(true)
		_, err = l.Accept()
	}()
	if ok, _ := w.AdvanceUntil(time.Minute, done.Load); ok {
		t.Fatalf("Accept returned with the deadline cleared: %v", err)
	}
	l.Close()
	if ok, _ := w.AdvanceUntil(time.Minute, done.Load); !ok || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: done %v, %v; want net.ErrClosed", ok, err)
	}
}

// TestAcceptDeadlineRealTime: on the real clock too, a listener takes an
// Accept deadline, and a connection that is waiting is accepted.
func TestAcceptDeadlineRealTime(t *testing.T) {
	w := vnettest.New(t)
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	srv, cli := lan.NewHost("server"), lan.NewHost("client")
	l, err := srv.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.(*vnettest.Listener).SetDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := l.Accept(); !timeoutErr(err) {
		t.Fatalf("Accept: %v; want a timeout", err)
	}
	l.(*vnettest.Listener).SetDeadline(time.Now().Add(time.Minute))
	c, err := cli.Dial("tcp", "server:80")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept with a connection waiting: %v", err)
	}
	s.Close()
}

// TestVirtualDialContextTimeout: a context.WithTimeout context given to
// DialContext ends the dial after its time on the World's clock.
func TestVirtualDialContextTimeout(t *testing.T) {
	w := vnettest.New(t, vnettest.VirtualTime(), vnettest.Seed(1))
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	srv, cli := lan.NewHost("server"), lan.NewHost("client")
	echoServer(t, srv)
	// The server's wire drops every TCP segment: the SYNs go unanswered.
	noTCP := vnettest.StageFunc(func(_ *vnettest.StageContext, p vnettest.Packet, emit func(vnettest.Packet)) {
		if len(p.Data) > 14+9 && p.Data[12] == 0x08 && p.Data[13] == 0 && p.Data[14+9] == 6 {
			return
		}
		emit(p)
	})
	if err := srv.Wire().SetStages(vnettest.Down, noTCP); err != nil {
		t.Fatal(err)
	}
	took, err := blockedRead(t, w, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := cli.DialContext(ctx, "tcp", "server:80")
		if err == nil {
			c.Close()
		}
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) || took != 30*time.Second {
		t.Fatalf("dial returned %v after %v; want context.DeadlineExceeded after 30s", err, took)
	}
}
