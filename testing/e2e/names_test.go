package e2e_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// upstream is a resolver in a test namespace, standing in for the host's:
// it answers www.example.test and big.example.test (too big for 512
// bytes of UDP) and NXDOMAIN for everything else, and records what it was
// asked.
type upstream struct {
	mu    sync.Mutex
	seen  []string // "udp www.example.test." …
	froms []string // the client address of each query
}

const bigAnswers = 40

func (u *upstream) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	name := strings.ToLower(q.Question[0].Name)
	u.mu.Lock()
	u.seen = append(u.seen, w.LocalAddr().Network()+" "+name)
	u.froms = append(u.froms, w.RemoteAddr().String())
	u.mu.Unlock()
	switch {
	case name == "www.example.test." && q.Question[0].Qtype == dns.TypeA:
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A: net.IPv4(192, 0, 2, 10)})
	case name == "big.example.test." && q.Question[0].Qtype == dns.TypeA:
		for i := range bigAnswers {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A: net.IPv4(192, 0, 2, byte(100+i))})
		}
	case name == "www.example.test." || name == "big.example.test.":
	default:
		m.Rcode = dns.RcodeNameError
	}
	if w.LocalAddr().Network() == "udp" {
		size := dns.MinMsgSize
		if o := q.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

// from returns the client address of each query, in order.
func (u *upstream) from() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.froms...)
}

func (u *upstream) asked() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

// startUpstream serves u on addr:53, UDP and TCP, inside ns.
func startUpstream(t *testing.T, ns *netnstest.NS, addr string) *upstream {
	t.Helper()
	u := &upstream{}
	pc, err := ns.ListenPacket(addr + ":53")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ns.Listen(addr + ":53")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: u}, {Listener: l, Handler: u}} {
		s := s
		go s.ActivateAndServe()
		t.Cleanup(func() { s.Shutdown() })
	}
	return u
}

// query asks server from inside ns, over "udp" or "tcp", without EDNS0 (so
// a UDP answer is limited to 512 bytes).
func query(t *testing.T, ns *netnstest.NS, proto, server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: proto, Timeout: 5 * time.Second}
	var r *dns.Msg
	err := ns.Do(func() (err error) {
		r, _, err = c.Exchange(m, net.JoinHostPort(server, "53"))
		return err
	})
	if err != nil {
		t.Fatalf("%s query for %s to %s from %s: %v", proto, name, server, ns.Name, err)
	}
	return r
}

func aRecords(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

// getent resolves name the way a program in the namespace does: glibc,
// with the resolv.conf that `ip netns exec` mounts from /etc/netns/NAME.
func getent(ns *netnstest.NS, name string) (string, error) {
	out, err := exec.Command("ip", "netns", "exec", ns.Name, "getent", "ahostsv4", name).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("getent ahostsv4 %s: %w: %s", name, err, out)
	}
	if f := strings.Fields(string(out)); len(f) > 0 {
		return f[0], nil
	}
	return "", fmt.Errorf("getent ahostsv4 %s: no output", name)
}

// Names on a user-defined network: endpoint names and aliases answered by
// the gateway, within the network only and never asked upstream; other
// names forwarded to the host's resolver (here one in a test namespace),
// over TCP when the answer does not fit in UDP; resolv.conf written only
// when asked, and removed on disconnect.
func TestDNS(t *testing.T) {
	var up *upstream
	w := newWorld(t, func(w *world) {
		up = startUpstream(t, w.inet, inetAddr)
		if err := os.WriteFile(w.d.ResolvConf, []byte("nameserver "+inetAddr+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	web, c, o, plain := netnstest.New(t), netnstest.New(t), netnstest.New(t), netnstest.New(t)
	w.d.MustRun("network", "create", "front", "--subnet", "10.250.10.0/24")
	w.d.MustRun("network", "create", "back", "--subnet", "10.250.11.0/24")
	w.d.MustRun("connect", "front", "--netns", web.Path, "--name", "web", "--alias", "cache", "--alias", "db.internal")
	out := w.d.MustRun("connect", "front", "--netns", c.Path, "--name", "c", "--write-resolv-conf")
	if !strings.Contains(out, "/etc/netns/"+c.Name+"/resolv.conf") {
		t.Errorf("connect --write-resolv-conf printed %q, want the file it wrote", out)
	}
	w.d.MustRun("connect", "back", "--netns", o.Path, "--name", "o", "--write-resolv-conf")
	w.d.MustRun("connect", "front", "--netns", plain.Path, "--name", "plain")
	if _, err := os.Stat("/etc/netns/" + plain.Name + "/resolv.conf"); err == nil {
		t.Error("connect without --write-resolv-conf wrote a resolv.conf")
	}

	// Names, aliases and NAME.NETWORK through glibc and the written resolv.conf.
	for name, want := range map[string]string{"web": "10.250.10.2", "cache": "10.250.10.2", "db.internal": "10.250.10.2",
		"web.front": "10.250.10.2", "c": "10.250.10.3", "www.example.test": "192.0.2.10"} {
		got, err := getent(c, name)
		if err != nil || got != want {
			t.Errorf("from c, %s resolves to %q (%v), want %s", name, got, err, want)
		}
	}
	// AAAA for an IPv4-only name: it exists, with no addresses of that family.
	if r := query(t, c, "udp", "10.250.10.1", "web", dns.TypeAAAA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("AAAA web: rcode %s, %d answers; want NOERROR with none", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	// Reverse lookup of an endpoint's address.
	if r := query(t, c, "udp", "10.250.10.1", "2.10.250.10.in-addr.arpa", dns.TypePTR); len(r.Answer) == 0 {
		t.Errorf("PTR for 10.250.10.2: no answer (rcode %s)", dns.RcodeToString[r.Rcode])
	}
	for _, q := range up.asked() {
		for _, local := range []string{" web.", " cache.", " db.internal.", " web.front.", " c.", "in-addr.arpa"} {
			if strings.Contains(q, local) {
				t.Errorf("an in-network name reached the upstream resolver: %q", q)
			}
		}
	}

	// TCP fallback: too big for 512 bytes of UDP, so the gateway answers
	// with TC set; the same query over TCP gets every record. The
	// gateway, asked over UDP, retried the upstream over TCP itself.
	if r := query(t, c, "udp", "10.250.10.1", "big.example.test", dns.TypeA); !r.Truncated || len(r.Answer) >= bigAnswers {
		t.Errorf("UDP answer for big.example.test: TC=%v with %d records, want TC with fewer than %d", r.Truncated, len(r.Answer), bigAnswers)
	}
	if r := query(t, c, "tcp", "10.250.10.1", "big.example.test", dns.TypeA); len(aRecords(r)) != bigAnswers {
		t.Errorf("TCP answer for big.example.test: %d A records, want %d", len(aRecords(r)), bigAnswers)
	}
	if !containsString(up.asked(), "tcp big.example.test.") {
		t.Errorf("the upstream was never asked over TCP; it saw %q", up.asked())
	}

	// Isolation: back's endpoint cannot resolve front's names.
	if got, err := getent(o, "web"); err == nil {
		t.Errorf("from o on back, web resolved to %s: names leak between networks", got)
	}
	if r := query(t, o, "udp", "10.250.11.1", "cache", dns.TypeA); len(r.Answer) != 0 {
		t.Errorf("from o on back, cache answered %v", aRecords(r))
	}
	// The default network resolves no names, like Docker's bridge.
	b1, b2 := netnstest.New(t), netnstest.New(t)
	w.d.MustRun("connect", "bridge", "--netns", b1.Path, "--name", "b1")
	w.d.MustRun("connect", "bridge", "--netns", b2.Path, "--name", "b2")
	if r := query(t, b1, "udp", "172.17.0.1", "b2", dns.TypeA); len(r.Answer) != 0 || r.Rcode != dns.RcodeNameError {
		t.Errorf("on the default network, b2 answered %v (rcode %s), want NXDOMAIN from upstream", aRecords(r), dns.RcodeToString[r.Rcode])
	}

	var n struct {
		DNS struct {
			Names            int `json:"names"`
			Local, Forwarded uint64
		} `json:"dns"`
	}
	if err := json.Unmarshal([]byte(w.d.MustRun("network", "inspect", "front", "--format", "json")), &n); err != nil {
		t.Fatal(err)
	}
	if n.DNS.Names != 5 || n.DNS.Local == 0 || n.DNS.Forwarded == 0 {
		t.Errorf("front's DNS: %+v, want 5 names (web, cache, db.internal, c, plain) and local and forwarded queries", n.DNS)
	}

	// Disconnect removes the endpoint's name and the resolv.conf it wrote.
	w.d.MustRun("disconnect", "front", "web")
	if r := query(t, c, "udp", "10.250.10.1", "cache", dns.TypeA); len(r.Answer) != 0 {
		t.Errorf("cache still resolves to %v after web disconnected", aRecords(r))
	}
	w.d.MustRun("disconnect", "front", "c")
	w.d.MustRun("disconnect", "back", "o")
	for _, ns := range []*netnstest.NS{c, o} {
		if _, err := os.Stat("/etc/netns/" + ns.Name + "/resolv.conf"); err == nil {
			t.Errorf("disconnect left the resolv.conf it wrote for %s", ns.Name)
		}
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
