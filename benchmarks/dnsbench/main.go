// Command dnsbench measures a DNS server's answer rate for one name: C
// workers, each with its own UDP socket, send a query, wait for the answer
// and send the next, for -d; it prints queries/s and the latency
// percentiles of the answers. Every query has a timeout, and the run stops
// by itself.
//
//	dnsbench -s 10.213.22.1:53 -name web -c 8 -d 5s
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"
)

func main() {
	server := flag.String("s", "", "server address IP:PORT")
	name := flag.String("name", "", "name to ask for (A)")
	workers := flag.Int("c", 8, "concurrent workers")
	dur := flag.Duration("d", 5*time.Second, "duration")
	timeout := flag.Duration("timeout", time.Second, "per-query timeout")
	flag.Parse()
	if *server == "" || *name == "" {
		fmt.Fprintln(os.Stderr, "usage: dnsbench -s IP:PORT -name NAME [-c WORKERS] [-d DURATION]")
		os.Exit(2)
	}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(*name), dns.TypeA)
	var mu sync.Mutex
	var lat []time.Duration
	var failed, empty int
	deadline := time.Now().Add(*dur)
	var wg sync.WaitGroup
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("udp", *server)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			defer conn.Close()
			c := &dns.Conn{Conn: conn}
			var mine []time.Duration
			var f, e int
			id := uint16(w << 10)
			for time.Now().Before(deadline) {
				id++
				m := q.Copy()
				m.Id = id
				start := time.Now()
				conn.SetDeadline(start.Add(*timeout))
				if err := c.WriteMsg(m); err != nil {
					f++
					continue
				}
				r, err := c.ReadMsg()
				if err != nil || r.Id != id {
					f++
					continue
				}
				if len(r.Answer) == 0 {
					e++
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			failed += f
			empty += e
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(lat) == 0 {
		fmt.Fprintf(os.Stderr, "dnsbench: no answers (%d failed)\n", failed)
		os.Exit(1)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	fmt.Printf("qps=%.0f p50_us=%.0f p99_us=%.0f answers=%d failed=%d empty=%d\n",
		float64(len(lat))/dur.Seconds(), pct(0.5), pct(0.99), len(lat), failed, empty)
}
