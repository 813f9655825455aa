package main

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-net/switchyard/daemon/api"
)

func networkCommand() *cli.Command {
	return &cli.Command{
		Name:  "network",
		Usage: "create, list, inspect and remove networks",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create a network",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "subnet", Usage: "subnet in CIDR form, one per address family (repeatable: --subnet 10.1.0.0/24 --subnet fd00:1::/64)", DefaultText: "the next free private range"},
					&cli.StringSliceFlag{Name: "gateway", Usage: "gateway address, one per address family", DefaultText: "the first usable address"},
					&cli.StringSliceFlag{Name: "ip-range", Usage: "allocate endpoint addresses from this sub-range, one per address family"},
					&cli.BoolFlag{Name: "ipv6", Usage: "give the network an IPv6 subnet too: a /64 of the daemon's ULA pool unless --subnet names one"},
					&cli.BoolFlag{Name: "ipv4", Usage: "give the network an IPv4 subnet (--ipv4=false: IPv6 only)", Value: true, DefaultText: "true, unless only IPv6 subnets are given"},
					&cli.BoolFlag{Name: "slaac", Usage: "advertise the IPv6 /64 for stateless autoconfiguration (--slaac=false: endpoints keep only the addresses the daemon gives them, as with Docker)", Value: true},
					&cli.StringSliceFlag{Name: "aux-address", Usage: "reserve an address: name=IP (repeatable)"},
					&cli.IntFlag{Name: "mtu", Usage: "MTU of the network", DefaultText: "1500; with --tunnel, the underlay's minus the encapsulation: 1450 for vxlan, 1418 secure"},
					&cli.BoolFlag{Name: "icc", Usage: "allow traffic between endpoints (--icc=false isolates them)", Value: true},
					&cli.BoolFlag{Name: "internal", Usage: "no default route, no egress, no published ports"},
					&cli.BoolFlag{Name: "host-loopback", Usage: "let endpoints reach the host's 127.0.0.1 through --host-loopback-addr"},
					&cli.StringFlag{Name: "host-loopback-addr", Usage: "the address that leads to the host's loopback", DefaultText: "169.254.1.2"},
					&cli.StringFlag{Name: "host-interface", Usage: "make a TAP of this name in the daemon's namespace on the network, so the host reaches endpoints by address and routes the subnet (root daemon)"},
					&cli.StringFlag{Name: "host-interface-addr", Usage: "the host interface's address", DefaultText: "the subnet's last usable address"},
					&cli.StringSliceFlag{Name: "route", Usage: "another host's container subnet, routed unchanged to the host interface for the host to forward (repeatable; direct routing, no tunnel)"},
					&cli.StringFlag{Name: "routing", Usage: "direct: with --cluster, route to the other hosts' leases without a tunnel (flannel's host-gw); needs --host-interface and --public-addr"},
					&cli.StringFlag{Name: "public-addr", Usage: "with --routing direct, this host's address the other hosts route its lease to"},
					&cli.StringFlag{Name: "tunnel", Usage: "join this network on other hosts through a UDP tunnel: vxlan (Linux-compatible) or secure (encrypted)"},
					&cli.IntFlag{Name: "vni", Usage: "VXLAN network identifier, 0-16777215", DefaultText: "1"},
					&cli.StringFlag{Name: "tunnel-listen", Usage: "this host's tunnel address IP:PORT", DefaultText: "every address, port 4789; secure 4793"},
					&cli.StringSliceFlag{Name: "peer", Usage: "another host's tunnel address IP[:PORT] (repeatable)"},
					&cli.StringFlag{Name: "key-file", Usage: "the shared key of a secure tunnel (44 base64 or 64 hex characters)"},
					&cli.StringFlag{Name: "cluster", Usage: "etcd://HOST:PORT[,HOST:PORT] (etcds:// for TLS): lease this host's subnet and find peers in etcd"},
					&cli.StringFlag{Name: "etcd-cacert", Usage: "with etcds://, the CA certificates (PEM) that sign etcd's", DefaultText: "the system's"},
					&cli.StringFlag{Name: "etcd-cert", Usage: "with etcds://, this host's client certificate (PEM) for etcd's --client-cert-auth"},
					&cli.StringFlag{Name: "etcd-key", Usage: "the key of --etcd-cert (PEM)"},
					&cli.StringFlag{Name: "etcd-user", Usage: "etcd user to log in as, when etcd's auth is on"},
					&cli.StringFlag{Name: "etcd-password-file", Usage: "a file whose first line is --etcd-user's password (never the password itself on a command line)"},
					&cli.IntFlag{Name: "subnet-len", Usage: "prefix length of each host's lease with --cluster", DefaultText: "24; an IPv6-only subnet's length + 16"},
					&cli.IntFlag{Name: "subnet-len6", Usage: "prefix length of each host's IPv6 lease with --cluster on a dual-stack network", DefaultText: "as many leases as the IPv4 subnet has"},
					&cli.DurationFlag{Name: "lease-ttl", Usage: "with --cluster, how long a stopped host's lease lasts", DefaultText: "24h"},
					&cli.IntFlag{Name: "underlay-mtu", Usage: "MTU of the path between hosts", DefaultText: "1500"},
					formatFlag,
				},
				Action: func(c *cli.Context) error {
					if err := needArgs(c, 1, "NAME [--subnet CIDR]... [--gateway IP]... [--ip-range CIDR]... [--ipv6] [--ipv4=false] [--aux-address name=IP]... [--mtu N] [--icc=false] [--internal]"); err != nil {
						return err
					}
					icc := c.Bool("icc")
					req := api.NetworkCreate{
						Name: c.Args().First(), Subnets: c.StringSlice("subnet"), Gateways: c.StringSlice("gateway"),
						IPRanges: c.StringSlice("ip-range"), AuxAddresses: c.StringSlice("aux-address"), IPv6: c.Bool("ipv6"),
						MTU: c.Int("mtu"), ICC: &icc, Internal: c.Bool("internal"),
						HostLoopback: c.Bool("host-loopback"), HostLoopbackAddr: c.String("host-loopback-addr"),
						HostInterface: c.String("host-interface"), HostInterfaceAddr: c.String("host-interface-addr"), Routes: c.StringSlice("route"),
						Routing: c.String("routing"), PublicAddr: c.String("public-addr"),
						Tunnel: c.String("tunnel"), TunnelListen: c.String("tunnel-listen"), Peers: c.StringSlice("peer"),
						KeyFile: c.String("key-file"), Cluster: c.String("cluster"), SubnetLen: c.Int("subnet-len"), SubnetLen6: c.Int("subnet-len6"),
						UnderlayMTU: c.Int("underlay-mtu"), LeaseTTL: int(c.Duration("lease-ttl").Round(time.Second) / time.Second),
					}
					if c.IsSet("ipv4") {
						v4 := c.Bool("ipv4")
						req.IPv4 = &v4
					}
					if c.IsSet("slaac") {
						v := c.Bool("slaac")
						req.SLAAC = &v
					}
					if c.IsSet("vni") {
						v := c.Int("vni")
						req.VNI = &v
					}
					req.EtcdCACert, req.EtcdCert, req.EtcdKey = c.String("etcd-cacert"), c.String("etcd-cert"), c.String("etcd-key")
					req.EtcdUser, req.EtcdPasswordFile = c.String("etcd-user"), c.String("etcd-password-file")
					// The daemon reads the files: give it paths that mean the same there.
					for _, p := range []*string{&req.KeyFile, &req.EtcdCACert, &req.EtcdCert, &req.EtcdKey, &req.EtcdPasswordFile} {
						if *p == "" {
							continue
						}
						if abs, err := filepath.Abs(*p); err == nil {
							*p = abs
						}
					}
					cl, ctx, cancel := client(c)
					defer cancel()
					n, err := cl.CreateNetwork(ctx, req)
					if err != nil {
						return err
					}
					for _, w := range n.Warnings {
						fmt.Fprintln(c.App.ErrWriter, "warning: "+w)
					}
					return output(c, n, func(w io.Writer) { fmt.Fprintln(w, n.Name) })
				},
			},
			{
				Name:    "ls",
				Aliases: []string{"list"},
				Usage:   "list networks",
				Flags:   []cli.Flag{formatFlag},
				Action: func(c *cli.Context) error {
					cl, ctx, cancel := client(c)
					defer cancel()
					ns, err := cl.Networks(ctx)
					if err != nil {
						return err
					}
					return output(c, ns, func(w io.Writer) {
						fmt.Fprintln(w, "NAME\tSUBNET\tGATEWAY\tMTU\tICC\tINTERNAL\tENDPOINTS")
						for _, n := range ns {
							fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%d\n", n.Name, joinPrefixes(networkSubnets(n)), joinAddrs(networkGateways(n)), n.MTU, yesNo(n.ICC), yesNo(n.Internal), n.Endpoints)
						}
					})
				},
			},
			{
				Name:      "inspect",
				Usage:     "show one network",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{formatFlag},
				Action: func(c *cli.Context) error {
					if err := needArgs(c, 1, "NAME"); err != nil {
						return err
					}
					cl, ctx, cancel := client(c)
					defer cancel()
					n, err := cl.Network(ctx, c.Args().First())
					if err != nil {
						return err
					}
					return output(c, n, func(w io.Writer) { printNetwork(w, n) })
				},
			},
			{
				Name:      "rm",
				Aliases:   []string{"remove"},
				Usage:     "remove networks that have no endpoints",
				ArgsUsage: "NAME...",
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return cli.Exit("usage: switchyard network rm NAME...", 2)
					}
					cl, ctx, cancel := client(c)
					defer cancel()
					for _, name := range c.Args().Slice() {
						if err := cl.RemoveNetwork(ctx, name); err != nil {
							return err
						}
						fmt.Fprintln(c.App.Writer, name)
					}
					return nil
				},
			},
		},
	}
}

func printNetwork(w io.Writer, n api.Network) {
	rows := [][2]string{
		{"Name", n.Name},
		{"Subnet", joinPrefixes(networkSubnets(n))},
		{"Gateway", fmt.Sprintf("%s (%s)", joinAddrs(networkGateways(n)), n.GatewayMAC)},
		{"IP range", n.IPRange.String()},
		{"IPv6 range", ipv6Range(n)},
		{"SLAAC", yesNo(n.SLAAC)},
		{"MTU", fmt.Sprint(n.MTU)},
		{"ICC", yesNo(n.ICC)},
		{"Internal", yesNo(n.Internal)},
		{"Host loopback", hostLoopback(n)},
		{"Default", yesNo(n.Default)},
		{"Created", n.Created.Format("2006-01-02 15:04:05 MST")},
		{"Endpoints", fmt.Sprint(n.Endpoints)},
		{"Learned MACs", fmt.Sprint(n.FDBEntries)},
		{"Gateway port", fmt.Sprintf("rx %d frames %s, tx %d frames %s, drops %s",
			n.GatewayStats.RXFrames, human(n.GatewayStats.RXBytes), n.GatewayStats.TXFrames, human(n.GatewayStats.TXBytes), dropSummary(n.GatewayStats))},
		{"Egress", fmt.Sprintf("tcp %d open/%d total (%d refused, %d unreachable), udp %d open/%d total (%d refused), ping %d/%d answered (%d dropped, %d errors passed on), unreachables %d sent (%d rate-limited)",
			n.Egress.TCPActive, n.Egress.TCPTotal, n.Egress.TCPRefused, n.Egress.TCPFailed,
			n.Egress.UDPActive, n.Egress.UDPTotal, n.Egress.UDPRefused, n.Egress.ICMPReplies, n.Egress.ICMPEchoes,
			n.Egress.ICMPDropped, n.Egress.ICMPErrors, n.Egress.Unreachables, n.Egress.UnreachablesLimited)},
	}
	if d := n.DNS; d != nil {
		ups := "none: other names are refused"
		if len(d.Upstreams) > 0 {
			ups = fmt.Sprint(d.Upstreams)
		}
		rows = append(rows,
			[2]string{"DNS", fmt.Sprintf("%s:53, %d names, forwards to %s", d.Addr, d.Names, ups)},
			[2]string{"DNS queries", fmt.Sprintf("%d (%d local, %d forwarded, %d servfail, %d upstream failures)",
				d.Queries, d.Local, d.Forwarded, d.ServFail, d.UpstreamFailures)})
	}
	if hi := n.HostInterface; hi != nil {
		rows = append(rows, [2]string{"Host interface", fmt.Sprintf("%s %s (%s), rx %d frames %s, tx %d frames %s, drops %s",
			hi.Name, hi.Addr, hi.MAC, hi.Port.RXFrames, human(hi.Port.RXBytes), hi.Port.TXFrames, human(hi.Port.TXBytes), dropSummary(hi.Port))})
	}
	if c := n.DirectCluster; c != nil {
		joined := "joined"
		if !c.Joined {
			joined = "not joined (etcd unreachable; retrying)"
		}
		rows = append(rows, [2]string{"Direct routing", fmt.Sprintf("this host's lease %s of %s from %s, public address %s, %s",
			n.Subnet, c.Range, strings.Join(c.Cluster, ","), c.PublicAddr, joined)})
	}
	for _, r := range n.Routes {
		rows = append(rows, [2]string{"Routed subnet", fmt.Sprintf("%s via %s", r, n.HostInterface.Addr)})
	}
	if r := n.Routing; r != nil {
		rows = append(rows, [2]string{"Routing", fmt.Sprintf("%d forwarded, %d TTL exceeded, %d looped", r.Forwarded, r.TTLExceeded, r.Looped)})
	}
	if r := n.ReturnPath; r != nil {
		rows = append(rows, [2]string{"Return path", fmt.Sprintf("%d senders (%d learned, %d evicted, %d expired), %d replies forwarded",
			r.Senders, r.Learned, r.Evicted, r.Expired, r.Forwarded)})
	}
	if t := n.Tunnel; t != nil {
		rows = append(rows, [2]string{"Tunnel", fmt.Sprintf("%s VNI %d on %s, inner MTU %d, %d peers (switchyard tunnel ls %s)", t.Mode, t.VNI, t.Listen, t.MTU, t.PeerCount, n.Name)})
		if t.HostSubnet.IsValid() {
			lease := t.HostSubnet.String()
			if t.HostSubnet6.IsValid() {
				lease += ", " + t.HostSubnet6.String()
			}
			rows = append(rows, [2]string{"This host's lease", fmt.Sprintf("%s from %s", lease, strings.Join(t.Cluster, ","))})
		}
	}
	for _, l := range n.DHCPLeases {
		host := ""
		if l.Hostname != "" {
			host = " " + l.Hostname
		}
		label := "DHCP lease"
		if l.Addr.Is6() {
			label = "DHCPv6 lease"
		}
		rows = append(rows, [2]string{label, fmt.Sprintf("%s %s%s %s until %s", l.Addr, l.MAC, host, l.State, l.Expiry.Format("15:04:05"))})
	}
	for name, a := range n.AuxAddresses {
		rows = append(rows, [2]string{"Aux address", name + "=" + a.String()})
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%s:\t%s\n", r[0], r[1])
	}
}

func tapOwner(c *cli.Context) *int {
	if !c.IsSet("tap-owner") {
		return nil
	}
	v := c.Int("tap-owner")
	return &v
}

func hostLoopback(n api.Network) string {
	if !n.HostLoopback.IsValid() {
		return "no"
	}
	return n.HostLoopback.String() + " → 127.0.0.1"
}

func connectCommand() *cli.Command {
	return &cli.Command{
		Name:      "connect",
		Usage:     "connect a network namespace to a network through a TAP device",
		ArgsUsage: "NETWORK",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "netns", Usage: "path of the namespace, like /var/run/netns/NAME"},
			&cli.IntFlag{Name: "pid", Usage: "connect the namespace of this process"},
			&cli.StringFlag{Name: "name", Usage: "endpoint name", DefaultText: "derived from the namespace"},
			&cli.StringFlag{Name: "ip", Usage: "address to use", DefaultText: "the lowest free one"},
			&cli.StringFlag{Name: "ip6", Usage: "IPv6 address to use on a dual-stack network", DefaultText: "the lowest free one"},
			&cli.StringFlag{Name: "mac", Usage: "MAC address", DefaultText: "02:42 followed by the IPv4 address"},
			&cli.StringFlag{Name: "ifname", Usage: "interface name inside the namespace", DefaultText: "the first free ethN"},
			&cli.StringSliceFlag{Name: "publish", Aliases: []string{"p"}, Usage: "publish a port, Docker's -p syntax [ip:][hostPort:]containerPort[/proto], optionally ,path=splice or ,source=gateway (repeatable)"},
			&cli.BoolFlag{Name: "publish-all", Aliases: []string{"P"}, Usage: "publish every --expose'd port on an ephemeral host port"},
			&cli.StringSliceFlag{Name: "expose", Usage: "expose a port or range, like 9000 or 9000-9010/udp (repeatable)"},
			&cli.StringFlag{Name: "tap-only", Usage: "make a TAP of this name in the daemon's namespace for a VM (QEMU -netdev tap,ifname=NAME) instead of connecting a namespace"},
			&cli.IntFlag{Name: "tap-owner", Usage: "uid that may open the --tap-only device (an unprivileged QEMU)", Value: -1},
			&cli.BoolFlag{Name: "dhcp", Usage: "leave the interface without an address for its DHCP client (and, on IPv6, for SLAAC and DHCPv6)"},
			&cli.DurationFlag{Name: "wait", Usage: "wait up to this long for the namespace (--netns path or --pid) to appear, like 30s"},
			&cli.StringSliceFlag{Name: "alias", Usage: "another DNS name for the endpoint in this network (repeatable)"},
			&cli.BoolFlag{Name: "write-resolv-conf", Usage: "point the namespace's resolv.conf at the network's DNS server (/etc/netns/NAME/resolv.conf, or the process's /etc/resolv.conf with --pid)"},
			&cli.StringSliceFlag{Name: "allowed-address", Usage: "another source address or prefix the endpoint may send from, like 10.1.0.0/24 (repeatable; port security drops any other)"},
			&cli.BoolFlag{Name: "mac-spoofing", Usage: "let the endpoint send from other MACs than its own (a VM with guests of its own)"},
			formatFlag,
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "NETWORK (--netns PATH | --pid PID | --tap-only NAME) [--ip IP] [--name NAME] [--mac MAC] [--ifname NAME] [-p SPEC]..."); err != nil {
				return err
			}
			var tty io.Writer
			if isTerminal(os.Stderr) {
				tty = os.Stderr
			}
			if err := waitForNamespace(c.Context, c.String("netns"), c.Int("pid"), c.Duration("wait"), tty); err != nil {
				return err
			}
			cl, ctx, cancel := client(c)
			defer cancel()
			e, err := cl.Connect(ctx, c.Args().First(), api.EndpointCreate{
				NetNS: c.String("netns"), PID: c.Int("pid"), Name: c.String("name"),
				IP: c.String("ip"), IP6: c.String("ip6"), MAC: c.String("mac"), IfName: c.String("ifname"),
				Publish: c.StringSlice("publish"), PublishAll: c.Bool("publish-all"), Expose: c.StringSlice("expose"),
				TapOnly: c.String("tap-only"), DHCP: c.Bool("dhcp"), TapOwner: tapOwner(c),
				Aliases: c.StringSlice("alias"), WriteResolvConf: c.Bool("write-resolv-conf"),
				AllowedAddresses: c.StringSlice("allowed-address"), MACSpoofing: c.Bool("mac-spoofing"),
			})
			if err != nil {
				return err
			}
			return output(c, e, func(w io.Writer) {
				gw := "none (internal network)"
				if e.Gateway.IsValid() {
					gw = joinAddrs(endpointGateways(e))
				}
				fmt.Fprintf(w, "connected %s/%s: %s %s %s, gateway %s\n", e.Network, e.Name, e.IfName, joinPrefixes(endpointAddrs(e)), e.MAC, gw)
				if e.ResolvConf != "" {
					fmt.Fprintf(w, "  resolv.conf: %s (nameserver %s)\n", e.ResolvConf, e.DNS)
				}
				for _, p := range e.Ports {
					fmt.Fprintf(w, "  %s\n", p.Docker)
				}
			})
		},
	}
}

func disconnectCommand() *cli.Command {
	return &cli.Command{
		Name:      "disconnect",
		Usage:     "disconnect an endpoint: remove its TAP and free its address",
		ArgsUsage: "NETWORK ENDPOINT",
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 2, "NETWORK ENDPOINT"); err != nil {
				return err
			}
			cl, ctx, cancel := client(c)
			defer cancel()
			if err := cl.Disconnect(ctx, c.Args().Get(0), c.Args().Get(1)); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "disconnected %s/%s\n", c.Args().Get(0), c.Args().Get(1))
			return nil
		},
	}
}

func endpointCommand() *cli.Command {
	return &cli.Command{
		Name:  "endpoint",
		Usage: "list endpoints",
		Subcommands: []*cli.Command{{
			Name:    "ls",
			Aliases: []string{"list"},
			Usage:   "list endpoints with their counters",
			Flags:   []cli.Flag{&cli.StringFlag{Name: "network", Usage: "only this network"}, formatFlag},
			Action: func(c *cli.Context) error {
				cl, ctx, cancel := client(c)
				defer cancel()
				es, err := cl.Endpoints(ctx, c.String("network"))
				if err != nil {
					return err
				}
				return output(c, es, func(w io.Writer) {
					fmt.Fprintln(w, "NETWORK\tNAME\tIFNAME\tADDRESS\tMAC\tNETNS\tCONTAINER\tRX\tTX\tDROPS")
					for _, e := range es {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%s\t%d/%s\t%s\n", e.Network, e.Name, e.IfName, joinPrefixes(endpointAddrs(e)), e.MAC,
							shortNetNS(e), shortContainer(e), e.Stats.RXFrames, human(e.Stats.RXBytes), e.Stats.TXFrames, human(e.Stats.TXBytes), dropSummary(e.Stats))
					}
				})
			},
		}},
	}
}

// shortContainer is the runtime's container ID as docker ps prints it
// (12 characters), after the runtime's name: "cni:0123456789ab".
func shortContainer(e api.Endpoint) string {
	id := e.ContainerID
	if len(id) > 12 {
		id = id[:12]
	}
	switch {
	case id == "" && e.Runtime == "":
		return "-"
	case e.Runtime == "":
		return id
	case id == "":
		return e.Runtime // Docker does not tell its drivers the container
	}
	return e.Runtime + ":" + id
}

func shortNetNS(e api.Endpoint) string {
	switch e.Kind {
	case "vm":
		return "vm tap"
	case "handoff":
		if e.Sandbox != "" {
			return e.Sandbox
		}
		return "handoff tap"
	}
	if e.PID > 0 {
		return fmt.Sprintf("pid %d", e.PID)
	}
	return strings.TrimPrefix(strings.TrimPrefix(e.NetNS, "/var/run/netns/"), "/run/netns/")
}

// endpointAddrs returns an endpoint's addresses, IPv4 first.
func endpointAddrs(e api.Endpoint) []netip.Prefix {
	if e.Address6.IsValid() {
		return []netip.Prefix{e.Address, e.Address6}
	}
	return []netip.Prefix{e.Address}
}

// endpointGateways returns an endpoint's gateways, IPv4 first.
func endpointGateways(e api.Endpoint) []netip.Addr {
	if e.Gateway6.IsValid() {
		return []netip.Addr{e.Gateway, e.Gateway6}
	}
	return []netip.Addr{e.Gateway}
}

// networkSubnets returns a network's subnets, from a daemon that lists
// them or one that has only Subnet.
func networkSubnets(n api.Network) []netip.Prefix {
	if len(n.Subnets) > 0 {
		return n.Subnets
	}
	return []netip.Prefix{n.Subnet}
}

// networkGateways returns a network's gateway addresses, the first
// family's first.
func networkGateways(n api.Network) []netip.Addr {
	if n.Gateway6.IsValid() && n.Gateway6 != n.Gateway {
		return []netip.Addr{n.Gateway, n.Gateway6}
	}
	return []netip.Addr{n.Gateway}
}

// ipv6Range is the IPv6 range of a dual-stack network, or "-".
func ipv6Range(n api.Network) string {
	if n.IPRange6.IsValid() && n.Subnet6 != n.Subnet {
		return n.IPRange6.String()
	}
	return "-"
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}
