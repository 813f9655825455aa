package netavark

import (
	"encoding/json"
	"net/netip"
)

// The JSON of netavark's plugin API, as its src/network/types.rs declares
// it. Fields that are an Option in Rust may be missing or null; the others
// are always sent. Addresses are kept as text when they are read, so that
// an error can quote what podman sent.

// APIVersion is the plugin API version this plugin speaks.
const APIVersion = "1.0.0"

// Network is a podman network (types::Network): the input and output of
// create and part of setup's and teardown's input.
type Network struct {
	// Created is kept as podman sent it.
	Created    json.RawMessage `json:"created,omitempty"`
	DNSEnabled bool            `json:"dns_enabled"`
	Driver     string          `json:"driver"`
	ID         string          `json:"id"`
	Internal   bool            `json:"internal"`
	IPv6       bool            `json:"ipv6_enabled"`
	Name       string          `json:"name"`
	// NetworkInterface is the host interface; Switchyard has none.
	NetworkInterface *string           `json:"network_interface,omitempty"`
	Options          map[string]string `json:"options,omitempty"`
	IPAMOptions      map[string]string `json:"ipam_options,omitempty"`
	Subnets          []Subnet          `json:"subnets,omitempty"`
	// Routes are static routes; Switchyard refuses them.
	Routes            []json.RawMessage `json:"routes,omitempty"`
	NetworkDNSServers []string          `json:"network_dns_servers,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
}

// Subnet is one of a network's subnets (types::Subnet).
type Subnet struct {
	Subnet     string      `json:"subnet"`
	Gateway    string      `json:"gateway,omitempty"`
	LeaseRange *LeaseRange `json:"lease_range,omitempty"`
}

// LeaseRange restricts the addresses handed out (types::LeaseRange).
type LeaseRange struct {
	StartIP *string `json:"start_ip,omitempty"`
	EndIP   *string `json:"end_ip,omitempty"`
}

// PortMapping is a published port range (types::PortMapping).
type PortMapping struct {
	ContainerPort uint16 `json:"container_port"`
	HostIP        string `json:"host_ip"`
	HostPort      uint16 `json:"host_port"`
	// Protocol is "tcp", "udp", "sctp" or several of them joined by
	// commas; empty means tcp.
	Protocol string `json:"protocol"`
	// Range is the number of ports from HostPort and ContainerPort on;
	// 0 means 1.
	Range uint16 `json:"range"`
}

// PerNetworkOptions are a container's options on one network
// (types::PerNetworkOptions).
type PerNetworkOptions struct {
	Aliases       []string          `json:"aliases,omitempty"`
	InterfaceName string            `json:"interface_name"`
	StaticIPs     []string          `json:"static_ips,omitempty"`
	StaticMAC     *string           `json:"static_mac,omitempty"`
	Options       map[string]string `json:"options,omitempty"`
}

// PluginExec is the input of setup and teardown
// (types::NetworkPluginExec).
type PluginExec struct {
	ContainerID    string            `json:"container_id"`
	ContainerName  string            `json:"container_name"`
	PortMappings   []PortMapping     `json:"port_mappings,omitempty"`
	Network        Network           `json:"network"`
	NetworkOptions PerNetworkOptions `json:"network_options"`
}

// StatusBlock is setup's answer (types::StatusBlock).
type StatusBlock struct {
	DNSSearchDomains []string                `json:"dns_search_domains"`
	DNSServerIPs     []netip.Addr            `json:"dns_server_ips"`
	Interfaces       map[string]NetInterface `json:"interfaces"`
}

// NetInterface is the interface setup made in the container
// (types::NetInterface).
type NetInterface struct {
	MACAddress string       `json:"mac_address"`
	Subnets    []NetAddress `json:"subnets"`
}

// NetAddress is an interface's address with its prefix length, and its
// gateway (none on an internal network) (types::NetAddress).
type NetAddress struct {
	Gateway netip.Addr   `json:"gateway,omitzero"`
	IPNet   netip.Prefix `json:"ipnet"`
}

// jsonError is the answer of a failed command.
type jsonError struct {
	Error string `json:"error"`
}
