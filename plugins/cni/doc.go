// Package cni is Switchyard's CNI plugin: it turns a container runtime's
// CNI calls (podman, containerd, cnitool, a Kubernetes kubelet through
// its runtime) into calls on the daemon's API client, and the daemon's
// answers into CNI results and CNI error JSON. It holds no state of its
// own and imports only daemon/api: the daemon keeps the endpoint, with the
// runtime's container ID and interface name on it, so every command can
// find what an earlier one made.
//
//	runtime ──env CNI_* + config on stdin──► switchyard (CNI_COMMAND set)
//	          ◄──result or error JSON on stdout, exit code──┘   │
//	                                                          api.Client
//	                                                            ▼
//	                                                   switchyardd's socket
//
// The commands (CNI spec 1.1.0; 0.3.x, 0.4.0 and 1.0.0 results are
// converted by the upstream library):
//
//   - ADD ensures the network (creating it from `subnet` when absent) and
//     connects CNI_NETNS with a TAP named CNI_IFNAME, the address from
//     runtimeConfig.ips or CNI_ARGS IP=, the MAC from runtimeConfig.mac or
//     MAC=, and runtimeConfig.portMappings published by the daemon's own
//     port path (the container sees the client's address). The endpoint
//     is named after K8S_POD_NAME when that is a DNS label (podman passes
//     the container name there, so names resolve in the network's DNS),
//     else after the container ID and interface.
//   - DEL finds the endpoint by container ID and interface and
//     disconnects it. An unknown container, a missing network or netns,
//     and an endpoint the daemon already dropped all succeed. A daemon
//     that cannot be reached fails with code 11 (try again later): the
//     daemon, not the plugin, holds the address and the host ports, so a
//     DEL that succeeded without it would leak them until a GC; runtimes
//     retry a failed DEL.
//   - CHECK compares prevResult with the daemon's endpoint (interface,
//     MAC, address, gateway, default route) and with the interface as
//     netlink reads it in CNI_NETNS (MAC, addresses, routes).
//   - STATUS fails with code 50 when the daemon cannot be reached, or when
//     the network is absent and the config has no subnet to create it.
//   - GC disconnects this network's CNI endpoints (runtime "cni") that are
//     not in cni.dev/valid-attachments. One Switchyard network should
//     therefore back one CNI network only.
//
// Errors use the spec's codes: 4 for bad CNI_ARGS, 7 for a bad config or
// a request the daemon finds invalid, 8 for a bad netns, 11 when the
// daemon is unreachable, 50 from STATUS, and the plugin's own 100 when
// an address, a host port or a name is already in use.
package cni
