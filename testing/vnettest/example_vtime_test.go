package vnettest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// A dial with a 30-second deadline to a server behind a firewall that
// drops TCP silently, on virtual time: the SYNs are retransmitted for 30
// virtual seconds, and the example ends at once.
func Example_virtualTime() {
	t := &exampleT{} // in a test: the test's t
	defer t.done()

	w := vnettest.New(t, vnettest.VirtualTime(), vnettest.Seed(1))
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	server, client := lan.NewHost("server"), lan.NewHost("client")
	dropTCP := vnettest.StageFunc(func(_ *vnettest.StageContext, p vnettest.Packet, emit func(vnettest.Packet)) {
		if len(p.Data) > 23 && p.Data[12] == 0x08 && p.Data[13] == 0x00 && p.Data[23] == 6 { // IPv4, TCP
			return
		}
		emit(p)
	})
	if err := server.Wire().SetStages(vnettest.Down, dropTCP); err != nil {
		t.Fatalf("%v", err)
	}

	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := w.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = client.DialContext(ctx, "tcp", "server:80")
	}()
	isDone := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	_, took := w.AdvanceUntil(time.Minute, isDone)
	fmt.Println(took, errors.Is(err, context.DeadlineExceeded))
	fmt.Println(w.Now().Format(time.TimeOnly), "on the World's clock")
	// Output:
	// 30s true
	// 00:00:30 on the World's clock
}

// Deadlines on the conns and listeners hosts hand out follow the World's
// clock: code that sets them the usual way, from time.Now, times out
// after that much virtual time.
func Example_deadlines() {
	t := &exampleT{} // in a test: the test's t
	defer t.done()

	w := vnettest.New(t, vnettest.VirtualTime(), vnettest.Seed(1))
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	server, client := lan.NewHost("server"), lan.NewHost("client")
	l, err := server.Listen("tcp", ":80")
	if err != nil {
		t.Fatalf("%v", err)
	}
	defer l.Close()

	var readErr, acceptErr error
	var done atomic.Int32
	go func() { // a client that waits 30 s for a greeting that never comes
		defer done.Add(1)
		c, err := client.Dial("tcp", "server:80")
		if err != nil {
			readErr = err
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, readErr = c.Read(make([]byte, 1))
	}()
	go func() { // a server that takes one connection, then waits a minute for another
		defer done.Add(1)
		c, err := l.Accept()
		if err != nil {
			acceptErr = err
			return
		}
		defer c.Close()
		l.(*vnettest.Listener).SetDeadline(w.Now().Add(time.Minute))
		_, acceptErr = l.Accept()
	}()
	_, took := w.AdvanceUntil(time.Hour, func() bool { return done.Load() == 2 })
	var ne net.Error
	fmt.Println(errors.As(readErr, &ne) && ne.Timeout(), errors.Is(acceptErr, os.ErrDeadlineExceeded))
	fmt.Println(took, "of virtual time")
	// Output:
	// true true
	// 1m0s of virtual time
}
