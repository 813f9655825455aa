package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/proxy"
)

// splitEndpoint parses "NETWORK/NAME".
func splitEndpoint(s string) (string, string, error) {
	n, e, ok := strings.Cut(s, "/")
	if !ok || n == "" || e == "" {
		return "", "", cli.Exit(fmt.Sprintf("invalid endpoint %q: want NETWORK/NAME, like web/a", s), 2)
	}
	return n, e, nil
}

func portCommand() *cli.Command {
	return &cli.Command{
		Name:  "port",
		Usage: "publish, unpublish and list ports of running endpoints",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "publish a port on a running endpoint",
				ArgsUsage: "NETWORK/NAME SPEC",
				Flags:     []cli.Flag{formatFlag},
				Action:    portAdd,
			},
			{
				Name:      "rm",
				Aliases:   []string{"remove"},
				Usage:     "unpublish a port of a running endpoint",
				ArgsUsage: "NETWORK/NAME SPEC",
				Action:    portRemove,
			},
			{
				Name:      "ls",
				Aliases:   []string{"list"},
				Usage:     "list published ports, like `docker port`",
				ArgsUsage: "[NETWORK/NAME [PORT[/PROTO]]]",
				Flags:     []cli.Flag{formatFlag},
				Action:    portList,
			},
		},
	}
}

// portAdd is `port add NETWORK/NAME SPEC`.
func portAdd(c *cli.Context) error {
	network, name, err := endpointAndSpec(c, "NETWORK/NAME SPEC   (SPEC: Docker's -p syntax, like 8443:443 or 127.0.0.1::5000/udp)")
	if err != nil {
		return err
	}
	cl, ctx, cancel := client(c)
	defer cancel()
	bs, err := cl.AddPort(ctx, network, name, c.Args().Get(1))
	if err != nil {
		return err
	}
	return output(c, bs, func(w io.Writer) {
		for _, b := range bs {
			fmt.Fprintln(w, b.Docker)
		}
	})
}

// portRemove is `port rm NETWORK/NAME SPEC`.
func portRemove(c *cli.Context) error {
	network, name, err := endpointAndSpec(c, "NETWORK/NAME SPEC")
	if err != nil {
		return err
	}
	cl, ctx, cancel := client(c)
	defer cancel()
	return cl.RemovePort(ctx, network, name, c.Args().Get(1))
}

// endpointAndSpec checks the NETWORK/NAME SPEC arguments of port add and
// rm and returns the network and the endpoint's name.
func endpointAndSpec(c *cli.Context, usage string) (string, string, error) {
	if err := needArgs(c, 2, usage); err != nil {
		return "", "", err
	}
	return splitEndpoint(c.Args().Get(0))
}

// portFilter is the PORT[/PROTO] of `port ls`; the zero value shows all.
type portFilter struct {
	port     uint16
	proto    proxy.Proto
	hasProto bool
}

func (f portFilter) match(b api.PortBinding) bool {
	return f.port == 0 || (b.ContainerPort == f.port && (!f.hasProto || b.Proto == f.proto.String()))
}

// portList is `port ls [NETWORK/NAME [PORT[/PROTO]]]`.
func portList(c *cli.Context) error {
	if c.NArg() > 2 {
		return cli.Exit("usage: switchyard port ls [NETWORK/NAME [PORT[/PROTO]]]", 2)
	}
	endpoint := c.Args().Get(0)
	if endpoint != "" {
		if _, _, err := splitEndpoint(endpoint); err != nil {
			return err
		}
	}
	var f portFilter
	if arg := c.Args().Get(1); arg != "" {
		var err error
		if f.port, f.proto, f.hasProto, err = proxy.ParsePortFilter(arg); err != nil {
			return cli.Exit(err.Error(), 2)
		}
	}
	cl, ctx, cancel := client(c)
	defer cancel()
	bs, err := cl.Ports(ctx, endpoint)
	if err != nil {
		return err
	}
	var shown []api.PortBinding
	for _, b := range bs {
		if f.match(b) {
			shown = append(shown, b)
		}
	}
	if f.port != 0 && len(shown) == 0 {
		return cli.Exit(fmt.Sprintf("no public port '%s' published for %s", c.Args().Get(1), endpoint), 1)
	}
	return output(c, shown, func(w io.Writer) {
		for _, b := range shown {
			switch {
			case f.port != 0: // as `docker port C 80`: the host address only
				fmt.Fprintln(w, hostAddr(b))
			case endpoint != "":
				fmt.Fprintln(w, b.Docker)
			default:
				fmt.Fprintf(w, "%s/%s\t%s\t%s\n", b.Network, b.Endpoint, b.Docker, b.Path)
			}
		}
	})
}

func hostAddr(b api.PortBinding) string {
	if b.HostIP.Is6() {
		return fmt.Sprintf("[%s]:%d", b.HostIP, b.HostPort)
	}
	return fmt.Sprintf("%s:%d", b.HostIP, b.HostPort)
}

func natCommand() *cli.Command {
	return &cli.Command{
		Name:  "nat",
		Usage: "show the userspace NAT rules of networks",
		Subcommands: []*cli.Command{{
			Name:      "ls",
			Aliases:   []string{"list"},
			Usage:     "print a network's rules as iptables-save would (all networks without NETWORK)",
			ArgsUsage: "[NETWORK]",
			Flags:     []cli.Flag{formatFlag},
			Action: func(c *cli.Context) error {
				cl, ctx, cancel := client(c)
				defer cancel()
				names := c.Args().Slice()
				if len(names) == 0 {
					ns, err := cl.Networks(ctx)
					if err != nil {
						return err
					}
					for _, n := range ns {
						names = append(names, n.Name)
					}
				}
				var tables []api.NATTable
				for _, name := range names {
					t, err := cl.NAT(ctx, name)
					if err != nil {
						return err
					}
					tables = append(tables, t)
				}
				return output(c, tables, func(w io.Writer) {
					for _, t := range tables {
						fmt.Fprintf(w, "# network %s: %d tracked, %d/%d packets translated, %d dropped\n",
							t.Network, t.Entries, t.TranslatedOrig, t.TranslatedReply, t.Dropped)
						for _, r := range t.Rules {
							fmt.Fprintln(w, r)
						}
					}
				})
			},
		}},
	}
}

func conntrackCommand() *cli.Command {
	return &cli.Command{
		Name:  "conntrack",
		Usage: "show tracked NAT connections",
		Subcommands: []*cli.Command{{
			Name:    "ls",
			Aliases: []string{"list"},
			Usage:   "list tracked connections, as conntrack -L prints them",
			Flags:   []cli.Flag{&cli.StringFlag{Name: "network", Usage: "only this network"}, formatFlag},
			Action: func(c *cli.Context) error {
				cl, ctx, cancel := client(c)
				defer cancel()
				es, err := cl.Conntrack(ctx, c.String("network"))
				if err != nil {
					return err
				}
				return output(c, es, func(w io.Writer) {
					for _, e := range es {
						fmt.Fprintf(w, "%s\t%s\n", e.Network, e.Entry)
					}
				})
			},
		}},
	}
}
