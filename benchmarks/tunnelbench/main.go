// Command tunnelbench is one "host" of the tunnel benchmarks in bench.sh:
// a Switchyard switch with a tunnel port whose UDP socket lives in a host
// namespace, and a TAP port in a container namespace, built the same way
// as the tests in tunnel/ do. It runs until SIGINT or SIGTERM, then
// removes its TAP and prints the tunnel's counters on stderr.
//
//	tunnelbench -host bp_ha -local 10.213.60.1 -peer 10.213.60.2 \
//	    -container bp_ca -ip 10.213.61.2/24 [-ip6 fd00:213:61::2/64] \
//	    [-mode secure] [-disable gso,gro] [-spin 100us]
//
// As in the daemon, one loop (internal/evloop) reads the TAP and the
// tunnel's socket and polls for -spin after a frame before it parks; a
// negative -spin gives each a reader goroutine of its own instead.
//
// The namespaces must exist (bench.sh creates and deletes them). It needs
// root, or CAP_NET_ADMIN and CAP_SYS_ADMIN. It prints "ready" on stdout
// once traffic can flow.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon"
	"github.com/switchyard-net/switchyard/internal/evloop"
	"github.com/switchyard-net/switchyard/internal/nsenter"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tap"
	"github.com/switchyard-net/switchyard/tunnel"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tunnelbench:", err)
		os.Exit(1)
	}
}

// benchKey is the benchmark's pre-shared key: fixed, so that both hosts
// agree without a key file. It protects nothing.
var benchKey = tunnel.Key{0: 0x5b, 31: 0x42}

// options are the command line.
type options struct {
	hostNS, local, peers, ctrNS, ip, ip6, mode, disable, cpuProfile string
	mtu                                                             int
	offload                                                         bool
	spin                                                            time.Duration
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.hostNS, "host", "", "host network namespace `name` (under /var/run/netns) for the UDP socket")
	flag.StringVar(&o.local, "local", "", "this host's underlay `address`")
	flag.StringVar(&o.peers, "peer", "", "comma-separated underlay `addresses` of the other hosts")
	flag.StringVar(&o.ctrNS, "container", "", "container network namespace `name` for the TAP")
	flag.StringVar(&o.ip, "ip", "", "the container's IPv4 `address/prefix`")
	flag.StringVar(&o.ip6, "ip6", "", "the container's IPv6 `address/prefix`, if any (IPv6 inside the overlay)")
	flag.StringVar(&o.mode, "mode", "vxlan", "`vxlan` or secure")
	flag.IntVar(&o.mtu, "mtu", 0, "container and tunnel MTU; 0: the tunnel's default for a 1500-byte underlay")
	flag.StringVar(&o.disable, "disable", "", "comma-separated tunnel `features` to turn off: tso, gso, gro, batch, coalesce, pipeline")
	flag.BoolVar(&o.offload, "offload", true, "open the TAP with offloads (IFF_VNET_HDR)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile to `file` until stopped")
	flag.DurationVar(&o.spin, "spin", daemon.DefaultSpin, "how long the loop that reads the TAP and the tunnel polls after a frame before it parks; negative: a reader goroutine per port, no loop")
	flag.Parse()
	return o
}

func run() error {
	o := parseFlags()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	la, err := netip.ParseAddr(o.local)
	if err != nil {
		return fmt.Errorf("-local: %w", err)
	}
	addrs, err := containerAddrs(o)
	if err != nil {
		return err
	}
	prefix := addrs[0]
	cfg, err := tunnelConfig(o, la)
	if err != nil {
		return err
	}
	log, err := zap.NewDevelopment(zap.IncreaseLevel(zap.WarnLevel))
	if err != nil {
		return err
	}
	cfg.Logger = log
	var loop *evloop.Loop
	if o.spin >= 0 {
		if loop, err = evloop.New(evloop.Config{Spin: o.spin, BufLen: tap.LoopBufLen}); err != nil {
			return fmt.Errorf("-spin %v: %w", o.spin, err)
		}
		defer loop.Close()
		cfg.Loop = loop
	}
	err = nsenter.Do("/var/run/netns/"+o.hostNS, func() (err error) {
		cfg.Conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: la.AsSlice(), Port: int(cfg.Mode.DefaultPort())})
		return err
	})
	if err != nil {
		return err
	}
	tun, err := tunnel.New(cfg)
	if err != nil {
		return err
	}
	sw := vswitch.New(vswitch.Config{Name: "bench", Logger: log})
	defer sw.Close()
	if _, err := sw.Attach(tun, vswitch.AttachOptions{}); err != nil {
		return err
	}
	a4 := prefix.Addr().As4()
	port, err := tap.Open(tap.Config{
		NetNS: "/var/run/netns/" + o.ctrNS, Name: "eth0", MTU: tun.Info().MTU,
		MAC:   vswitch.MAC{0x02, 0x42, a4[0], a4[1], a4[2], a4[3]},
		Addrs: addrs, Offload: o.offload, Configure: true, Logger: log, Loop: loop,
	})
	if err != nil {
		return err
	}
	defer port.Remove()
	if _, err := sw.Attach(port, vswitch.AttachOptions{}); err != nil {
		return err
	}
	fmt.Println("ready")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	report(o, tun, loop)
	return nil
}

// containerAddrs parses -ip and -ip6: the container's addresses, IPv4
// first.
func containerAddrs(o options) ([]netip.Prefix, error) {
	prefix, err := netip.ParsePrefix(o.ip)
	if err != nil || !prefix.Addr().Is4() {
		return nil, fmt.Errorf("-ip %q: want an IPv4 address/prefix like 10.213.61.2/24", o.ip)
	}
	addrs := []netip.Prefix{prefix}
	if o.ip6 != "" {
		p6, err := netip.ParsePrefix(o.ip6)
		if err != nil || !p6.Addr().Is6() || p6.Addr().Is4In6() {
			return nil, fmt.Errorf("-ip6 %q: want an IPv6 address/prefix like fd00:213:61::2/64", o.ip6)
		}
		addrs = append(addrs, p6)
	}
	return addrs, nil
}

// report prints the tunnel's and the loop's counters on stderr.
func report(o options, tun *tunnel.Port, loop *evloop.Loop) {
	s := tun.Stats()
	fmt.Fprintf(os.Stderr, "tunnel %s (%v): tx %d datagrams in %d syscalls (%d GSO), %d superframes cut; rx %d datagrams in %d batches (%d GRO), %d superframes built; drops %d %v\n",
		o.mode, tun.Features(), s.TXDatagrams, s.TXSyscalls, s.TXGSO, s.Segmented,
		s.RXDatagrams, s.RXBatches, s.RXGRO, s.Coalesced, s.Drops, s.DropsBy)
	if loop != nil {
		ls := loop.Stats()
		fmt.Fprintf(os.Stderr, "loop (spin %v): %d frames in %d events, %d wake-ups, %d empty polls while spinning, %d cut short by contention\n",
			o.spin, ls.Frames, ls.Events, ls.Wakeups, ls.Spins, ls.Contended)
	}
}

// features names the tunnel features -disable takes.
var features = map[string]tunnel.Features{
	"tso": tunnel.FeatureTSO, "gso": tunnel.FeatureGSO, "gro": tunnel.FeatureGRO,
	"batch": tunnel.FeatureBatch, "coalesce": tunnel.FeatureCoalesce, "pipeline": tunnel.FeaturePipeline,
}

// tunnelConfig is the tunnel's configuration from -mode, -mtu, -disable
// and -peer, for a host at underlay address la.
func tunnelConfig(o options, la netip.Addr) (tunnel.Config, error) {
	cfg := tunnel.Config{Name: "tunnel", VNI: 42, MTU: o.mtu}
	switch o.mode {
	case "vxlan":
	case "secure":
		a := la.As4()
		cfg.Mode, cfg.Key, cfg.KeyID = tunnel.ModeSecure, benchKey, 1
		cfg.SenderID = uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	default:
		return cfg, fmt.Errorf("-mode %q: want vxlan or secure", o.mode)
	}
	for _, f := range strings.Split(o.disable, ",") {
		if f == "" {
			continue
		}
		feat, ok := features[f]
		if !ok {
			return cfg, fmt.Errorf("-disable: unknown feature %q (want tso, gso, gro, batch, coalesce, pipeline)", f)
		}
		cfg.Disable |= feat
	}
	for _, p := range strings.Split(o.peers, ",") {
		a, err := netip.ParseAddr(p)
		if err != nil {
			return cfg, fmt.Errorf("-peer: %w", err)
		}
		cfg.Peers = append(cfg.Peers, netip.AddrPortFrom(a, 0))
	}
	return cfg, nil
}
