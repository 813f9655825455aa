package nat

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func rulesText(tb *Table) string {
	var b strings.Builder
	for _, r := range tb.Rules() {
		b.WriteString(r.Table + "/" + string(rune('0'+r.Family)) + " " + r.String() + "\n")
	}
	return b.String()
}

func TestRules(t *testing.T) {
	ms := []PortMapping{
		{Proto: TCP, HostIP: gw4, HostPort: 8080, Target: ap(b4, 80)},
		{Proto: UDP, HostPort: 5353, Target: ap(b4, 53)},
		{Proto: TCP, HostIP: netip.MustParseAddr("::"), HostPort: 8080, Target: ap(b6, 80)},
		{Proto: ICMP, HostIP: host4, Target: ap(b4, 0)},
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"default", func(*Config) {}, `
nat/4 -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
nat/4 -A POSTROUTING -s 172.18.0.0/16 ! -o web -j MASQUERADE
nat/4 -A POSTROUTING -s 172.18.0.3/32 -d 172.18.0.3/32 -p tcp -m tcp --dport 80 -j MASQUERADE
nat/4 -A POSTROUTING -s 172.18.0.3/32 -d 172.18.0.3/32 -p udp -m udp --dport 53 -j MASQUERADE
nat/4 -A POSTROUTING -s 172.18.0.3/32 -d 172.18.0.3/32 -p icmp -m icmp --icmp-type 8 -j MASQUERADE
nat/4 -A POSTROUTING -o web -m conntrack --ctstate DNAT -m comment --comment "switchyard: masquerade every hairpinned flow" -j MASQUERADE
nat/4 -A DOCKER -d 172.18.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.3:80
nat/4 -A DOCKER -p udp -m udp --dport 5353 -j DNAT --to-destination 172.18.0.3:53
nat/4 -A DOCKER -d 192.168.1.10/32 -p icmp -m icmp --icmp-type 8 -j DNAT --to-destination 172.18.0.3
filter/4 -A FORWARD -o web -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
filter/4 -A FORWARD -i web ! -o web -j ACCEPT
filter/4 -A FORWARD -i web -o web -j ACCEPT
nat/6 -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
nat/6 -A POSTROUTING -s fd00:18::/64 ! -o web -j MASQUERADE
nat/6 -A POSTROUTING -s fd00:18::3/128 -d fd00:18::3/128 -p tcp -m tcp --dport 80 -j MASQUERADE
nat/6 -A POSTROUTING -o web -m conntrack --ctstate DNAT -m comment --comment "switchyard: masquerade every hairpinned flow" -j MASQUERADE
nat/6 -A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:18::3]:80
filter/6 -A FORWARD -o web -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
filter/6 -A FORWARD -i web ! -o web -j ACCEPT
filter/6 -A FORWARD -i web -o web -j ACCEPT
`},
		{"icc=false, v4 only", func(c *Config) { c.Isolated, c.Gateway6 = true, netip.Addr{} }, `
nat/4 -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
nat/4 -A POSTROUTING -s 172.18.0.0/16 ! -o web -j MASQUERADE
nat/4 -A POSTROUTING -s 172.18.0.3/32 -d 172.18.0.3/32 -p tcp -m tcp --dport 80 -j MASQUERADE
nat/4 -A POSTROUTING -s 172.18.0.3/32 -d 172.18.0.3/32 -p udp -m udp --dport 53 -j MASQUERADE
nat/4 -A POSTROUTING -s 172.18.0.3/32 -d 172.18.0.3/32 -p icmp -m icmp --icmp-type 8 -j MASQUERADE
nat/4 -A POSTROUTING -o web -m conntrack --ctstate DNAT -m comment --comment "switchyard: masquerade every hairpinned flow" -j MASQUERADE
nat/4 -A DOCKER -d 172.18.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.3:80
nat/4 -A DOCKER -p udp -m udp --dport 5353 -j DNAT --to-destination 172.18.0.3:53
nat/4 -A DOCKER -d 192.168.1.10/32 -p icmp -m icmp --icmp-type 8 -j DNAT --to-destination 172.18.0.3
filter/4 -A FORWARD -o web -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
filter/4 -A FORWARD -i web ! -o web -j ACCEPT
filter/4 -A FORWARD -i web -o web -j DROP
`},
		{"internal, no subnet", func(c *Config) { c.Internal, c.Gateway6, c.Subnet = true, netip.Addr{}, netip.Prefix{} }, `
filter/4 -A FORWARD -o web -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
filter/4 -A DOCKER-ISOLATION-STAGE-1 ! -d 172.18.0.1/32 -i web -j DROP
filter/4 -A FORWARD -i web -o web -j ACCEPT
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.mod(&cfg)
			tb := newTestTable(t, cfg, ms)
			if got := rulesText(tb); got != tc.want[1:] {
				t.Errorf("Rules:\n%s\nwant:\n%s", got, tc.want[1:])
			}
		})
	}
}

// TestEntryString: the conntrack -L form of each kind of entry.
func TestEntryString(t *testing.T) {
	ms := append(testMappings(), PortMapping{Proto: ICMP, HostIP: host6, Target: ap(b6, 0)})
	tb := newTestTable(t, testConfig(), ms)
	now := sec(10)
	fromA, fromB := establish(t, tb, 100)
	tb.Process(fromA, now)
	tb.Process(fromB, now)
	tb.Process(udpDgram(ap(a4, 50000), ap(host4, 5353), []byte("q"), false), now)
	tb.Process(echo(a6, host6, true, 7, 1), now)

	var got []string
	for _, e := range tb.Entries(now + int64(time.Second)) {
		got = append(got, e.String())
	}
	want := []string{
		"tcp      6 431999 ESTABLISHED src=172.18.0.2 dst=172.18.0.1 sport=40000 dport=8080 packets=3 bytes=220 src=172.18.0.3 dst=172.18.0.1 sport=80 dport=61000 packets=2 bytes=180 [ASSURED]",
		"udp      17 29 src=172.18.0.2 dst=192.168.1.10 sport=50000 dport=5353 packets=1 bytes=29 [UNREPLIED] src=172.18.0.3 dst=172.18.0.1 sport=53 dport=61001 packets=0 bytes=0",
		"ipv6-icmp 58 29 src=fd00:18::2 dst=2001:db8::10 type=128 code=0 id=7 packets=1 bytes=60 [UNREPLIED] src=fd00:18::3 dst=fd00:18::1 type=129 code=0 id=61002 packets=0 bytes=0",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
