package docker

// The messages of libnetwork's remote driver and remote IPAM protocols, as
// dockerd sends and reads them: JSON bodies of HTTP POSTs whose field
// names are the Go field names (libnetwork marshals its own structs with
// no tags). Written from libnetwork's docs/remote.md and docs/ipam.md and
// the request types of drivers/remote/api and ipams/remote/api.

// activateResponse answers /Plugin.Activate.
type activateResponse struct {
	Implements []string
}

// driverError is the body of a NetworkDriver call that failed.
type driverError struct {
	Err string
}

// ipamError is the body of an IpamDriver call that failed.
type ipamError struct {
	Error string
}

// capabilitiesResponse answers NetworkDriver.GetCapabilities.
type capabilitiesResponse struct {
	Scope             string
	ConnectivityScope string
}

// ipamData is one address family's pool of a network, as the IPAM driver
// gave it: Pool and Gateway in CIDR form, AuxAddresses name → CIDR.
type ipamData struct {
	AddressSpace string
	Pool         string
	Gateway      string
	AuxAddresses map[string]string
}

type createNetworkRequest struct {
	NetworkID string
	Options   map[string]any
	IPv4Data  []ipamData
	IPv6Data  []ipamData
}

type networkRequest struct {
	NetworkID string
}

// endpointInterface is an endpoint's addresses: CIDR strings and a MAC.
type endpointInterface struct {
	Address     string `json:",omitempty"`
	AddressIPv6 string `json:",omitempty"`
	MacAddress  string `json:",omitempty"`
}

type createEndpointRequest struct {
	NetworkID  string
	EndpointID string
	Interface  *endpointInterface
	Options    map[string]any
}

type createEndpointResponse struct {
	Interface *endpointInterface `json:",omitempty"`
}

// endpointRequest names an endpoint: DeleteEndpoint, EndpointOperInfo,
// Leave and RevokeExternalConnectivity.
type endpointRequest struct {
	NetworkID  string
	EndpointID string
}

type operInfoResponse struct {
	Value map[string]any
}

type joinRequest struct {
	NetworkID  string
	EndpointID string
	SandboxKey string
	Options    map[string]any
}

// interfaceName names the device Docker moves into the sandbox (SrcName)
// and the prefix of its name there.
type interfaceName struct {
	SrcName   string
	DstPrefix string
}

type staticRoute struct {
	Destination string
	RouteType   int
	NextHop     string `json:",omitempty"`
}

type joinResponse struct {
	InterfaceName         *interfaceName
	Gateway               string        `json:",omitempty"`
	StaticRoutes          []staticRoute `json:",omitempty"`
	DisableGatewayService bool
}

type programRequest struct {
	NetworkID  string
	EndpointID string
	Options    map[string]any
}

// portBinding is one element of the com.docker.network.portmap option:
// Proto is an IP protocol number (6 TCP, 17 UDP, 132 SCTP), IP and Port
// the container's side, HostIP, HostPort and HostPortEnd the host's (a
// range to choose from when HostPortEnd > HostPort; HostPort 0 for any).
type portBinding struct {
	Proto       int
	IP          string
	Port        uint16
	HostIP      string
	HostPort    uint16
	HostPortEnd uint16
}

// IPAM messages.

type ipamCapabilitiesResponse struct {
	RequiresMACAddress    bool
	RequiresRequestReplay bool
}

type addressSpacesResponse struct {
	LocalDefaultAddressSpace  string
	GlobalDefaultAddressSpace string
}

type requestPoolRequest struct {
	AddressSpace string
	Pool         string
	SubPool      string
	Options      map[string]string
	V6           bool
}

type requestPoolResponse struct {
	PoolID string
	Pool   string
	Data   map[string]string
}

type releasePoolRequest struct {
	PoolID string
}

type requestAddressRequest struct {
	PoolID  string
	Address string
	Options map[string]string
}

type requestAddressResponse struct {
	Address string
	Data    map[string]string
}

type releaseAddressRequest struct {
	PoolID  string
	Address string
}
