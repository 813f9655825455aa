// Package store keeps the daemon's state — networks and endpoints — in a
// bbolt file, as Docker's libnetwork keeps its local store. Every change is
// one transaction, so a daemon killed at any moment (kill -9 included)
// finds either the state before the change or after it.
//
// Records are JSON values under their name: networks by network name,
// endpoints by "network/endpoint". A damaged file never stops the daemon
// nor panics it: see salvage.go. IP address allocations are not stored:
// they are rebuilt from the endpoint records at start-up.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/switchyard-net/switchyard/internal/nsenter"
	"github.com/switchyard-net/switchyard/internal/rootfs"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

var (
	bucketNetworks  = []byte("networks")
	bucketEndpoints = []byte("endpoints")
)

// ErrLocked is returned by Open when another process holds the file.
var ErrLocked = errors.New("state file locked by another process")

// Network is a stored network.
type Network struct {
	Name         string                `json:"name"`
	Subnet       netip.Prefix          `json:"subnet"`
	Gateway      netip.Addr            `json:"gateway"`
	GatewayMAC   vswitch.MAC           `json:"gateway_mac"`
	IPRange      netip.Prefix          `json:"ip_range"`
	AuxAddresses map[string]netip.Addr `json:"aux_addresses,omitempty"`
	MTU          int                   `json:"mtu"`
	ICC          bool                  `json:"icc"`
	Internal     bool                  `json:"internal"`
	HostLoopback netip.Addr            `json:"host_loopback,omitzero"`
	// HostInterface, if set, is the network's TAP in the daemon's own
	// namespace; Routes are the remote subnets routed to it.
	HostInterface *HostInterface `json:"host_interface,omitempty"`
	Routes        []netip.Prefix `json:"routes,omitempty"`
	// Direct is set for a network with routing "direct" and a cluster:
	// Subnet is then this host's lease of Direct.Range, and the routes
	// come from the other hosts' leases (not stored: etcd has them).
	Direct  *DirectCluster `json:"direct_cluster,omitempty"`
	Default bool           `json:"default"`
	Created time.Time      `json:"created"`
	// Tunnel, if the network spans hosts.
	Tunnel *Tunnel `json:"tunnel,omitempty"`
	// Labels are api.NetworkCreate's.
	Labels map[string]string `json:"labels,omitempty"`
	// Subnet6, Gateway6 and IPRange6 are the IPv6 side of a dual-stack
	// network, whose Subnet is IPv4. A single-family network leaves them
	// zero: an IPv6-only network has its subnet in Subnet, as records
	// written before dual stack do, so those read unchanged.
	Subnet6  netip.Prefix `json:"subnet6,omitzero"`
	Gateway6 netip.Addr   `json:"gateway6,omitzero"`
	IPRange6 netip.Prefix `json:"ip_range6,omitzero"`
	// NoSLAAC: the gateway advertises the IPv6 prefix without the
	// autonomous flag (api.NetworkCreate.SLAAC false). Zero in records
	// written before it: SLAAC as before.
	NoSLAAC bool `json:"no_slaac,omitempty"`
}

// IPv4 returns the network's IPv4 subnet, gateway and range, or zeros
// for an IPv6-only network.
func (n Network) IPv4() (subnet netip.Prefix, gateway netip.Addr, ipRange netip.Prefix) {
	if n.Subnet.Addr().Is4() {
		return n.Subnet, n.Gateway, n.IPRange
	}
	return netip.Prefix{}, netip.Addr{}, netip.Prefix{}
}

// IPv6 returns the network's IPv6 subnet, gateway and range, wherever the
// record keeps them, or zeros for an IPv4-only network.
func (n Network) IPv6() (subnet netip.Prefix, gateway netip.Addr, ipRange netip.Prefix) {
	if n.Subnet6.IsValid() {
		return n.Subnet6, n.Gateway6, n.IPRange6
	}
	if n.Subnet.Addr().Is6() {
		return n.Subnet, n.Gateway, n.IPRange
	}
	return netip.Prefix{}, netip.Addr{}, netip.Prefix{}
}

// Subnets returns the network's subnets, the IPv4 one first.
func (n Network) Subnets() []netip.Prefix {
	out := make([]netip.Prefix, 0, 2)
	if n.Subnet.IsValid() {
		out = append(out, n.Subnet)
	}
	if n.Subnet6.IsValid() {
		out = append(out, n.Subnet6)
	}
	return out
}

// HostInterface is a network's TAP in the daemon's namespace.
type HostInterface struct {
	Name string      `json:"name"`
	Addr netip.Addr  `json:"addr"`
	MAC  vswitch.MAC `json:"mac"`
}

// Tunnel is a network's tunnel configuration.
type Tunnel struct {
	Mode        string           `json:"mode"` // "vxlan" or "secure"
	VNI         uint32           `json:"vni"`
	Listen      netip.AddrPort   `json:"listen"`
	Peers       []netip.AddrPort `json:"peers,omitempty"`
	KeyFile     string           `json:"key_file,omitempty"`
	UnderlayMTU int              `json:"underlay_mtu"`
	// PrevKeyFile, RotateStart and RotateWindow describe the last key
	// rotation (tunnel rotate-key): KeyFile holds the new key and
	// PrevKeyFile the one it replaces. A restart before
	// RotateStart+2×RotateWindow resumes the rotation where the clock
	// puts it (see tunnel.Rotation).
	PrevKeyFile  string        `json:"prev_key_file,omitempty"`
	RotateStart  time.Time     `json:"rotate_start,omitzero"`
	RotateWindow time.Duration `json:"rotate_window,omitempty"`
	// Cluster lists the etcd endpoints (http://HOST:PORT, https:// with
	// TLS); HostID names this host there across restarts, and HostSubnet
	// is the subnet it last leased.
	Cluster []string `json:"cluster,omitempty"`
	// EtcdCACert, EtcdCert, EtcdKey, EtcdUser and EtcdPasswordFile are
	// api.NetworkCreate's: read again at every join, so that a restored
	// network rejoins with them and renewed files are picked up.
	EtcdCACert       string       `json:"etcd_cacert,omitempty"`
	EtcdCert         string       `json:"etcd_cert,omitempty"`
	EtcdKey          string       `json:"etcd_key,omitempty"`
	EtcdUser         string       `json:"etcd_user,omitempty"`
	EtcdPasswordFile string       `json:"etcd_password_file,omitempty"`
	SubnetLen        int          `json:"subnet_len,omitempty"`
	LeaseTTL         int          `json:"lease_ttl,omitempty"` // seconds; 0: the cluster package's default
	HostID           string       `json:"host_id,omitempty"`
	HostSubnet       netip.Prefix `json:"host_subnet,omitzero"`
	// SubnetLen6 and HostSubnet6 are the IPv6 side of a dual-stack
	// cluster network: the length of each host's IPv6 lease of
	// Network.Subnet6, and the one this host last held.
	SubnetLen6  int          `json:"subnet_len6,omitempty"`
	HostSubnet6 netip.Prefix `json:"host_subnet6,omitzero"`
}

// Endpoint is a stored endpoint.
type Endpoint struct {
	Network string `json:"network"`
	Name    string `json:"name"`
	// NetNS is the namespace path; NetNSID identifies the namespace it
	// pointed to at connect time, so a path reused by a new namespace is
	// not mistaken for the old one.
	NetNS   string       `json:"netns"`
	NetNSID nsenter.ID   `json:"netns_id"`
	PID     int          `json:"pid,omitempty"`
	IfName  string       `json:"ifname"`
	MAC     vswitch.MAC  `json:"mac"`
	Address netip.Prefix `json:"address"`
	Created time.Time    `json:"created"`
	// Ports are the published -p specs, in the order given.
	Ports []Port `json:"ports,omitempty"`
	// Expose lists the exposed ports (--expose).
	Expose []string `json:"expose,omitempty"`
	// TapOnly endpoints are TAPs in the daemon's namespace for VMs;
	// TapOwner may open the device (-1: nobody unprivileged).
	TapOnly  bool `json:"tap_only,omitempty"`
	TapOwner int  `json:"tap_owner,omitempty"`
	// DHCP endpoints' interfaces get their address from the network's
	// DHCP server, not from the daemon.
	DHCP bool `json:"dhcp,omitempty"`
	// Aliases are more DNS names of the endpoint's address.
	Aliases []string `json:"aliases,omitempty"`
	// ResolvConf is the resolv.conf connect wrote, removed on disconnect;
	// for a process's own file, ResolvConfPrev is what it held before,
	// put back on disconnect.
	ResolvConf     string           `json:"resolv_conf,omitempty"`
	ResolvConfPrev *rootfs.Previous `json:"resolv_conf_prev,omitempty"`
	// AllowedAddresses are source prefixes the endpoint may send from
	// besides its address; MACSpoofing lets it send from other MACs
	// (port security, see vswitch.Binding).
	AllowedAddresses []netip.Prefix `json:"allowed_addresses,omitempty"`
	MACSpoofing      bool           `json:"mac_spoofing,omitempty"`
	// ContainerID and Runtime identify the endpoint to the container
	// runtime that made it (api.EndpointCreate).
	ContainerID string `json:"container_id,omitempty"`
	Runtime     string `json:"runtime,omitempty"`
	// Handoff endpoints are TapOnly TAPs made for a runtime to move into
	// Sandbox (api.EndpointCreate.Handoff): static address, no DHCP.
	Handoff bool   `json:"handoff,omitempty"`
	Sandbox string `json:"sandbox,omitempty"`
	// Address6 is the IPv6 address of an endpoint of a dual-stack
	// network (Network.Subnet6); Address is then its IPv4 one.
	Address6 netip.Prefix `json:"address6,omitzero"`
}

// Addrs returns the endpoint's addresses, IPv4 first.
func (e Endpoint) Addrs() []netip.Addr {
	out := make([]netip.Addr, 0, 2)
	if e.Address.IsValid() {
		out = append(out, e.Address.Addr())
	}
	if e.Address6.IsValid() {
		out = append(out, e.Address6.Addr())
	}
	return out
}

// Port is one published -p spec and the host sockets it was bound to, so
// that a restart binds the same host ports again (ephemeral ones too).
type Port struct {
	Spec  string           `json:"spec"`
	Bound []netip.AddrPort `json:"bound,omitempty"`
}

// Key returns "network/name".
func (e Endpoint) Key() string { return e.Network + "/" + e.Name }

// Store is an open state file.
type Store struct {
	db   *bolt.DB
	path string

	mu       sync.Mutex
	warnings []string
}

// Open opens (creating if needed) the state file state.db in dir.
func Open(dir string) (*Store, error) { return open(dir, false) }

// OpenEphemeral opens a state file that need not survive a crash (the
// in-process daemon of `switchyard run`): changes are not synced to disk.
func OpenEphemeral(dir string) (*Store, error) { return open(dir, true) }

func open(dir string, noSync bool) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, "state.db")
	opts := &bolt.Options{Timeout: time.Second, NoSync: noSync, NoFreelistSync: noSync}
	var warnings []string
	if st, err := os.Stat(path); err == nil && st.Size() == 0 {
		// bbolt would quietly make a new database of an empty file; but
		// bbolt never leaves one, so something else truncated ours.
		w, err := moveAside(path, "empty", time.Now())
		if err != nil {
			return nil, err
		}
		warnings = append(warnings, w)
	}
	db, more, err := openChecked(path, opts)
	if errors.Is(err, errCorrupt) {
		w, aerr := moveAside(path, err.Error(), time.Now())
		if aerr != nil {
			return nil, aerr
		}
		warnings = append(warnings, w)
		db, more, err = openChecked(path, opts)
	}
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("state file %s: %w (is another switchyard daemon using --state-dir %s?)", path, ErrLocked, dir)
		}
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	return &Store{db: db, path: path, warnings: append(warnings, more...)}, nil
}

// Warnings says what had to be done about a damaged state file: a corrupt
// file moved aside by Open, records that could not be read and were
// skipped. The daemon logs each after restoring.
func (s *Store) Warnings() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.warnings...)
}

// Path returns the state file's path.
func (s *Store) Path() string { return s.path }

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

func put(s *Store, bucket []byte, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(key), b) })
}

func del(s *Store, bucket []byte, key string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Delete([]byte(key)) })
}

// list decodes every record of bucket. Open has already moved records
// that do not decode to quarantine; one that still does not (damage bbolt
// did not show until now) is skipped with a warning rather than failing
// the whole list.
func list[T any](s *Store, bucket []byte) ([]T, error) {
	var out []T
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var t T
			if err := json.Unmarshal(v, &t); err != nil {
				s.warn(fmt.Sprintf("state file %s: %s record %q cannot be read (%v): skipped", s.path, bucket, k, err))
				return nil
			}
			out = append(out, t)
			return nil
		})
	})
	return out, err
}

func (s *Store) warn(w string) {
	s.mu.Lock()
	s.warnings = append(s.warnings, w)
	s.mu.Unlock()
}

// PutNetwork stores n, replacing a network of the same name.
func (s *Store) PutNetwork(n Network) error { return put(s, bucketNetworks, n.Name, n) }

// DeleteNetwork removes a network record.
func (s *Store) DeleteNetwork(name string) error { return del(s, bucketNetworks, name) }

// Networks returns every stored network, by name.
func (s *Store) Networks() ([]Network, error) {
	ns, err := list[Network](s, bucketNetworks)
	sort.Slice(ns, func(i, j int) bool { return ns[i].Name < ns[j].Name })
	return ns, err
}

// PutEndpoint stores e, replacing an endpoint of the same key.
func (s *Store) PutEndpoint(e Endpoint) error { return put(s, bucketEndpoints, e.Key(), e) }

// DeleteEndpoint removes an endpoint record.
func (s *Store) DeleteEndpoint(network, name string) error {
	return del(s, bucketEndpoints, network+"/"+name)
}

// Endpoints returns every stored endpoint, by key.
func (s *Store) Endpoints() ([]Endpoint, error) {
	es, err := list[Endpoint](s, bucketEndpoints)
	sort.Slice(es, func(i, j int) bool { return es[i].Key() < es[j].Key() })
	return es, err
}

// DirectCluster is the cluster of a network with routing "direct".
type DirectCluster struct {
	// Range is the cluster's whole range, cut into leases.
	Range netip.Prefix `json:"range"`
	// PublicAddr is this host's address the others route its lease to.
	PublicAddr netip.Addr `json:"public_addr"`
	// Cluster holds the etcd fields of a tunnel's record (endpoints,
	// TLS, auth, SubnetLen, LeaseTTL, HostID, HostSubnet); its Mode,
	// VNI, Peers and keys are unused.
	Cluster Tunnel `json:"cluster"`
}
