package stackgrow

import (
	"runtime"
	"runtime/debug"
	"testing"
	"unsafe"
)

// deep needs most of Frame on the stack.
//
//go:noinline
func deep() byte {
	var b [Frame - 1<<10]byte
	b[len(b)-1] = sink
	return b[int(sink)]
}

// moved reports whether a goroutine's stack was copied while it ran deep:
// a copied stack moves its locals. grow says whether it calls Grow first.
func moved(grow bool) bool {
	done := make(chan bool)
	go func() {
		if grow {
			Grow()
		}
		var local byte
		before := uintptr(unsafe.Pointer(&local))
		sink += deep()
		done <- uintptr(unsafe.Pointer(&local)) != before
	}()
	return <-done
}

func TestGrowSavesTheCopyOfADeepCall(t *testing.T) {
	// No collection while it runs: a collection may shrink a stack, and
	// the next growth would copy it again.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	runtime.GC()
	if !moved(false) {
		t.Fatal("control: a new goroutine ran deep without its stack being copied; Frame no longer needs a larger stack than a goroutine starts with")
	}
	if moved(true) {
		t.Fatal("after Grow, a deep call still copied the goroutine's stack")
	}
}
