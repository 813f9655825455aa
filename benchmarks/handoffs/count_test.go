package handoffs_test

import (
	"testing"

	"github.com/switchyard-net/switchyard/benchmarks/handoffs"
)

// pingPong wakes a goroutine n times through a channel and waits for each
// answer, so Count must see n wake-ups of the echo goroutine.
func pingPong(n int) error {
	in, out := make(chan int), make(chan int)
	go echoer(in, out)
	for i := range n {
		in <- i
		<-out
	}
	close(in)
	return nil
}

func echoer(in <-chan int, out chan<- int) {
	for v := range in {
		out <- v
	}
}

func TestCountSeesChannelWakeups(t *testing.T) {
	const n = 1000
	res, err := handoffs.Count(func() error { return pingPong(n) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", res.Table(n))
	// The echoer is woken once per value (and once more by the close);
	// with two Ps a wake-up may find it not yet parked, so allow a few
	// fewer, never more than one extra.
	got := res.Wakeups["benchmarks/handoffs_test.echoer"]
	if got < n*9/10 || got > n+1 {
		t.Errorf("echoer woken %d times for %d values, want about %d", got, n, n)
	}
}
