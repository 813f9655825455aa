// Package netavark is Switchyard as a netavark plugin: podman 5's network
// plugin API (netavark's plugin-API.md). It is a translator, not a
// control plane: each command turns podman's JSON into calls on the
// daemon's API client (daemon/api) and the daemon's answer into
// netavark's JSON. It imports nothing of the daemon below daemon/api.
//
//	podman ─► netavark ─► switchyard-netavark CMD [NETNS]   (stdin: JSON, stdout: JSON)
//	                            │
//	   create    Network        ├─► Network / CreateNetwork   ─► Network (subnets, gateway filled)
//	   setup     NetworkPluginExec ─► Connect {NetNS, IfName, IP, MAC, Aliases,
//	                            │      Publish, ContainerID, Runtime, Name} ─► StatusBlock
//	   teardown  NetworkPluginExec ─► Endpoints + Disconnect (idempotent) ─► nothing
//	   info                     └─► {"version", "api_version"}
//
// A failure is {"error": "..."} on stdout and exit status 1, one message
// that names the offending input in netavark's own field names
// (network_options.static_ips, port_mappings[0].host_port, ...).
//
// A podman network maps onto the Switchyard network of the same name, or
// the one its "network" option names; its "socket" option names the
// daemon's API socket when it is not the default one.
package netavark
