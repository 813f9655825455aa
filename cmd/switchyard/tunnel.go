package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-net/switchyard/daemon/api"
)

func tunnelCommand() *cli.Command {
	return &cli.Command{
		Name:  "tunnel",
		Usage: "show a network's tunnel to other hosts; add and remove peers; rotate its key",
		Subcommands: []*cli.Command{
			{
				Name:      "ls",
				Usage:     "peers, learned MACs, bytes, last seen, the cluster's hosts",
				ArgsUsage: "NETWORK",
				Flags:     []cli.Flag{formatFlag},
				Action: func(c *cli.Context) error {
					if err := needArgs(c, 1, "NETWORK"); err != nil {
						return err
					}
					cl, ctx, cancel := client(c)
					defer cancel()
					t, err := cl.Tunnel(ctx, c.Args().First())
					if err != nil {
						return err
					}
					return output(c, t, func(w io.Writer) { printTunnel(w, t) })
				},
			},
			rotateKeyCommand(),
			{
				Name:  "peer",
				Usage: "add or remove a static peer",
				Subcommands: []*cli.Command{
					{
						Name:      "add",
						Usage:     "send this network's frames to another host too",
						ArgsUsage: "NETWORK IP[:PORT]",
						Action: func(c *cli.Context) error {
							if err := needArgs(c, 2, "NETWORK IP[:PORT]"); err != nil {
								return err
							}
							cl, ctx, cancel := client(c)
							defer cancel()
							if _, err := cl.AddTunnelPeer(ctx, c.Args().Get(0), c.Args().Get(1)); err != nil {
								return err
							}
							fmt.Fprintf(c.App.Writer, "peer %s added to %s\n", c.Args().Get(1), c.Args().Get(0))
							return nil
						},
					},
					{
						Name:      "rm",
						Aliases:   []string{"remove"},
						Usage:     "stop sending to a host",
						ArgsUsage: "NETWORK IP[:PORT]",
						Action: func(c *cli.Context) error {
							if err := needArgs(c, 2, "NETWORK IP[:PORT]"); err != nil {
								return err
							}
							cl, ctx, cancel := client(c)
							defer cancel()
							if err := cl.RemoveTunnelPeer(ctx, c.Args().Get(0), c.Args().Get(1)); err != nil {
								return err
							}
							fmt.Fprintf(c.App.Writer, "peer %s removed from %s\n", c.Args().Get(1), c.Args().Get(0))
							return nil
						},
					},
				},
			},
		},
	}
}

func printTunnel(out io.Writer, t api.Tunnel) {
	enc := "not encrypted"
	if t.Encrypted {
		enc = "ChaCha20-Poly1305"
	}
	fmt.Fprintf(out, "%s: %s, VNI %d, listening on %s, inner MTU %d, %s\n", t.Network, t.Mode, t.VNI, t.Listen, t.MTU, enc)
	fmt.Fprintf(out, "received %d datagrams (%s), sent %d (%s), dropped %d%s\n",
		t.Stats.RXDatagrams, human(t.Stats.RXBytes), t.Stats.TXDatagrams, human(t.Stats.TXBytes), t.Stats.Drops, dropsBy(t.DropsBy))
	printTunnelKeys(out, t.Keys)
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "PEER\tFROM\tMACS\tRX\tTX\tLAST SEEN")
	for _, p := range t.Peers {
		from := "cluster"
		if p.Static {
			from = "static"
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d frames %s\t%d frames %s\t%s\n", p.Addr, from, p.MACs, p.RXFrames, human(p.RXBytes), p.TXFrames, human(p.TXBytes), ago(p.LastSeen))
	}
	w.Flush()
	if len(t.MACs) > 0 {
		fmt.Fprintln(out)
		w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "MAC\tBEHIND\tLAST SEEN")
		for _, m := range t.MACs {
			fmt.Fprintf(w, "%s\t%s\t%s\n", m.MAC, m.Peer, ago(m.LastSeen))
		}
		w.Flush()
	}
	if len(t.Cluster) > 0 {
		fmt.Fprintf(out, "\ncluster %s, this host %s", strings.Join(t.Cluster, ","), t.HostID)
		if !t.Joined {
			fmt.Fprint(out, " (not joined: etcd unreachable, retrying)")
		}
		fmt.Fprintln(out)
		w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "HOST\tSUBNET\tTUNNEL")
		for _, h := range t.Hosts {
			id := h.HostID
			if h.Self {
				id += " (this host)"
			}
			subnet := h.Subnet.String()
			if h.Subnet6.IsValid() {
				subnet += "," + h.Subnet6.String()
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", id, subnet, h.PublicAddr)
		}
		w.Flush()
	}
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func dropsBy(m map[string]uint64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
