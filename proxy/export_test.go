package proxy

import "net/netip"

// SocketBatch is how many sockets one namespace entry makes.
const SocketBatch = socketBatch

// FlowPush returns the push function of client's flow on any UDP binding
// of m, as its ReplyPusher connection calls it; nil if there is no such
// flow or it does not push.
func FlowPush(m *Manager, client netip.AddrPort) func([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for u := range m.udp {
		u.mu.Lock()
		f := u.flows[client]
		u.mu.Unlock()
		if f != nil && f.pushing {
			return f.pushed
		}
	}
	return nil
}
