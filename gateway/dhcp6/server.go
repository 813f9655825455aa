package dhcp6

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// Defaults and limits of a Config.
const (
	// DefaultLeaseTime is the lease time when Config.LeaseTime is zero.
	DefaultLeaseTime = time.Hour
	// MinMTU is the smallest Config.MTU accepted: IPv6's minimum link
	// MTU (RFC 8200, section 5).
	MinMTU = 1280
	// MaxDNS is the most DNS servers a Config may list.
	MaxDNS = 8
)

// Reservations are the network's static leases: the IPv6 address IPAM gave
// the endpoint with a MAC. The daemon backs it with the network's address
// pool. It is called without the Server's lock held, and must be safe for
// concurrent use.
type Reservations interface {
	// Reserved returns the address reserved for mac, if there is one.
	Reserved(mac vswitch.MAC) (netip.Addr, bool)
}

// Config describes a Server.
type Config struct {
	// Subnet is the network's IPv6 subnet. Reservations outside it are
	// not handed out, and CONFIRM checks addresses against it.
	Subnet netip.Prefix
	// ServerMAC is the gateway's Ethernet address, the source of every
	// reply; the server's DUID is the DUID-LL made from it.
	ServerMAC vswitch.MAC
	// LinkLocal is the gateway's link-local address (fe80::/10), the
	// source of every reply: clients talk to servers on their link
	// from and to link-local addresses (RFC 8415, section 5.2).
	LinkLocal netip.Addr
	// DNS servers given to clients (option 23, IPv6, at most MaxDNS).
	// None: the option is left out.
	DNS []netip.Addr
	// DomainName is given to clients as their domain search list
	// (option 24). Empty: the option is left out.
	DomainName string
	// MTU of the network; replies larger than it are not sent. 0 means
	// 1500.
	MTU int
	// LeaseTime is the valid and preferred lifetime of the addresses
	// handed out; clients renew (T1) at half of it and rebind (T2) at
	// four fifths. 0 means DefaultLeaseTime.
	LeaseTime time.Duration
	// Now, if set, is the server's clock (lease expiry); nil means
	// time.Now.
	Now func() time.Time
	// Reservations hands out addresses. Required.
	Reservations Reservations
	// Send puts a frame on the switch as the gateway (stackport's
	// Port.Send). The Server does not keep the frame after Send
	// returns. Send reports false if the frame could not be sent.
	// Required.
	Send func(frame []byte) bool
	// Logger; nil means no logging. Nothing is logged at levels above
	// debug per message.
	Logger *zap.Logger
}

// Lease is one entry of the lease table, as Leases shows it: a client
// that was given its reserved address.
type Lease struct {
	MAC  vswitch.MAC `json:"mac"`
	Addr netip.Addr  `json:"addr"`
	// DUID is the client's identifier, in hex.
	DUID string `json:"duid"`
	// IAID identifies the client's interface (its IA_NA).
	IAID uint32 `json:"iaid"`
	// Expiry is when Sweep forgets the lease unless the client renews.
	Expiry time.Time `json:"expiry"`
}

// Stats counts what the Server received and sent.
type Stats struct {
	// Client messages received, by type.
	Solicits     uint64 `json:"solicits"`
	Requests     uint64 `json:"requests"`
	Confirms     uint64 `json:"confirms"`
	Renews       uint64 `json:"renews"`
	Rebinds      uint64 `json:"rebinds"`
	Releases     uint64 `json:"releases"`
	Declines     uint64 `json:"declines"`
	InfoRequests uint64 `json:"information_requests"`
	// Replies sent.
	Advertises uint64 `json:"advertises"`
	Replies    uint64 `json:"replies"`
	// NoAddrs: messages from a client whose MAC has no reservation,
	// answered with NoAddrsAvail or NoBinding.
	NoAddrs uint64 `json:"no_addrs"`
	// Malformed messages: bad IPv6 or UDP length or checksum, not from
	// a link-local address and a unicast MAC, a message the parser
	// refuses, a required identifier missing or a forbidden one present,
	// a server's message type.
	Malformed uint64 `json:"malformed"`
	// Relayed messages (RELAY-FORW), which this server does not serve.
	Relayed uint64 `json:"relayed"`
	// Ignored messages: for another server (its Server Identifier), an
	// INFORMATION-REQUEST with an IA, a CONFIRM with no address.
	Ignored uint64 `json:"ignored"`
	// SendFailures: replies Send refused, or that did not fit the MTU.
	SendFailures uint64 `json:"send_failures"`
}

type counters struct {
	solicits, requests, confirms, renews, rebinds atomic.Uint64
	releases, declines, infoRequests              atomic.Uint64
	advertises, replies, noAddrs                  atomic.Uint64
	malformed, relayed, ignored, sendFailures     atomic.Uint64
}

// Server is a stateful DHCPv6 server for one network that hands each
// client the address reserved for its MAC. Create it with New. Its
// methods are safe for concurrent use.
type Server struct {
	cfg       Config
	log       *zap.Logger
	now       func() time.Time
	duid      []byte // DUID-LL of ServerMAC
	linkLocal [16]byte
	leaseTime time.Duration
	bufs      sync.Pool

	stats counters

	mu     sync.Mutex
	leases map[vswitch.MAC]*lease // guarded by mu
}

// lease is one entry of the lease table, guarded by Server.mu.
type lease struct {
	addr   netip.Addr
	duid   string
	iaid   [4]byte
	expiry time.Time
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if err := checkConfig(&cfg); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := cfg.ServerMAC
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger.Named("dhcp6"),
		now:       cfg.Now,
		duid:      []byte{0, duidLL, 0, hwTypeEthernet, m[0], m[1], m[2], m[3], m[4], m[5]},
		linkLocal: cfg.LinkLocal.As16(),
		leaseTime: cfg.LeaseTime,
		leases:    map[vswitch.MAC]*lease{},
	}
	s.bufs.New = func() any { b := make([]byte, 0, replyBufSize); return &b }
	s.log.Info("dhcpv6 server up", zap.Stringer("subnet", cfg.Subnet), zap.Stringer("link_local", cfg.LinkLocal),
		zap.Stringer("mac", cfg.ServerMAC), zap.Duration("lease", cfg.LeaseTime))
	return s, nil
}

// checkConfig validates cfg and fills in defaults.
func checkConfig(cfg *Config) error {
	if err := checkAddrs(cfg); err != nil {
		return err
	}
	if err := checkOptions(cfg); err != nil {
		return err
	}
	if err := checkLimits(cfg); err != nil {
		return err
	}
	if cfg.Reservations == nil {
		return errors.New("dhcp6: no Reservations")
	}
	if cfg.Send == nil {
		return errors.New("dhcp6: no Send function")
	}
	return nil
}

// checkAddrs checks the subnet (and masks it), the server's link-local
// address and its MAC.
func checkAddrs(cfg *Config) error {
	p := cfg.Subnet
	if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() {
		return fmt.Errorf("dhcp6: subnet %s: want an IPv6 subnet like fd00:1::/64", p)
	}
	cfg.Subnet = p.Masked()
	if !cfg.LinkLocal.Is6() || !cfg.LinkLocal.IsLinkLocalUnicast() || cfg.LinkLocal.Zone() != "" {
		return fmt.Errorf("dhcp6: server address %s: want the gateway's link-local address, in fe80::/10", cfg.LinkLocal)
	}
	if cfg.ServerMAC.IsZero() || cfg.ServerMAC.IsMulticast() {
		return fmt.Errorf("dhcp6: server MAC %s: want the gateway's unicast MAC", cfg.ServerMAC)
	}
	return nil
}

// checkOptions checks what the replies' options carry: the DNS servers
// and the domain name.
func checkOptions(cfg *Config) error {
	if len(cfg.DNS) > MaxDNS {
		return fmt.Errorf("dhcp6: %d DNS servers: at most %d", len(cfg.DNS), MaxDNS)
	}
	for _, a := range cfg.DNS {
		if !a.Is6() || a.Is4In6() || a.Zone() != "" {
			return fmt.Errorf("dhcp6: DNS server %s: want an IPv6 address", a)
		}
	}
	_, err := appendDomain(nil, cfg.DomainName)
	return err
}

// checkLimits checks the MTU and the lease time, 0 meaning their
// defaults, and truncates the lease time to whole seconds.
func checkLimits(cfg *Config) error {
	if cfg.MTU == 0 {
		cfg.MTU = vswitch.DefaultMTU
	}
	if cfg.MTU < MinMTU || cfg.MTU > math.MaxUint16 {
		return fmt.Errorf("dhcp6: MTU %d: want %d to %d", cfg.MTU, MinMTU, math.MaxUint16)
	}
	if cfg.LeaseTime == 0 {
		cfg.LeaseTime = DefaultLeaseTime
	}
	if cfg.LeaseTime < time.Second || cfg.LeaseTime >= math.MaxUint32*time.Second {
		return fmt.Errorf("dhcp6: lease time %s: want 1s to %s", cfg.LeaseTime, (math.MaxUint32-1)*time.Second)
	}
	cfg.LeaseTime = cfg.LeaseTime.Truncate(time.Second)
	return nil
}

// appendDomain appends name in DNS wire format (RFC 1035, section 3.1),
// as option 24 carries it. The empty name appends nothing.
func appendDomain(b []byte, name string) ([]byte, error) {
	if name == "" {
		return b, nil
	}
	if len(name) > 253 {
		return nil, fmt.Errorf("dhcp6: domain name of %d bytes: at most 253", len(name))
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '.' {
			c := name[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return nil, fmt.Errorf("dhcp6: domain name %q: want letters, digits, '-' and '.'", name)
			}
			continue
		}
		label := name[start:i]
		if len(label) == 0 && i < len(name) || len(label) > 63 {
			return nil, fmt.Errorf("dhcp6: domain name %q: want labels of 1 to 63 characters", name)
		}
		if len(label) > 0 {
			b = append(b, byte(len(label)))
			b = append(b, label...)
		}
		start = i + 1
	}
	return append(b, 0), nil
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Solicits: c.solicits.Load(), Requests: c.requests.Load(), Confirms: c.confirms.Load(),
		Renews: c.renews.Load(), Rebinds: c.rebinds.Load(), Releases: c.releases.Load(),
		Declines: c.declines.Load(), InfoRequests: c.infoRequests.Load(),
		Advertises: c.advertises.Load(), Replies: c.replies.Load(), NoAddrs: c.noAddrs.Load(),
		Malformed: c.malformed.Load(), Relayed: c.relayed.Load(), Ignored: c.ignored.Load(),
		SendFailures: c.sendFailures.Load(),
	}
}
