package relay

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// countingConn counts its Close calls; without CloseWrite and SetLinger
// (hide) it is a plain net.Conn, as a dialer's conn that cannot be
// half-closed.
type countingConn struct {
	net.Conn
	closes atomic.Int32
}

func (c *countingConn) Close() error {
	c.closes.Add(1)
	return c.Conn.Close()
}

// halfCountingConn keeps CloseWrite and SetLinger of the TCP conn under a
// countingConn, so the buffered path runs with everything else intact.
type halfCountingConn struct{ *countingConn }

func (c halfCountingConn) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }
func (c halfCountingConn) SetLinger(s int) error {
	return c.Conn.(*net.TCPConn).SetLinger(s)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func expectReset(t *testing.T, who string, c *net.TCPConn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("%s read %v, want ECONNRESET", who, err)
	}
}

// Config's counters advance while the relay runs (on the splice path at
// each MiB), not only when it ends.
func TestCountersLive(t *testing.T) {
	for _, tc := range copyPaths {
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			client, a := pair(t)
			b, server := pair(t)
			var aToB, bToA atomic.Uint64
			r := New(tc.wrap(a), tc.wrap(b), Config{AToB: &aToB, BToA: &bToA})
			done := make(chan Result, 1)
			go func() { done <- r.Run() }()

			const up, down = 3 << 20, 2 << 20
			go client.Write(bytes.Repeat([]byte("u"), up))
			go server.Write(bytes.Repeat([]byte("d"), down))
			go io.Copy(io.Discard, server)
			go io.Copy(io.Discard, client)
			waitUntil(t, "the counters of a live relay did not reach what crossed", func() bool {
				return aToB.Load() == up && bToA.Load() == down
			})
			select {
			case <-done:
				t.Fatal("the relay ended while both sides were open")
			default:
			}
			client.Close()
			server.Close()
			res := <-done
			if res.AToB != up || res.BToA != down {
				t.Errorf("Result counted %d/%d bytes, want %d/%d", res.AToB, res.BToA, up, down)
			}
			waitGoroutines(t, base)
		})
	}
}

// Abort, while the relay runs or before it does, resets both peers and
// closes each connection once; Run returns with no error. After Run it
// does nothing.
func TestAbort(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before bool
	}{{"running", false}, {"before Run", true}} {
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			client, a := pair(t)
			b, server := pair(t)
			ca, cb := &countingConn{Conn: a}, &countingConn{Conn: b}
			r := New(halfCountingConn{ca}, halfCountingConn{cb}, Config{})
			if tc.before {
				r.Abort()
			}
			done := make(chan Result, 1)
			go func() { done <- r.Run() }()
			if !tc.before {
				// One byte each way proves the relay is running.
				client.Write([]byte("x"))
				server.Write([]byte("y"))
				io.ReadFull(server, make([]byte, 1))
				io.ReadFull(client, make([]byte, 1))
				r.Abort()
			}
			expectReset(t, "the client", client)
			expectReset(t, "the server", server)
			select {
			case res := <-done:
				if res.Err != nil {
					t.Errorf("Run after Abort: Err %v, want nil", res.Err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run still running after Abort")
			}
			r.Abort()
			if n, m := ca.closes.Load(), cb.closes.Load(); n != 1 || m != 1 {
				t.Errorf("a closed %d times and b %d, want once each", n, m)
			}
			client.Close()
			server.Close()
			waitGoroutines(t, base)
		})
	}
}

// A side that cannot be half-closed is closed alone when the other stops
// sending; the other direction then ends cleanly: the client gets EOF,
// not a reset, and Run reports no error. Each connection is closed once.
func TestNoCloseWrite(t *testing.T) {
	base := runtime.NumGoroutine()
	client, a := pair(t)
	b, server := pair(t)
	ca, cb := &countingConn{Conn: a}, &countingConn{Conn: b}
	done := make(chan Result, 1)
	go func() { done <- Stream(halfCountingConn{ca}, cb) }()

	var got []byte
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		got, _ = io.ReadAll(server) // until b is closed
	}()
	client.Write([]byte("bye"))
	client.CloseWrite()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if rest, err := io.ReadAll(client); err != nil || len(rest) != 0 {
		t.Errorf("client read %q, %v; want a clean EOF", rest, err)
	}
	wg.Wait()
	if string(got) != "bye" {
		t.Errorf("server got %q, want %q", got, "bye")
	}
	select {
	case res := <-done:
		if res.Err != nil || res.AToB != 3 {
			t.Errorf("Result %+v, want 3 bytes from a to b and no error", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("relay did not finish")
	}
	if n, m := ca.closes.Load(), cb.closes.Load(); n != 1 || m != 1 {
		t.Errorf("a closed %d times and b %d, want once each", n, m)
	}
	client.Close()
	server.Close()
	waitGoroutines(t, base)
}
