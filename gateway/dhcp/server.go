package dhcp

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"go.uber.org/zap"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// Defaults and fixed times.
const (
	// DefaultLeaseTime is the lease time when Config.LeaseTime is zero.
	DefaultLeaseTime = time.Hour
	// OfferHold is how long an offered address stays reserved for a
	// client that has not requested it yet.
	OfferHold = time.Minute
	// DeclineHold is how long an address a client declined (it found
	// the address in use) is kept out of use.
	DeclineHold = 10 * time.Minute
	// MinMTU is the smallest Config.MTU accepted: every DHCP client must
	// take a 576-byte datagram (RFC 2131, section 2).
	MinMTU = 576
	// MaxDNS is the most DNS servers a Config may list.
	MaxDNS = 8
)

// Allocator hands out the addresses of the network. The daemon backs it
// with the network's IPAM: the lowest free address, static leases by MAC.
//
// The Server calls it with its own lock held; it must not call back into
// the Server.
type Allocator interface {
	// Lease returns the address of mac, allocating one if mac holds
	// none. The same MAC gets the same address while it holds a lease.
	// requested, if valid, is the client's preference, to be honoured
	// when it is free. hostname is what the client calls itself (may be
	// empty).
	//
	// To keep a declined address out of use, the Server leases it to a
	// group MAC (first byte 0x03, then 0x00 and the address's four
	// bytes), which no station can have: the Allocator treats that MAC
	// as any other holder.
	Lease(mac vswitch.MAC, hostname string, requested netip.Addr) (netip.Addr, error)
	// Release frees the address mac holds. Releasing an address mac does
	// not hold must be harmless.
	Release(mac vswitch.MAC, addr netip.Addr)
}

// Config describes a Server.
type Config struct {
	// Subnet is the network's IPv4 subnet, /30 or larger.
	Subnet netip.Prefix
	// Router is the gateway's address, inside Subnet: the router the
	// clients are given, the server identifier, and the source of every
	// reply.
	Router netip.Addr
	// ServerMAC is the gateway's Ethernet address, the source of every
	// reply.
	ServerMAC vswitch.MAC
	// DNS servers given to clients (IPv4, at most MaxDNS). None: the
	// option is left out.
	DNS []netip.Addr
	// DomainName given to clients. Empty: the option is left out.
	DomainName string
	// MTU of the network, given to clients (option 26). 0 means 1500.
	MTU int
	// LeaseTime is the lease clients are given; renewal (T1) is at half
	// of it, rebinding (T2) at seven eighths. 0 means DefaultLeaseTime.
	LeaseTime time.Duration
	// Allocator hands out addresses. Required.
	Allocator Allocator
	// Send puts a frame on the switch as the gateway (stackport's
	// Port.Send). The Server does not keep frame after Send returns.
	// Send reports false if the frame could not be sent. Required.
	Send func(frame []byte) bool
	// Now, if set, is the server's clock (lease and offer expiry); nil
	// means time.Now.
	Now func() time.Time
	// Logger; nil means no logging. Nothing is logged at levels above
	// debug per message.
	Logger *zap.Logger
}

// LeaseState says what a lease-table entry is.
type LeaseState string

// Lease states.
const (
	// StateOffered: the address was offered and is reserved until the
	// client requests it or the offer expires.
	StateOffered LeaseState = "offered"
	// StateBound: the client holds the address.
	StateBound LeaseState = "bound"
	// StateDeclined: the client declined the address (it is in use by
	// someone else); it is kept out of use until the entry expires.
	StateDeclined LeaseState = "declined"
)

// Lease is one entry of the lease table, as Leases shows it.
type Lease struct {
	// MAC is the client's address (for StateDeclined, the client that
	// declined).
	MAC      vswitch.MAC `json:"mac"`
	Addr     netip.Addr  `json:"addr"`
	Hostname string      `json:"hostname,omitempty"`
	// Expiry is when Sweep returns the address to the Allocator.
	Expiry time.Time  `json:"expiry"`
	State  LeaseState `json:"state"`
}

// Stats counts what the Server received and sent.
type Stats struct {
	// Client messages received, by type.
	Discovers uint64 `json:"discovers"`
	Requests  uint64 `json:"requests"`
	Releases  uint64 `json:"releases"`
	Declines  uint64 `json:"declines"`
	Informs   uint64 `json:"informs"`
	// Replies sent.
	Offers uint64 `json:"offers"`
	Acks   uint64 `json:"acks"`
	Naks   uint64 `json:"naks"`
	// Malformed messages: bad IPv4 or UDP checksum or length, a
	// fragment, not a BOOTREQUEST from an Ethernet client, a message
	// the DHCP decoder refuses, no or an unknown message type.
	Malformed uint64 `json:"malformed"`
	// Spoofed messages: the client hardware address is not the frame's
	// source MAC, or is a group or all-zero MAC.
	Spoofed uint64 `json:"spoofed"`
	// Relayed messages (giaddr set), which this server does not serve.
	Relayed uint64 `json:"relayed"`
	// Ignored messages: a REQUEST, RELEASE or DECLINE for another
	// server, a RELEASE or DECLINE of an address the client does not
	// hold, an INFORM from outside the subnet.
	Ignored uint64 `json:"ignored"`
	// AllocFailures: the Allocator had no address (or returned one
	// outside the usable range).
	AllocFailures uint64 `json:"alloc_failures"`
	// SendFailures: replies Send refused, or that did not fit the MTU.
	SendFailures uint64 `json:"send_failures"`
}

type counters struct {
	discovers, requests, releases, declines, informs atomic.Uint64
	offers, acks, naks                               atomic.Uint64
	malformed, spoofed, relayed, ignored             atomic.Uint64
	allocFailures, sendFailures                      atomic.Uint64
}

// Server is a DHCPv4 server for one network. Create it with New. Its
// methods are safe for concurrent use.
type Server struct {
	cfg       Config
	log       *zap.Logger
	now       func() time.Time
	router    [4]byte
	bcast     [4]byte // the subnet's directed broadcast address
	network   [4]byte // the subnet's network address
	mask      [4]byte
	leaseTime time.Duration
	options   []dhcpv4.Option // the configuration options every OFFER and ACK carries
	bufs      sync.Pool

	stats counters

	mu sync.Mutex
	// leases is the lease table, keyed by the MAC the Allocator knows
	// the address under (for declined addresses, a quarantine MAC).
	leases map[vswitch.MAC]*lease
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if err := checkConfig(&cfg); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger.Named("dhcp"),
		now:       cfg.Now,
		router:    cfg.Router.As4(),
		leaseTime: cfg.LeaseTime,
		leases:    map[vswitch.MAC]*lease{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.network = cfg.Subnet.Addr().As4()
	s.bcast = lastAddr(cfg.Subnet).As4()
	m := uint32(math.MaxUint32) << (32 - cfg.Subnet.Bits())
	s.mask = [4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
	s.options = s.configOptions()
	s.bufs.New = func() any { b := make([]byte, 0, replyBufSize); return &b }
	s.log.Info("dhcp server up", zap.Stringer("subnet", cfg.Subnet), zap.Stringer("router", cfg.Router),
		zap.Stringer("mac", cfg.ServerMAC), zap.Duration("lease", cfg.LeaseTime), zap.Int("mtu", cfg.MTU))
	return s, nil
}

// checkConfig validates cfg and fills in defaults: the addresses, then
// the options handed to clients, then the hooks.
func checkConfig(cfg *Config) error {
	if err := checkAddressing(cfg); err != nil {
		return err
	}
	if err := checkClientOptions(cfg); err != nil {
		return err
	}
	if err := checkLimits(cfg); err != nil {
		return err
	}
	if cfg.Allocator == nil {
		return errors.New("dhcp: no Allocator")
	}
	if cfg.Send == nil {
		return errors.New("dhcp: no Send function")
	}
	return nil
}

// checkAddressing checks the subnet, the router and the server's MAC.
func checkAddressing(cfg *Config) error {
	p := cfg.Subnet
	if !p.IsValid() || !p.Addr().Is4() {
		return fmt.Errorf("dhcp: subnet %s: want an IPv4 subnet like 10.0.0.0/24", p)
	}
	if p.Bits() > 30 {
		return fmt.Errorf("dhcp: subnet %s is too small: want /30 or larger, for the router and a client", p)
	}
	cfg.Subnet = p.Masked()
	if !cfg.Router.Is4() || !cfg.Subnet.Contains(cfg.Router) {
		return fmt.Errorf("dhcp: router %s: want an address inside %s", cfg.Router, cfg.Subnet)
	}
	if cfg.Router == cfg.Subnet.Addr() || cfg.Router == lastAddr(cfg.Subnet) {
		return fmt.Errorf("dhcp: router %s is the network or broadcast address of %s: want a host address", cfg.Router, cfg.Subnet)
	}
	if cfg.ServerMAC.IsZero() || cfg.ServerMAC.IsMulticast() {
		return fmt.Errorf("dhcp: server MAC %s: want the gateway's unicast MAC", cfg.ServerMAC)
	}
	return nil
}

// checkClientOptions checks the DNS servers and the domain name.
func checkClientOptions(cfg *Config) error {
	if len(cfg.DNS) > MaxDNS {
		return fmt.Errorf("dhcp: %d DNS servers: at most %d", len(cfg.DNS), MaxDNS)
	}
	for _, a := range cfg.DNS {
		if !a.Is4() {
			return fmt.Errorf("dhcp: DNS server %s: want an IPv4 address", a)
		}
	}
	if len(cfg.DomainName) > 253 {
		return fmt.Errorf("dhcp: domain name of %d bytes: at most 253", len(cfg.DomainName))
	}
	for i := 0; i < len(cfg.DomainName); i++ {
		if c := cfg.DomainName[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("dhcp: domain name %q: want letters, digits, '-' and '.'", cfg.DomainName)
		}
	}
	return nil
}

// checkLimits checks the MTU and the lease time and fills in defaults.
func checkLimits(cfg *Config) error {
	if cfg.MTU == 0 {
		cfg.MTU = vswitch.DefaultMTU
	}
	if cfg.MTU < MinMTU || cfg.MTU > math.MaxUint16 {
		return fmt.Errorf("dhcp: MTU %d: want %d to %d", cfg.MTU, MinMTU, math.MaxUint16)
	}
	if cfg.LeaseTime == 0 {
		cfg.LeaseTime = DefaultLeaseTime
	}
	if cfg.LeaseTime < time.Second || cfg.LeaseTime > math.MaxUint32*time.Second {
		return fmt.Errorf("dhcp: lease time %s: want 1s to %s", cfg.LeaseTime, math.MaxUint32*time.Second)
	}
	cfg.LeaseTime = cfg.LeaseTime.Truncate(time.Second)
	return nil
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Discovers: c.discovers.Load(), Requests: c.requests.Load(), Releases: c.releases.Load(),
		Declines: c.declines.Load(), Informs: c.informs.Load(),
		Offers: c.offers.Load(), Acks: c.acks.Load(), Naks: c.naks.Load(),
		Malformed: c.malformed.Load(), Spoofed: c.spoofed.Load(), Relayed: c.relayed.Load(),
		Ignored: c.ignored.Load(), AllocFailures: c.allocFailures.Load(), SendFailures: c.sendFailures.Load(),
	}
}

// lastAddr returns the directed broadcast address of the IPv4 prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(math.MaxUint32) >> p.Bits()
	for i := range a {
		a[i] |= byte(host >> (24 - 8*i))
	}
	return netip.AddrFrom4(a)
}
