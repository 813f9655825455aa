package vnettest_test

import (
	"context"
	"errors"
	"fmt"
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
