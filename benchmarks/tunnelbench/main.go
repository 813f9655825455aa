// Command tunnelbench is one "host" of the tunnel benchmarks in bench.sh:
// a Switchyard switch with a tunnel port whose UDP socket lives in a host
// namespace, and a TAP port in a container namespace, built the same way
// as the tests in tunnel/ do. It runs until SIGINT or SIGTERM, then
// removes its TAP and prints the tunnel's counters on stderr.
//
//	tunnelbench -host bp_ha -local 10.213.60.1 -peer 10.213.60.2 \
//	    -container bp_ca -ip 10.213.61.2/24 [-mode secure] [-disable gso,gro]
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

	"go.uber.org/zap"

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

func run() error {
	hostNS := flag.String("host", "", "host network namespace `name` (under /var/run/netns) for the UDP socket")
	local := flag.String("local", "", "this host's underlay `address`")
	peers := flag.String("peer", "", "comma-separated underlay `addresses` of the other hosts")
	ctrNS := flag.String("container", "", "container network namespace `name` for the TAP")
	ip := flag.String("ip", "", "the container's `address/prefix`")
	mode := flag.String("mode", "vxlan", "`vxlan` or secure")
	mtu := flag.Int("mtu", 0, "container and tunnel MTU; 0: the tunnel's default for a 1500-byte underlay")
	disable := flag.String("disable", "", "comma-separated tunnel `features` to turn off: tso, gso, gro, batch, coalesce, pipeline")
	offload := flag.Bool("offload", true, "open the TAP with offloads (IFF_VNET_HDR)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile to `file` until stopped")
	flag.Parse()

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	la, err := netip.ParseAddr(*local)
	if err != nil {
		return fmt.Errorf("-local: %w", err)
	}
	prefix, err := netip.ParsePrefix(*ip)
	if err != nil {
		return fmt.Errorf("-ip: %w", err)
	}
	cfg := tunnel.Config{Name: "tunnel", VNI: 42, MTU: *mtu}
	switch *mode {
	case "vxlan":
	case "secure":
		cfg.Mode, cfg.Key, cfg.KeyID = tunnel.ModeSecure, benchKey, 1
		cfg.SenderID = uint32(la.As4()[0])<<24 | uint32(la.As4()[1])<<16 | uint32(la.As4()[2])<<8 | uint32(la.As4()[3])
	default:
		return fmt.Errorf("-mode %q: want vxlan or secure", *mode)
	}
	for _, f := range strings.Split(*disable, ",") {
		switch f {
		case "":
		case "tso":
			cfg.Disable |= tunnel.FeatureTSO
		case "gso":
			cfg.Disable |= tunnel.FeatureGSO
		case "gro":
			cfg.Disable |= tunnel.FeatureGRO
		case "batch":
			cfg.Disable |= tunnel.FeatureBatch
		case "coalesce":
			cfg.Disable |= tunnel.FeatureCoalesce
		case "pipeline":
			cfg.Disable |= tunnel.FeaturePipeline
		default:
			return fmt.Errorf("-disable: unknown feature %q (want tso, gso, gro, batch, coalesce, pipeline)", f)
		}
	}
	for _, p := range strings.Split(*peers, ",") {
		a, err := netip.ParseAddr(p)
		if err != nil {
			return fmt.Errorf("-peer: %w", err)
		}
		cfg.Peers = append(cfg.Peers, netip.AddrPortFrom(a, 0))
	}

	log, err := zap.NewDevelopment(zap.IncreaseLevel(zap.WarnLevel))
	if err != nil {
		return err
	}
	err = nsenter.Do("/var/run/netns/"+*hostNS, func() (err error) {
		cfg.Conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: la.AsSlice(), Port: int(cfg.Mode.DefaultPort())})
		return err
	})
	if err != nil {
		return err
	}
	cfg.Logger = log
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
		NetNS: "/var/run/netns/" + *ctrNS, Name: "eth0", MTU: tun.Info().MTU,
		MAC:   vswitch.MAC{0x02, 0x42, a4[0], a4[1], a4[2], a4[3]},
		Addrs: []netip.Prefix{prefix}, Offload: *offload, Configure: true, Logger: log,
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
	s := tun.Stats()
	fmt.Fprintf(os.Stderr, "tunnel %s (%v): tx %d datagrams in %d syscalls (%d GSO), %d superframes cut; rx %d datagrams in %d batches (%d GRO), %d superframes built; drops %d %v\n",
		*mode, tun.Features(), s.TXDatagrams, s.TXSyscalls, s.TXGSO, s.Segmented,
		s.RXDatagrams, s.RXBatches, s.RXGRO, s.Coalesced, s.Drops, s.DropsBy)
	return nil
}
