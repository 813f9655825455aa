package nat

import (
	"net/netip"
	"strconv"
	"strings"
)

// Rule is one rule of the network's netfilter configuration, in the shape
// iptables holds it. Rules returns the rules a Table enforces (and the
// egress MASQUERADE the gateway's egress service carries out), so that
// `switchyard nat ls` can show what Docker's iptables-save would show.
// Zero-valued match fields match anything.
type Rule struct {
	// Family is 4 (iptables) or 6 (ip6tables).
	Family int
	// Table is "nat" or "filter"; Chain the chain it is appended to.
	Table, Chain string
	// Src and Dst match addresses; NotSrc and NotDst negate them.
	Src, Dst       netip.Prefix
	NotSrc, NotDst bool
	// In and Out match the input and output interface: the network's
	// bridge, which is the network's name here. NotIn and NotOut negate.
	In, Out       string
	NotIn, NotOut bool
	// Proto and DPort match the transport protocol and destination port;
	// for ICMP, DPort is unused and the rule matches echo requests.
	Proto Proto
	DPort uint16
	// DstTypeLocal is `-m addrtype --dst-type LOCAL`.
	DstTypeLocal bool
	// CtState is `-m conntrack --ctstate` ("DNAT", "RELATED,ESTABLISHED").
	CtState string
	// Comment is `-m comment --comment`.
	Comment string
	// Jump is the target: DNAT, MASQUERADE, ACCEPT, DROP or a chain.
	Jump string
	// ToDestination is DNAT's --to-destination; a zero port means the
	// address alone.
	ToDestination netip.AddrPort
}

// String formats r as iptables-save prints it, without the table header:
//
//	-A DOCKER -d 172.17.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
func (r Rule) String() string {
	var b strings.Builder
	b.WriteString("-A " + r.Chain)
	opt := func(not bool, flag, v string) {
		if v == "" {
			return
		}
		if not {
			b.WriteString(" !")
		}
		b.WriteString(" " + flag + " " + v)
	}
	opt(r.NotSrc, "-s", prefixString(r.Src))
	opt(r.NotDst, "-d", prefixString(r.Dst))
	opt(r.NotIn, "-i", r.In)
	opt(r.NotOut, "-o", r.Out)
	switch {
	case r.Proto == ICMP && r.Family == 6:
		b.WriteString(" -p ipv6-icmp -m icmp6 --icmpv6-type 128")
	case r.Proto == ICMP:
		b.WriteString(" -p icmp -m icmp --icmp-type 8")
	case r.Proto != 0:
		b.WriteString(" -p " + r.Proto.String())
		if r.DPort != 0 {
			b.WriteString(" -m " + r.Proto.String() + " --dport " + strconv.Itoa(int(r.DPort)))
		}
	}
	if r.DstTypeLocal {
		b.WriteString(" -m addrtype --dst-type LOCAL")
	}
	if r.CtState != "" {
		b.WriteString(" -m conntrack --ctstate " + r.CtState)
	}
	if r.Comment != "" {
		b.WriteString(" -m comment --comment " + strconv.Quote(r.Comment))
	}
	b.WriteString(" -j " + r.Jump)
	if r.ToDestination.IsValid() {
		to := r.ToDestination.Addr().String()
		if r.ToDestination.Port() != 0 {
			to = r.ToDestination.String()
		}
		b.WriteString(" --to-destination " + to)
	}
	return b.String()
}

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

func host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// Rules returns the network's rules, IPv4 first, then IPv6 if the network
// has an IPv6 gateway: in the nat table the jump to DOCKER for local
// destinations, the egress MASQUERADE, Docker's hairpin MASQUERADE per
// published port and Switchyard's for every hairpinned flow, the DNAT per
// published port; in the filter table RELATED,ESTABLISHED, egress, and the
// icc rule, or for an internal network the rule that refuses egress.
func (t *Table) Rules() []Rule {
	rs := t.rules.Load()
	var out []Rule
	for _, fam := range []struct {
		v      int
		gw     netip.Addr
		subnet netip.Prefix
	}{{4, t.cfg.Gateway, t.cfg.Subnet}, {6, t.cfg.Gateway6, t.cfg.Subnet6}} {
		if fam.gw.IsValid() {
			out = t.familyRules(out, rs, fam.v, fam.gw, fam.subnet)
		}
	}
	return out
}

func (t *Table) familyRules(out []Rule, rs *ruleset, v int, gw netip.Addr, subnet netip.Prefix) []Rule {
	net := t.cfg.Network
	nat := func(r Rule) { r.Family, r.Table = v, "nat"; out = append(out, r) }
	filter := func(r Rule) { r.Family, r.Table = v, "filter"; out = append(out, r) }
	inside := subnet
	if !inside.IsValid() {
		inside = host(gw)
	}
	var ms []PortMapping
	if !t.cfg.Internal {
		for _, m := range rs.mappings {
			if m.Target.Addr().Is6() == (v == 6) {
				ms = append(ms, m)
			}
		}
	}

	if !t.cfg.Internal {
		nat(Rule{Chain: "PREROUTING", DstTypeLocal: true, Jump: "DOCKER"})
		nat(Rule{Chain: "POSTROUTING", Src: subnet, Out: net, NotOut: true, Jump: "MASQUERADE"})
	}
	for _, m := range ms {
		nat(Rule{Chain: "POSTROUTING", Src: host(m.Target.Addr()), Dst: host(m.Target.Addr()),
			Proto: m.Proto, DPort: m.Target.Port(), Jump: "MASQUERADE"})
	}
	if len(ms) > 0 {
		nat(Rule{Chain: "POSTROUTING", Out: net, CtState: "DNAT",
			Comment: "switchyard: masquerade every hairpinned flow", Jump: "MASQUERADE"})
	}
	for _, m := range ms {
		r := Rule{Chain: "DOCKER", Proto: m.Proto, DPort: m.HostPort, Jump: "DNAT", ToDestination: m.Target}
		if !wildcard(m.HostIP) {
			r.Dst = host(m.HostIP)
		}
		nat(r)
	}

	filter(Rule{Chain: "FORWARD", Out: net, CtState: "RELATED,ESTABLISHED", Jump: "ACCEPT"})
	if t.cfg.Internal {
		filter(Rule{Chain: "DOCKER-ISOLATION-STAGE-1", In: net, Dst: inside, NotDst: true, Jump: "DROP"})
	} else {
		filter(Rule{Chain: "FORWARD", In: net, Out: net, NotOut: true, Jump: "ACCEPT"})
	}
	icc := "ACCEPT"
	if t.cfg.Isolated {
		icc = "DROP"
	}
	filter(Rule{Chain: "FORWARD", In: net, Out: net, Jump: icc})
	return out
}
