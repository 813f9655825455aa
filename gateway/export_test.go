package gateway

// PingEgress reports whether echo requests to outside addresses may leave
// through a host ICMP socket.
func (g *Gateway) PingEgress() bool { return g.echo != nil }
