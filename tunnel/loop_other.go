//go:build !linux

package tunnel

import (
	"errors"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// loopReader exists on Linux only: the loop needs epoll.
type loopReader struct{}

func (p *Port) startLoop(vswitch.Ingress) error {
	return errors.New("Config.Loop needs Linux: leave it nil for a reader goroutine of the port's own")
}

func (*loopReader) stop() {}
