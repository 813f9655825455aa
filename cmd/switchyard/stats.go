package main

import (
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-net/switchyard/daemon/api"
)

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:  "stats",
		Usage: "print the daemon's counters (the same as its Prometheus metrics)",
		Flags: []cli.Flag{formatFlag},
		Action: func(c *cli.Context) error {
			cl, ctx, cancel := client(c)
			defer cancel()
			s, err := cl.Stats(ctx)
			if err != nil {
				return err
			}
			return output(c, s, func(w io.Writer) {
				fmt.Fprintln(w, "NETWORK\tPORT\tKIND\tRX\tTX\tDROPS")
				for _, n := range s.Networks {
					for _, p := range n.Ports {
						fmt.Fprintf(w, "%s\t%s\t%s\t%d/%s\t%d/%s\t%s\n", n.Network, p.Name, p.Kind,
							p.Stats.RXFrames, human(p.Stats.RXBytes), p.Stats.TXFrames, human(p.Stats.TXBytes), dropSummary(p.Stats))
					}
				}
				fmt.Fprintln(w)
				fmt.Fprintln(w, "NETWORK\tMACS\tCONNTRACK\tNAT PKTS\tEGRESS TCP\tEGRESS UDP\tPINGS\tDNS QUERIES\tDHCP LEASES")
				for _, n := range s.Networks {
					fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d open/%d\t%d open/%d\t%d/%d\t%d\t%d\n", n.Network, n.FDBEntries, n.Conntrack, n.NATTranslated,
						n.Egress.TCPActive, n.Egress.TCPTotal, n.Egress.UDPActive, n.Egress.UDPTotal, n.Egress.ICMPReplies, n.Egress.ICMPEchoes,
						n.DNSQueries, n.DHCPLeases)
				}
				fmt.Fprintln(w)
				header := true
				for _, n := range s.Networks {
					if l := n.Loop; l != nil {
						if header {
							fmt.Fprintln(w, "NETWORK\tLOOP FRAMES\tWAKEUPS\tHOLDS\tSPINS\tYIELDS\tCONTENDED\tWINDOW")
							header = false
						}
						fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%v\n", n.Network, l.Frames, l.Wakeups, l.Holds, l.Spins, l.Yields, l.Contended, time.Duration(l.WindowNS))
					}
				}
				if !header {
					fmt.Fprintln(w)
				}
				header = true
				for _, n := range s.Networks {
					if n.Routing == nil && n.ReturnPath == nil {
						continue
					}
					if header {
						fmt.Fprintln(w, "NETWORK\tROUTED\tTTL EXCEEDED\tLOOPED\tRETURN SENDERS\tRETURNED")
						header = false
					}
					var r api.RouteStats
					var rp api.ReturnPathStats
					if n.Routing != nil {
						r = *n.Routing
					}
					if n.ReturnPath != nil {
						rp = *n.ReturnPath
					}
					fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\n", n.Network, r.Forwarded, r.TTLExceeded, r.Looped, rp.Senders, rp.Forwarded)
				}
				if !header {
					fmt.Fprintln(w)
				}
				p := s.Proxy
				fmt.Fprintf(w, "published ports:\t%d listeners, tcp %d open/%d total (%d refused), %s in, %s out, udp %d flows open/%d total, %d over limit (%d/%d per port)\n",
					p.Listeners, p.TCPActive, p.TCPTotal, p.TCPRefused, human(p.TCPBytesIn), human(p.TCPBytesOut), p.UDPFlowsActive, p.UDPFlowsTotal,
					p.OverLimit, p.MaxConns, p.MaxConnsPerPort)
			})
		},
	}
}
