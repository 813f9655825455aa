package gateway

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/waiter"
)

// tcpConn is a netstack TCP connection that can also be reset on close:
// the proxy (published ports) and relay.Stream (egress) pass a reset or a
// failure on one side to the other that way.
type tcpConn struct {
	*gonet.TCPConn
	ep tcpip.Endpoint
}

// SetLinger is net.TCPConn's: with sec 0, Close resets the connection
// (RST) instead of ending it with a FIN; sec < 0 restores the default.
func (c *tcpConn) SetLinger(sec int) error {
	c.ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: sec >= 0, Timeout: time.Duration(sec) * time.Second})
	return nil
}

func newTCPConn(wq *waiter.Queue, ep tcpip.Endpoint) *tcpConn {
	return &tcpConn{TCPConn: gonet.NewTCPConn(wq, ep), ep: ep}
}
