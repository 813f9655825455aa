package gateway

import "gvisor.dev/gvisor/pkg/tcpip"

// PingEgress reports whether echo requests to outside addresses may leave
// through a host ICMP socket.
func (g *Gateway) PingEgress() bool { return g.echo != nil }

// ReadPushed reads one datagram (or error) of c, a connection from
// Dialer.DialUDP, and hands it to push, as a notification would; it
// reports false if there was none. buf must hold the datagram.
func ReadPushed(c any, buf []byte, push func([]byte, error)) bool {
	uc := c.(*udpConn)
	uc.push = push
	return uc.readOne(buf)
}

// QueuedBytes reports how many bytes of datagrams wait on c's endpoint,
// c a connection from Dialer.DialUDP.
func QueuedBytes(c any) int {
	n, _ := c.(*udpConn).ep.GetSockOptInt(tcpip.ReceiveQueueSizeOption)
	return n
}

// PushListening reports whether c, a connection from Dialer.DialUDP, has
// a listener on its endpoint's waiter queue.
func PushListening(c any) bool { return c.(*udpConn).wq.Events() != 0 }
