// Package proxy publishes container ports on the host: Docker's -p, done
// by one Manager in the daemon instead of one docker-proxy process per
// port. It parses the -p and --expose forms (ParsePublish, ParseExpose),
// binds the host listeners, and relays each TCP connection and UDP flow to
// the container through a Dialer.
//
// # Flow
//
//	              Manager.Publish(owner, mapping, target, dialer)
//	                           │ binds 0.0.0.0:P and [::]:P (or HostIP:P)
//	                           ▼
//	TCP client ──► listener ── acceptLoop ── per connection:
//	                              over the port's or the Manager's limit ──► reset, counted
//	                              Dialer.DialTCP(src = client, dst = target:port)
//	                              failed ──► client reset (RST), counted
//	                              ok ──► internal/relay, a = client, b = container:
//	                                     copyAToB ─► (serve's goroutine)
//	                                     copyBToA ◄─ (the relay's goroutine)
//	                                     splice between *net.TCPConn pairs,
//	                                     pooled buffers otherwise
//
//	UDP client ──► socket ── readLoop ── flow table (client addr → flow)
//	                              new client: over the Manager's limit ──► dropped;
//	                              else Dialer.DialUDP(src, dst), one
//	                              relayReplies goroutine per flow, or none if
//	                              the conn pushes its replies (ReplyPusher: the
//	                              gateway's); replies leave from the address
//	                              the client sent to
//	              one janitor per Manager closes idle flows; a full table
//	              evicts its least recently active flow
//
// Two Dialers come with Switchyard: the gateway's (package gateway), which
// opens connections inside the virtual network and can show the container
// the client's real address, and NetnsDialer, which makes kernel sockets
// in the container's network namespace so that TCP relays splice. Package
// proxytest has doubles that dial the loopback.
//
// # Relay rules
//
// A connection is dialed before anything is relayed; if the dial fails,
// the client is reset. Half-close is passed on both ways: when one side
// shuts down its write side, the other gets EOF and can still send. A
// reset or error on one side resets the other. Both sockets are closed
// exactly once. (The relay itself is internal/relay's, the same that
// carries the gateway's egress flows.) Unpublishing a port closes its listeners and resets its
// live connections, and Unpublish returns when all their goroutines are
// gone. There is no idle timeout on TCP (keep-alives, on by default for
// accepted connections, find dead clients); UDP flows expire after
// Config.UDPTimeout without a datagram either way.
//
// # Limits
//
// Connections and flows hold file descriptors, and a daemon out of them
// cannot answer its API. Each published port has a connection limit and
// the Manager one over all ports (Config.MaxConnsPerPort, MaxConns), by
// default derived from the open-file limit so that a reserve is left to
// the rest of the daemon (DefaultConnLimits). Connections over a limit
// are reset at once and counted; failed accepts (EMFILE) are counted and
// retried after a pause; both are logged at warn level at most once per
// listener per Config.WarnInterval. limits.go has the details.
//
// # Goroutines and locks
//
// Per TCP listener one accept goroutine, per connection two; per UDP
// socket one reader, per flow one (none if its conn is a ReplyPusher); one janitor per Manager, started with
// its first UDP binding. Nothing runs per packet. Manager.mu guards the
// tables of bindings and ports and is held while binding sockets; a
// binding's own mutex guards its connection set or flow table and is taken
// after Manager.mu when both are held. The data path takes only a
// binding's mutex, for a map lookup per UDP datagram.
package proxy
