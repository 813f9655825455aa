// Package api is the daemon's HTTP/JSON interface on its unix socket: the
// request and response types, the error kinds, and a client. The server
// (package daemon) and every CLI command use these types and nothing else,
// so they cannot drift apart.
//
//	GET    /v1/version
//	GET    /v1/networks                          []Network
//	POST   /v1/networks                          NetworkCreate → Network
//	GET    /v1/networks/{name}                   Network
//	DELETE /v1/networks/{name}
//	POST   /v1/networks/{name}/endpoints         EndpointCreate → Endpoint
//	DELETE /v1/networks/{name}/endpoints/{ep}
//	GET    /v1/endpoints[?network=NAME]          []Endpoint
//	POST   /v1/networks/{name}/endpoints/{ep}/ports    PortRequest → []PortBinding
//	DELETE /v1/networks/{name}/endpoints/{ep}/ports?spec=SPEC
//	GET    /v1/ports[?endpoint=NET/EP]           []PortBinding
//	GET    /v1/networks/{name}/nat               NATTable
//	GET    /v1/conntrack[?network=NAME]          []ConntrackEntry
//	GET    /v1/networks/{name}/endpoints/{ep}/capture[?count=N]   a pcap stream
//	GET    /v1/networks/{name}/tunnel            Tunnel
//	POST   /v1/networks/{name}/tunnel/peers      PeerRequest → Tunnel
//	DELETE /v1/networks/{name}/tunnel/peers?addr=IP[:PORT]
//	POST   /v1/networks/{name}/tunnel/key        KeyRotation → Tunnel
//	GET    /v1/stats                             Stats
//
// Errors come back as an Error body with an HTTP status that matches its
// kind; the client turns them into errors that wrap ErrInvalid,
// ErrNotFound or ErrConflict. An invalid request (400) lists every
// offending field by its JSON name, in the order of the request type's
// fields (Error.Fields, a *ValidationError on the client), so each client
// can say it in its own words: the CLI names its flags.
package api

import (
	"net/netip"
	"time"
)

// Version is the answer to GET /v1/version.
type Version struct {
	Version string `json:"version"`
	PID     int    `json:"pid"`
	Socket  string `json:"socket"`
	State   string `json:"state_dir"`
}

// NetworkCreate asks for a new network. Addresses are strings so that the
// daemon, which validates everything, can name the offending input.
type NetworkCreate struct {
	Name string `json:"name"`
	// Subnet in CIDR form; empty picks the next free private range the
	// way Docker does (172.17.0.0/16 … 172.31.0.0/16, then 192.168.x.0/20).
	Subnet string `json:"subnet,omitempty"`
	// Gateway; empty means the first usable address of Subnet.
	Gateway string `json:"gateway,omitempty"`
	// IPRange restricts dynamic allocation to a sub-range of Subnet.
	IPRange string `json:"ip_range,omitempty"`
	// AuxAddresses are "name=IP" reservations.
	AuxAddresses []string `json:"aux_addresses,omitempty"`
	// MTU; 0 means 1500.
	MTU int `json:"mtu,omitempty"`
	// ICC allows endpoint-to-endpoint traffic; nil means true.
	ICC *bool `json:"icc,omitempty"`
	// Internal networks have no default route, no egress and no
	// published ports.
	Internal bool `json:"internal,omitempty"`
	// HostLoopback makes the host's 127.0.0.1 reachable from the
	// network's endpoints at HostLoopbackAddr (default 169.254.1.2).
	HostLoopback     bool   `json:"host_loopback,omitempty"`
	HostLoopbackAddr string `json:"host_loopback_addr,omitempty"`

	// HostInterface names a TAP the daemon makes in its own network
	// namespace, on the network's switch, with HostInterfaceAddr (empty:
	// the subnet's last usable address, reserved like an aux address):
	// the host reaches every endpoint by its address, and the host
	// kernel routes the subnet. A root daemon only.
	HostInterface     string `json:"host_interface,omitempty"`
	HostInterfaceAddr string `json:"host_interface_addr,omitempty"`
	// Routes are other hosts' container subnets (CIDR) that the gateway
	// forwards to the host interface unmodified (source kept, TTL
	// decremented), for the host kernel to route on: direct routing,
	// without a tunnel. They need HostInterface; an internal network
	// has none.
	Routes []string `json:"routes,omitempty"`
	// Routing "direct" with Cluster routes between the hosts without a
	// tunnel, as flannel's host-gw: the network's subnet on this host is
	// its lease of Subnet (the cluster's whole range), and the other
	// hosts' leases are its routes, in the gateway and in the host
	// kernel (a route to each lease via its host's PublicAddr), kept as
	// leases come and go. It needs HostInterface, no Tunnel, and a root
	// daemon whose host forwards.
	Routing string `json:"routing,omitempty"`
	// PublicAddr is this host's address that the other hosts route its
	// lease to (Routing "direct"): an address of the network the hosts
	// share.
	PublicAddr string `json:"public_addr,omitempty"`

	// Tunnel joins this network's switch to the same network on other
	// hosts: "vxlan" (RFC 7348, interoperable with Linux vxlan devices)
	// or "secure" (sealed with ChaCha20-Poly1305; Switchyard only).
	Tunnel string `json:"tunnel,omitempty"`
	// VNI is the VXLAN network identifier (0-16777215); nil means 1.
	VNI *int `json:"vni,omitempty"`
	// TunnelListen is the local UDP address, IP:PORT ([IPv6]:PORT, and
	// [fe80::…%IFACE]:PORT for a link-local one); empty means every
	// address on port 4789 (vxlan) or 4793 (secure): every IPv4 address,
	// or with an IPv6 peer every address of both families ([::]). An
	// IPv4 address takes IPv4 peers only, an IPv6 one IPv6 peers only.
	TunnelListen string `json:"tunnel_listen,omitempty"`
	// Peers are the other hosts' tunnel addresses, IP[:PORT] or
	// [IPv6][:PORT].
	Peers []string `json:"peers,omitempty"`
	// KeyFile holds the shared key of a secure tunnel.
	KeyFile string `json:"key_file,omitempty"`
	// Cluster is etcd://HOST:PORT[,HOST:PORT...] (etcds:// for TLS):
	// each host leases a SubnetLen-sized part of the subnet for its
	// endpoints and finds its peers there; requests fail over between
	// the endpoints.
	Cluster   string `json:"cluster,omitempty"`
	SubnetLen int    `json:"subnet_len,omitempty"`
	// SubnetLen6 is the prefix length of each host's IPv6 lease in a
	// dual-stack cluster network; 0 cuts the IPv6 subnet into as many
	// leases as the IPv4 one (a /64 beside a /16 cut into /24s: /72s).
	SubnetLen6 int `json:"subnet_len6,omitempty"`
	// EtcdCACert, EtcdCert and EtcdKey are PEM files, on the daemon's
	// host, for an etcds:// cluster: the CAs that sign etcd's
	// certificate (empty: the system's), and a client certificate and
	// its key for etcd's --client-cert-auth.
	EtcdCACert string `json:"etcd_cacert,omitempty"`
	EtcdCert   string `json:"etcd_cert,omitempty"`
	EtcdKey    string `json:"etcd_key,omitempty"`
	// EtcdUser and EtcdPasswordFile log in to etcd's auth; the file
	// holds the password (its first line), so that the password is
	// never in a request, a command line or the daemon's state.
	EtcdUser         string `json:"etcd_user,omitempty"`
	EtcdPasswordFile string `json:"etcd_password_file,omitempty"`
	// LeaseTTL is how long, in seconds, a host's lease outlives its last
	// renewal (a host that stops disappears from the others after it);
	// 0 means 24 hours, flannel's default.
	LeaseTTL int `json:"lease_ttl,omitempty"`
	// UnderlayMTU is the MTU of the path between hosts; 0 means 1500.
	// The network's MTU defaults to it minus the encapsulation.
	UnderlayMTU int `json:"underlay_mtu,omitempty"`

	// Labels are stored with the network and shown with it: how a
	// runtime plugin finds the network it made for one of its own (the
	// Docker driver's "docker.network.id"). Keys are 1-128 letters,
	// digits, '.', '_', '-' or '/'; values at most 256 characters; at
	// most 16 labels.
	Labels map[string]string `json:"labels,omitempty"`

	// Dual stack. Subnets, Gateways and IPRanges give at most one
	// subnet, gateway and range per address family (as Docker's IPAM
	// config list does); Subnet, Gateway and IPRange, which older
	// clients send, count as one more entry of these lists. A family
	// named twice is refused. Each gateway and range belongs to the
	// subnet of its family.
	Subnets  []string `json:"subnets,omitempty"`
	Gateways []string `json:"gateways,omitempty"`
	IPRanges []string `json:"ip_ranges,omitempty"`
	// IPv6 gives the network an IPv6 subnet: a /64 from the daemon's
	// ULA pool (Config.IPv6Pool) when Subnets names none.
	IPv6 bool `json:"ipv6,omitempty"`
	// IPv4 false makes an IPv6-only network (IPv6 is then implied). nil
	// means IPv4 unless the request names only IPv6 subnets, which makes
	// an IPv6-only network as before dual stack.
	IPv4 *bool `json:"ipv4,omitempty"`
	// SLAAC false advertises the IPv6 prefix on-link only, without the
	// autonomous flag: endpoints form no address of their own from it
	// (stateless autoconfiguration, RFC 4862) and keep only the ones the
	// daemon assigns, as on Docker's own bridge. nil means true. It
	// needs IPv6. The Docker plugin's networks have it false.
	SLAAC *bool `json:"slaac,omitempty"`
}

// TunnelInfo summarises a network's tunnel in its view.
type TunnelInfo struct {
	Mode   string         `json:"mode"`
	VNI    uint32         `json:"vni"`
	Listen netip.AddrPort `json:"listen"`
	// MTU is the largest inner packet the tunnel carries.
	MTU       int `json:"mtu"`
	PeerCount int `json:"peer_count"`
	// Cluster: the etcd endpoints and this host's subnet lease.
	Cluster    []string     `json:"cluster,omitempty"`
	HostSubnet netip.Prefix `json:"host_subnet,omitzero"`
	// HostSubnet6 is this host's IPv6 lease in a dual-stack cluster
	// network.
	HostSubnet6 netip.Prefix `json:"host_subnet6,omitzero"`
}

// Tunnel is a network's tunnel in detail (switchyard tunnel ls).
type Tunnel struct {
	Network string `json:"network"`
	TunnelInfo
	// StaticPeers were given with --peer or tunnel peer add.
	StaticPeers []netip.AddrPort `json:"static_peers"`
	Peers       []TunnelPeer     `json:"peers"`
	MACs        []TunnelMAC      `json:"macs"`
	// Hosts are the cluster's leases, this host's included.
	Hosts     []TunnelHost      `json:"hosts,omitempty"`
	HostID    string            `json:"host_id,omitempty"`
	Joined    bool              `json:"joined,omitempty"`
	Stats     TunnelStats       `json:"stats"`
	DropsBy   map[string]uint64 `json:"drops_by,omitempty"`
	SenderID  uint32            `json:"sender_id,omitempty"`
	Encrypted bool              `json:"encrypted"`
	// Keys, for a sealed tunnel.
	Keys *TunnelKeys `json:"keys,omitempty"`
}

// TunnelKeys are a sealed tunnel's keys on this host, named by their key
// IDs (derived from the keys: the same on every host).
type TunnelKeys struct {
	// SendID is the key this host seals under.
	SendID uint16 `json:"send_id"`
	// Accepted are the keys it accepts.
	Accepted []TunnelKey `json:"accepted"`
	// Rotation is the key rotation under way, if any.
	Rotation *TunnelRotation `json:"rotation,omitempty"`
}

// TunnelKey is a key a sealed tunnel accepts.
type TunnelKey struct {
	ID uint16 `json:"id"`
	// RXDatagrams counts what was received under the key: while the
	// old key's count grows, some peer still seals under it.
	RXDatagrams uint64 `json:"rx_datagrams"`
}

// TunnelRotation is a key rotation under way on this host.
type TunnelRotation struct {
	// KeyID is the new key's.
	KeyID uint16 `json:"key_id"`
	// Start is when this host began accepting the new key, SendAt when it
	// seals under it, DropAt when it stops accepting the others.
	Start  time.Time `json:"start"`
	SendAt time.Time `json:"send_at"`
	DropAt time.Time `json:"drop_at"`
}

// KeyRotation asks a sealed tunnel to replace its key. Every host of the
// network must be asked within Window of the first one: each accepts the
// new key at once, seals under it after Window and drops the old key
// after twice Window, so no frame is lost.
type KeyRotation struct {
	// KeyFile is the daemon's path to the new key, in the form of
	// network create's key_file.
	KeyFile string `json:"key_file"`
	// Window is a Go duration, like "60s"; empty means 60 s. "0s"
	// replaces every key at once (for a stolen key): frames other hosts
	// still seal under the old key are lost until they rotate too.
	Window string `json:"window,omitempty"`
}

// TunnelPeer is one remote host of a tunnel.
type TunnelPeer struct {
	Addr     netip.AddrPort `json:"addr"`
	Static   bool           `json:"static"`
	RXFrames uint64         `json:"rx_frames"`
	RXBytes  uint64         `json:"rx_bytes"`
	TXFrames uint64         `json:"tx_frames"`
	TXBytes  uint64         `json:"tx_bytes"`
	MACs     int            `json:"macs"`
	LastSeen time.Time      `json:"last_seen,omitzero"`
}

// TunnelMAC is a MAC learned behind a peer.
type TunnelMAC struct {
	MAC      string         `json:"mac"`
	Peer     netip.AddrPort `json:"peer"`
	LastSeen time.Time      `json:"last_seen"`
}

// TunnelHost is one host's lease in a cluster.
type TunnelHost struct {
	HostID     string         `json:"host_id"`
	Subnet     netip.Prefix   `json:"subnet"`
	Subnet6    netip.Prefix   `json:"subnet6,omitzero"` // dual stack
	PublicAddr netip.AddrPort `json:"public_addr"`
	Self       bool           `json:"self,omitempty"`
}

// TunnelStats are a tunnel's totals.
type TunnelStats struct {
	RXDatagrams uint64 `json:"rx_datagrams"`
	RXFrames    uint64 `json:"rx_frames"`
	RXBytes     uint64 `json:"rx_bytes"`
	TXDatagrams uint64 `json:"tx_datagrams"`
	TXFrames    uint64 `json:"tx_frames"`
	TXBytes     uint64 `json:"tx_bytes"`
	Drops       uint64 `json:"drops"`
}

// PeerRequest names a tunnel peer to add or remove.
type PeerRequest struct {
	Addr string `json:"addr"`
}

// Network is a network as the daemon reports it.
type Network struct {
	Name         string                `json:"name"`
	Subnet       netip.Prefix          `json:"subnet"`
	Gateway      netip.Addr            `json:"gateway"`
	GatewayMAC   string                `json:"gateway_mac"`
	IPRange      netip.Prefix          `json:"ip_range"`
	AuxAddresses map[string]netip.Addr `json:"aux_addresses,omitempty"`
	MTU          int                   `json:"mtu"`
	ICC          bool                  `json:"icc"`
	Internal     bool                  `json:"internal"`
	// HostLoopback is the address that leads to the host's loopback, if
	// enabled.
	HostLoopback netip.Addr `json:"host_loopback,omitzero"`
	// HostInterface is the network's interface in the daemon's host
	// namespace, if it has one, and Routes the remote subnets its
	// gateway routes there.
	HostInterface *HostInterface `json:"host_interface,omitempty"`
	Routes        []netip.Prefix `json:"routes,omitempty"`
	// DirectCluster, for a network with routing "direct": the range the hosts'
	// leases are cut from (Subnet is this host's lease), the etcd
	// endpoints and this host's public address.
	DirectCluster *DirectCluster `json:"direct_cluster,omitempty"`
	// Routing counts what the gateway routed (with Routes).
	Routing *RouteStats `json:"routing,omitempty"`
	// ReturnPath counts the replies the gateway sent back through the
	// host interface to senders outside Routes (with a HostInterface,
	// on a network that is not internal).
	ReturnPath *ReturnPathStats `json:"return_path,omitempty"`
	Default    bool             `json:"default"`
	Created    time.Time        `json:"created"`
	Endpoints  int              `json:"endpoints"`
	// FDBEntries is the number of MACs the network's switch has learned.
	FDBEntries int `json:"fdb_entries"`
	// Gateway port counters.
	GatewayStats PortStats `json:"gateway_stats"`
	// Egress flows through the gateway.
	Egress EgressStats `json:"egress"`
	// DNS is the network's DNS server, at the gateway address.
	DNS *DNSStats `json:"dns,omitempty"`
	// DHCPLeases are the leases of the gateway's DHCP and DHCPv6
	// servers.
	DHCPLeases []DHCPLease `json:"dhcp_leases,omitempty"`
	// Tunnel, if the network spans hosts.
	Tunnel *TunnelInfo `json:"tunnel,omitempty"`
	// Labels are NetworkCreate's.
	Labels map[string]string `json:"labels,omitempty"`
	// Subnets are every subnet of the network, the IPv4 one first.
	// Subnet, Gateway and IPRange above are the first family's.
	Subnets []netip.Prefix `json:"subnets"`
	// Subnet6, Gateway6 and IPRange6 are the IPv6 side of the network
	// (of an IPv6-only network too), zero if it has none.
	Subnet6  netip.Prefix `json:"subnet6,omitzero"`
	Gateway6 netip.Addr   `json:"gateway6,omitzero"`
	IPRange6 netip.Prefix `json:"ip_range6,omitzero"`
	// SLAAC says whether the gateway advertises the IPv6 prefix for
	// stateless autoconfiguration: a /64, and NetworkCreate.SLAAC not
	// false. False without IPv6.
	SLAAC bool `json:"slaac"`
	// Warnings say what of the network works otherwise than one might
	// expect (as Docker's network create answers a Warning).
	Warnings []string `json:"warnings,omitempty"`
}

// HostInterface is a network's interface in the host namespace.
type HostInterface struct {
	Name string     `json:"name"`
	Addr netip.Addr `json:"addr"`
	MAC  string     `json:"mac"`
	// Port is the switch port's counters.
	Port PortStats `json:"port"`
}

// RouteStats count a network's directly routed packets.
type RouteStats struct {
	// Forwarded to the host interface, for a routed subnet.
	Forwarded uint64 `json:"forwarded"`
	// TTLExceeded: dropped with ICMP time exceeded.
	TTLExceeded uint64 `json:"ttl_exceeded"`
	// Looped: for a routed subnet, but from the host interface itself.
	Looped uint64 `json:"looped"`
}

// ReturnPathStats count the return path of a network with a host
// interface: the senders outside the routed subnets that came in through
// it, to whom the endpoints' replies go back the same way.
type ReturnPathStats struct {
	// Senders is how many addresses are remembered now.
	Senders int `json:"senders"`
	// Learned counts addresses remembered; Evicted, those dropped from a
	// full table; Expired, those dropped after the idle time.
	Learned uint64 `json:"learned"`
	Evicted uint64 `json:"evicted"`
	Expired uint64 `json:"expired"`
	// Forwarded counts packets sent back to the host interface.
	Forwarded uint64 `json:"forwarded"`
}

// DNSStats describe a network's DNS server.
type DNSStats struct {
	Addr netip.Addr `json:"addr"`
	// Upstreams are the host's resolvers it forwards to (none on an
	// internal network).
	Upstreams        []netip.AddrPort `json:"upstreams"`
	Names            int              `json:"names"`
	Queries          uint64           `json:"queries"`
	Local            uint64           `json:"local"`
	Forwarded        uint64           `json:"forwarded"`
	UpstreamFailures uint64           `json:"upstream_failures"`
	ServFail         uint64           `json:"servfail"`
	Overflow         uint64           `json:"overflow"`
	Malformed        uint64           `json:"malformed"`
}

// DHCPLease is one entry of a DHCP server's lease table.
type DHCPLease struct {
	MAC      string     `json:"mac"`
	Addr     netip.Addr `json:"addr"`
	Hostname string     `json:"hostname,omitempty"`
	// DUID is a DHCPv6 client's identifier, in hex (IPv6 leases only).
	DUID   string    `json:"duid,omitempty"`
	Expiry time.Time `json:"expiry"`
	// State is "offered", "bound" or "declined" (DHCPv6 leases are
	// always "bound": the server makes no offers it must remember).
	State string `json:"state"`
}

// EgressStats count the flows endpoints opened to the outside.
type EgressStats struct {
	TCPActive   int64 `json:"tcp_active"`
	TCPTotal    int64 `json:"tcp_total"`
	TCPRefused  int64 `json:"tcp_refused"`
	TCPFailed   int64 `json:"tcp_failed"`
	UDPActive   int64 `json:"udp_active"`
	UDPTotal    int64 `json:"udp_total"`
	UDPRefused  int64 `json:"udp_refused"`
	ICMPEchoes  int64 `json:"icmp_echoes"`
	ICMPReplies int64 `json:"icmp_replies"`
	// ICMPDropped pings to the outside got no answer from the gateway
	// (not allowed to leave, or the host could not send them);
	// ICMPErrors are routers' errors about pings passed on.
	ICMPDropped int64 `json:"icmp_dropped"`
	ICMPErrors  int64 `json:"icmp_errors"`
	// Unreachables the gateway sent about egress, and those its rate
	// limit held back.
	Unreachables        int64 `json:"unreachables"`
	UnreachablesLimited int64 `json:"unreachables_limited"`
	OverLimit           int64 `json:"over_limit"`
}

// EndpointCreate connects a network namespace to a network. Exactly one of
// NetNS, PID and TapOnly is set.
type EndpointCreate struct {
	// TapOnly makes a TAP of this name in the daemon's own namespace for a
	// virtual machine (QEMU -netdev tap,ifname=NAME) instead of connecting
	// a namespace; the VM gets its address by DHCP.
	TapOnly string `json:"tap_only,omitempty"`
	// TapOwner may open the TapOnly device (its uid); -1 or unset: only
	// privileged users.
	TapOwner *int `json:"tap_owner,omitempty"`
	// DHCP leaves the namespace's interface without an address of
	// either family: its DHCP client gets the IPv4 one IPAM reserved for
	// its MAC, and on a network with IPv6 the kernel forms a SLAAC
	// address and a DHCPv6 client gets the IPv6 one IPAM reserved.
	DHCP bool `json:"dhcp,omitempty"`
	// NetNS is the path of the namespace (/var/run/netns/NAME).
	NetNS string `json:"netns,omitempty"`
	// PID selects the namespace of a process (/proc/PID/ns/net).
	PID int `json:"pid,omitempty"`
	// Name of the endpoint; empty derives one from the namespace.
	Name string `json:"name,omitempty"`
	// IP to use; empty allocates the lowest free address.
	IP string `json:"ip,omitempty"`
	// MAC to use; empty means 02:42 followed by the IPv4 address.
	MAC string `json:"mac,omitempty"`
	// IfName inside the namespace; empty means the first free ethN.
	IfName string `json:"ifname,omitempty"`
	// Publish holds Docker -p specs, each optionally followed by
	// ",path=netstack|splice" and ",source=client|gateway".
	Publish []string `json:"publish,omitempty"`
	// Expose lists ports (--expose 9000, 9000-9010/udp) that PublishAll
	// (-P) publishes on ephemeral host ports.
	Expose     []string `json:"expose,omitempty"`
	PublishAll bool     `json:"publish_all,omitempty"`
	// Aliases are more names the endpoint's address answers to in the
	// network's DNS (docker network connect --alias).
	Aliases []string `json:"aliases,omitempty"`
	// WriteResolvConf makes the namespace's resolv.conf point at the
	// network's DNS server: /etc/netns/NAME/resolv.conf for
	// /var/run/netns/NAME (what `ip netns exec` mounts), the process's
	// /etc/resolv.conf for a PID.
	WriteResolvConf bool `json:"write_resolv_conf,omitempty"`
	// AllowedAddresses are more source addresses or prefixes ("10.1.0.0/24",
	// "fd00::5") the endpoint may send from: port security drops frames
	// from any other source (routers, VMs with several addresses).
	AllowedAddresses []string `json:"allowed_addresses,omitempty"`
	// MACSpoofing lets the endpoint send from other MACs than its own
	// (a VM with guests of its own); each is learned, up to a small limit.
	MACSpoofing bool `json:"mac_spoofing,omitempty"`

	// ContainerID and Runtime are the identity a container runtime gives
	// the endpoint ("cni", "docker", "netavark"): stored with it, shown by
	// endpoint ls, and how a runtime plugin finds it again for DEL, Leave
	// or GC.
	ContainerID string `json:"container_id,omitempty"`
	Runtime     string `json:"runtime,omitempty"`
	// Handoff, with TapOnly, makes a bare TAP in the daemon's namespace
	// that the runtime moves into its sandbox and configures itself
	// (Docker's Join): the daemon sets its MAC and MTU, the address is
	// static (IP, or the next free one), not DHCP. Sandbox is the path of
	// the namespace it will be moved to, if known.
	Handoff bool   `json:"handoff,omitempty"`
	Sandbox string `json:"sandbox,omitempty"`
	// IP6 is the endpoint's IPv6 address on a dual-stack network; empty
	// allocates the lowest free one (docker network connect --ip6).
	IP6 string `json:"ip6,omitempty"`
}

// PortRequest asks to publish or unpublish one -p spec on an endpoint.
type PortRequest struct {
	Spec string `json:"spec"`
}

// PortBinding is one published host socket.
type PortBinding struct {
	Network       string     `json:"network"`
	Endpoint      string     `json:"endpoint"`
	Proto         string     `json:"proto"`
	HostIP        netip.Addr `json:"host_ip"`
	HostPort      uint16     `json:"host_port"`
	ContainerIP   netip.Addr `json:"container_ip"`
	ContainerPort uint16     `json:"container_port"`
	// Spec is the -p spec it was published for, options included.
	Spec string `json:"spec"`
	// Path is "netstack" (through the gateway, keeping the client's
	// address unless Source is "gateway") or "splice" (a kernel socket
	// inside the endpoint's namespace).
	Path   string `json:"path"`
	Source string `json:"source"`
	// Docker is the `docker port` line: "80/tcp -> 0.0.0.0:8080".
	Docker string `json:"docker"`
	// Active counts the listener's open TCP connections or UDP flows;
	// OverLimit the connections (or new UDP clients) refused because a
	// connection limit was full.
	Active    int64  `json:"active"`
	OverLimit uint64 `json:"over_limit"`
}

// NATTable is a network's userspace netfilter: the rules, as
// iptables-save prints them, and the connection table's counters.
type NATTable struct {
	Network string   `json:"network"`
	Rules   []string `json:"rules"`
	Entries int      `json:"entries"`
	// Translated counts packets rewritten, original and reply direction.
	TranslatedOrig  uint64 `json:"translated_orig"`
	TranslatedReply uint64 `json:"translated_reply"`
	Dropped         uint64 `json:"dropped"`
}

// ConntrackEntry is one tracked connection, as `conntrack -L` prints it.
type ConntrackEntry struct {
	Network string `json:"network"`
	Entry   string `json:"entry"`
}

// Endpoint is a connected namespace.
type Endpoint struct {
	Network string       `json:"network"`
	Name    string       `json:"name"`
	NetNS   string       `json:"netns"`
	PID     int          `json:"pid,omitempty"`
	IfName  string       `json:"ifname"`
	MAC     string       `json:"mac"`
	Address netip.Prefix `json:"address"`
	Gateway netip.Addr   `json:"gateway"`
	Offload bool         `json:"offload"`
	// Kind is "netns" (a TAP inside a namespace), "vm" (--tap-only) or
	// "handoff" (a TAP a runtime moved into its sandbox).
	Kind    string   `json:"kind"`
	DHCP    bool     `json:"dhcp,omitempty"`
	Aliases []string `json:"aliases,omitempty"`
	// DNS is the network's DNS server (the gateway address).
	DNS netip.Addr `json:"dns,omitzero"`
	// ResolvConf is the file connect wrote (--write-resolv-conf).
	ResolvConf string    `json:"resolv_conf,omitempty"`
	Created    time.Time `json:"created"`
	Stats      PortStats `json:"stats"`
	// Ports are the endpoint's published ports.
	Ports []PortBinding `json:"ports,omitempty"`
	// Expose lists the exposed ports (-P publishes them).
	Expose []string `json:"expose,omitempty"`
	// AllowedAddresses and MACSpoofing are as in EndpointCreate.
	AllowedAddresses []string `json:"allowed_addresses,omitempty"`
	MACSpoofing      bool     `json:"mac_spoofing,omitempty"`
	// ContainerID, Runtime and Sandbox are as in EndpointCreate.
	ContainerID string `json:"container_id,omitempty"`
	Runtime     string `json:"runtime,omitempty"`
	Sandbox     string `json:"sandbox,omitempty"`
	// Address6 and Gateway6 are the IPv6 side of an endpoint of a
	// dual-stack network.
	Address6 netip.Prefix `json:"address6,omitzero"`
	Gateway6 netip.Addr   `json:"gateway6,omitzero"`
}

// PortStats are a switch port's counters. RX is what the switch received
// from the endpoint, TX what it sent to it.
type PortStats struct {
	RXFrames uint64 `json:"rx_frames"`
	RXBytes  uint64 `json:"rx_bytes"`
	RXDrops  uint64 `json:"rx_drops"`
	TXFrames uint64 `json:"tx_frames"`
	TXBytes  uint64 `json:"tx_bytes"`
	TXDrops  uint64 `json:"tx_drops"`
	// Drops by reason ("malformed", "oversize", "spoofed_ip", …), both
	// directions; reasons with no drops are left out.
	DropsBy map[string]uint64 `json:"drops_by,omitempty"`
}

// Stats is every counter of the daemon, as `switchyard stats` prints them
// and the Prometheus endpoint exports them.
type Stats struct {
	Networks []NetworkStats `json:"networks"`
	Proxy    ProxyStats     `json:"proxy"`
}

// NetworkStats are one network's counters.
type NetworkStats struct {
	Network    string `json:"network"`
	FDBEntries int    `json:"fdb_entries"`
	FDBMoves   uint64 `json:"fdb_moves"`
	// FDBFull counts frames from new MACs the full table forwarded
	// without learning them.
	FDBFull uint64 `json:"fdb_full"`
	// Segmented counts superframes the switch cut for ports without
	// segmentation offload; ICMPTooBig the path-MTU errors it sent.
	Segmented  uint64 `json:"segmented"`
	ICMPTooBig uint64 `json:"icmp_too_big"`
	// Conntrack is the number of tracked NAT connections.
	Conntrack     int            `json:"conntrack"`
	NATTranslated uint64         `json:"nat_translated"`
	NATDropped    uint64         `json:"nat_dropped"`
	Egress        EgressStats    `json:"egress"`
	DNSQueries    uint64         `json:"dns_queries"`
	DHCPLeases    int            `json:"dhcp_leases"`
	Ports         []PortCounters `json:"ports"`
	// Routing and ReturnPath are Network's, for a network with routes
	// and with a host interface.
	Routing    *RouteStats      `json:"routing,omitempty"`
	ReturnPath *ReturnPathStats `json:"return_path,omitempty"`
	// Loop is the network's loop, the goroutine that reads its TAPs and
	// tunnel; nil when every port has a reader of its own (--spin < 0).
	Loop *LoopStats `json:"loop,omitempty"`
}

// LoopStats count how a network's loop waited for frames: what spinning
// saved (Frames against Wakeups) and what it cost (Spins).
type LoopStats struct {
	// Frames the loop read.
	Frames uint64 `json:"frames"`
	// Wakeups: times the loop was woken after it had parked.
	Wakeups uint64 `json:"wakeups"`
	// Holds: parkings that began with a wait of up to a millisecond in
	// the kernel, taken while frames came densely.
	Holds uint64 `json:"holds"`
	// Spins: polls that found nothing while the loop spun.
	Spins uint64 `json:"spins"`
	// Yields: turns after which the loop gave its processor to the
	// netstack goroutines its frames had woken.
	Yields uint64 `json:"yields"`
	// Contended: polls after which the loop narrowed its window because
	// another thread wanted the CPU.
	Contended uint64 `json:"contended"`
	// WindowNS is how long the loop spins after a frame now, in
	// nanoseconds.
	WindowNS int64 `json:"window_ns"`
}

// PortCounters are one switch port's counters.
type PortCounters struct {
	Name  string    `json:"name"`
	Kind  string    `json:"kind"`
	Stats PortStats `json:"stats"`
}

// ProxyStats count published-port traffic.
type ProxyStats struct {
	Listeners      int    `json:"listeners"`
	TCPActive      int64  `json:"tcp_active"`
	TCPTotal       uint64 `json:"tcp_total"`
	TCPRefused     uint64 `json:"tcp_refused"`
	TCPBytesIn     uint64 `json:"tcp_bytes_in"`
	TCPBytesOut    uint64 `json:"tcp_bytes_out"`
	UDPFlowsActive int64  `json:"udp_flows_active"`
	UDPFlowsTotal  uint64 `json:"udp_flows_total"`
	UDPEvicted     uint64 `json:"udp_evicted"`
	UDPExpired     uint64 `json:"udp_expired"`
	// OverLimit counts TCP connections reset and new UDP clients dropped
	// because a port's or the daemon's connection limit was full;
	// AcceptErrors failed accepts (out of file descriptors, usually).
	OverLimit    uint64 `json:"over_limit"`
	AcceptErrors uint64 `json:"accept_errors"`
	// Conns holds a slot of MaxConns now; MaxConns and MaxConnsPerPort
	// are the limits (not positive: none).
	Conns           int64 `json:"conns"`
	MaxConns        int   `json:"max_conns"`
	MaxConnsPerPort int   `json:"max_conns_per_port"`
}

// DirectCluster describes a network with routing "direct" and a cluster.
type DirectCluster struct {
	Range      netip.Prefix `json:"range"`
	Cluster    []string     `json:"cluster"`
	PublicAddr netip.Addr   `json:"public_addr"`
	// Joined is whether this host holds its lease in etcd now.
	Joined bool `json:"joined"`
}
