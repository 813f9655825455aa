// Package docker is Switchyard's Docker network driver and IPAM driver:
// an http.Handler speaking libnetwork's remote driver protocol
// (/Plugin.Activate, NetworkDriver.*, IpamDriver.*) that turns each of
// dockerd's calls into calls on the daemon's API client (package
// daemon/api, and nothing below it). It is a translator, not a second
// control plane: the daemon holds every network, endpoint, address and
// port; the plugin keeps only what lives between two of Docker's calls.
// `switchyardd --docker-plugin` serves it on DefaultSocket, in the daemon
// process, as a client of the daemon's own API socket.
//
//	docker network create -d switchyard --ipam-driver switchyard --subnet S [-o name=N] NET
//	  IpamDriver.RequestPool       validate S; the pool ID is S itself
//	  IpamDriver.RequestAddress    the gateway: S's first address (or --gateway)
//	  NetworkDriver.CreateNetwork  CreateNetwork N (default docker-ID12), label docker.network.id=ID
//	docker run --network NET -p H:C IMAGE
//	  IpamDriver.RequestAddress    lowest address the network's endpoints, gateway and
//	                               reservations do not hold, nor one handed out already
//	  NetworkDriver.CreateEndpoint remember address and MAC (02:42 + address if Docker has none)
//	  NetworkDriver.Join           Connect: a handoff TAP "sy"+EID12 in the daemon's namespace,
//	                               with the address and MAC, sandbox = SandboxKey; answer
//	                               SrcName = the TAP, DstPrefix "eth", Gateway
//	  ProgramExternalConnectivity  AddPort per com.docker.network.portmap binding (no docker-proxy)
//	docker rm -f / network disconnect
//	  RevokeExternalConnectivity   RemovePort every port of the endpoint
//	  Leave                        nothing: Docker moves the TAP back out after it
//	  DeleteEndpoint               Disconnect: address, ports and TAP freed
//	  IpamDriver.ReleaseAddress    forget the handed-out address
//	docker network rm NET
//	  NetworkDriver.DeleteNetwork  RemoveNetwork; IpamDriver.ReleasePool
//
// # Why the endpoint is connected at Join
//
// Libnetwork asks the IPAM driver for the address before the network
// driver hears of the endpoint, and the daemon reserves addresses only
// for endpoints it connects. The plugin could connect at CreateEndpoint,
// but only Join names the sandbox the TAP goes to, which the daemon
// stores to find the TAP again after a restart, and Docker creates
// endpoints it never joins (a failed start rolls back). So the plugin's
// IPAM hands out addresses the network does not hold and remembers them
// until Docker releases them (so two containers starting at once never
// get the same one), and Join connects with that address: from then on
// the daemon holds it, and RequestAddress skips it as any held address.
// A client connecting to the network by other means between the two
// calls could take it; Join then fails with the daemon's conflict,
// naming the address, and Docker rolls back.
//
// # State
//
// Everything Docker may ask about later is found through the daemon:
// networks by their docker.network.id label, endpoints by their name,
// which is derived from Docker's endpoint ID, their ports through the
// API. Pool IDs carry the pool. A restarted plugin loses only endpoints
// created and not yet joined (Join then fails, naming the endpoint) and
// the addresses handed out and not yet joined.
//
// # Errors
//
// A call the plugin cannot decode gets HTTP 400; one it does not know,
// 404 (Docker then knows the driver does not implement it); any other
// failure a 200 with the protocol's error field (Err, or Error for IPAM)
// holding one line that names the input, which Docker prints as
// "remote: switchyard: …".
package docker
