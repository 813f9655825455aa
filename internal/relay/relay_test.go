package relay

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// pair returns the two ends of a loopback TCP connection.
func pair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines left, want %d:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// client ⇄ [a relay b] ⇄ server: the client half-closes after its request
// and still gets the server's whole reply, which the server sends only
// after seeing EOF.
func testHalfClose(t *testing.T, wrap func(net.Conn) net.Conn) {
	base := runtime.NumGoroutine()
	client, a := pair(t)
	b, server := pair(t)
	done := make(chan Result, 1)
	go func() { done <- Stream(wrap(a), wrap(b)) }()

	request := bytes.Repeat([]byte("q"), 1<<20)
	reply := bytes.Repeat([]byte("r"), 3<<20)
	go func() {
		got, _ := io.ReadAll(server) // until the client's half-close arrives
		if len(got) == len(request) {
			server.Write(reply)
		}
		server.Close()
	}()
	client.Write(request)
	client.CloseWrite()
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil || !bytes.Equal(got, reply) {
		t.Fatalf("client got %d bytes (err %v), want the %d-byte reply", len(got), err, len(reply))
	}
	client.Close()
	select {
	case r := <-done:
		if r.AToB != int64(len(request)) || r.BToA != int64(len(reply)) {
			t.Errorf("relay counted %d/%d bytes, want %d/%d", r.AToB, r.BToA, len(request), len(reply))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not finish")
	}
	waitGoroutines(t, base)
}

func TestHalfCloseSplice(t *testing.T) { testHalfClose(t, func(c net.Conn) net.Conn { return c }) }

// plainConn hides *net.TCPConn so the buffered path runs; it keeps
// CloseWrite and SetLinger, as the gateway's netstack connections have
// them.
type plainConn struct{ *net.TCPConn }

func TestHalfCloseBuffered(t *testing.T) {
	testHalfClose(t, func(c net.Conn) net.Conn { return plainConn{c.(*net.TCPConn)} })
}

// copyPaths are the relay's two copy paths: raw kernel TCP conns, which
// splice, and conns that hide *net.TCPConn, which copy through buffers.
var copyPaths = []struct {
	name string
	wrap func(net.Conn) net.Conn
}{
	{"splice", func(c net.Conn) net.Conn { return c }},
	{"buffered", func(c net.Conn) net.Conn { return plainConn{c.(*net.TCPConn)} }},
}

// A reset on one side ends the relay and resets the other side, on both
// copy paths.
func TestAbortResetsBoth(t *testing.T) {
	for _, tc := range copyPaths {
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			client, a := pair(t)
			b, server := pair(t)
			done := make(chan Result, 1)
			go func() { done <- Stream(tc.wrap(a), tc.wrap(b)) }()
			server.SetLinger(0)
			server.Close() // RST towards b
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadAll(client); !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("client read %v after the server side was reset, want ECONNRESET", err)
			}
			select {
			case r := <-done:
				if !errors.Is(r.Err, syscall.ECONNRESET) {
					t.Errorf("Result.Err %v, want the server side's ECONNRESET", r.Err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("relay still running after one side was reset")
			}
			client.Close()
			waitGoroutines(t, base)
		})
	}
}
