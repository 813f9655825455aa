package proxy

import (
	"errors"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

var (
	ip4     = netip.MustParseAddr("127.0.0.1")
	ip6     = netip.MustParseAddr("::1")
	any4    = netip.IPv4Unspecified()
	any6    = netip.IPv6Unspecified()
	ten     = netip.MustParseAddr("10.0.0.1")
	allIPs  = netip.Addr{}
	anyPort = PortRange{}
)

func one(p uint16) PortRange { return PortRange{p, p} }

func TestParsePublish(t *testing.T) {
	tests := []struct {
		spec string
		want []Mapping
	}{
		// containerPort
		{"80", []Mapping{{allIPs, anyPort, 80, TCP}}},
		{"80/tcp", []Mapping{{allIPs, anyPort, 80, TCP}}},
		{"53/udp", []Mapping{{allIPs, anyPort, 53, UDP}}},
		{"53/UDP", []Mapping{{allIPs, anyPort, 53, UDP}}},
		{"80/Tcp", []Mapping{{allIPs, anyPort, 80, TCP}}},
		{"65535", []Mapping{{allIPs, anyPort, 65535, TCP}}},
		{"0080", []Mapping{{allIPs, anyPort, 80, TCP}}},

		// hostPort:containerPort
		{"8080:80", []Mapping{{allIPs, one(8080), 80, TCP}}},
		{"5353:53/udp", []Mapping{{allIPs, one(5353), 53, UDP}}},
		{"1:65535", []Mapping{{allIPs, one(1), 65535, TCP}}},
		{"0:80", []Mapping{{allIPs, anyPort, 80, TCP}}},
		{"000:80", []Mapping{{allIPs, anyPort, 80, TCP}}},
		{":80", []Mapping{{allIPs, anyPort, 80, TCP}}},

		// ip:hostPort:containerPort and ip::containerPort
		{"127.0.0.1:8080:80", []Mapping{{ip4, one(8080), 80, TCP}}},
		{"127.0.0.1::80", []Mapping{{ip4, anyPort, 80, TCP}}},
		{"127.0.0.1:0:80/udp", []Mapping{{ip4, anyPort, 80, UDP}}},
		{"0.0.0.0:8080:80", []Mapping{{any4, one(8080), 80, TCP}}},
		{"::80", []Mapping{{allIPs, anyPort, 80, TCP}}},
		{":8080:80", []Mapping{{allIPs, one(8080), 80, TCP}}},

		// IPv6
		{"[::1]:8080:80", []Mapping{{ip6, one(8080), 80, TCP}}},
		{"[::]::80", []Mapping{{any6, anyPort, 80, TCP}}},
		{"[::]:8080:80/udp", []Mapping{{any6, one(8080), 80, UDP}}},
		{"[::1]:8000-8010:80", []Mapping{{ip6, PortRange{8000, 8010}, 80, TCP}}},
		{"[::ffff:10.0.0.1]:8080:80", []Mapping{{ten, one(8080), 80, TCP}}},
		{"[10.0.0.1]:8080:80", []Mapping{{ten, one(8080), 80, TCP}}},
		{"[2001:db8::1]::53/udp", []Mapping{{netip.MustParseAddr("2001:db8::1"), anyPort, 53, UDP}}},

		// Ranges.
		{"8000-8002:80-82", []Mapping{
			{allIPs, one(8000), 80, TCP},
			{allIPs, one(8001), 81, TCP},
			{allIPs, one(8002), 82, TCP},
		}},
		{"8000-8010:80", []Mapping{{allIPs, PortRange{8000, 8010}, 80, TCP}}},
		{"8000-8000:80-80", []Mapping{{allIPs, one(8000), 80, TCP}}},
		{"80-82", []Mapping{
			{allIPs, anyPort, 80, TCP},
			{allIPs, anyPort, 81, TCP},
			{allIPs, anyPort, 82, TCP},
		}},
		{"80-81/udp", []Mapping{{allIPs, anyPort, 80, UDP}, {allIPs, anyPort, 81, UDP}}},
		{"0:80-81", []Mapping{{allIPs, anyPort, 80, TCP}, {allIPs, anyPort, 81, TCP}}},
		{"10.0.0.1:8000-8001:80-81", []Mapping{
			{ten, one(8000), 80, TCP},
			{ten, one(8001), 81, TCP},
		}},
		{"10.0.0.1::80-81/udp", []Mapping{
			{ten, anyPort, 80, UDP},
			{ten, anyPort, 81, UDP},
		}},
		{"[::1]:8000-8001:80-81/udp", []Mapping{
			{ip6, one(8000), 80, UDP},
			{ip6, one(8001), 81, UDP},
		}},
		{"65534-65535:1-2", []Mapping{
			{allIPs, one(65534), 1, TCP},
			{allIPs, one(65535), 2, TCP},
		}},
	}
	for _, tt := range tests {
		got, err := ParsePublish(tt.spec)
		if err != nil {
			t.Errorf("ParsePublish(%q): %v", tt.spec, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParsePublish(%q)\n got %+v\nwant %+v", tt.spec, got, tt.want)
		}
		for _, m := range got {
			checkRoundTrip(t, tt.spec, m)
		}
	}
}

// TestParsePublishWholeRange parses the largest possible spec, every port.
func TestParsePublishWholeRange(t *testing.T) {
	got, err := ParsePublish("1-65535:1-65535/udp")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 65535 {
		t.Fatalf("got %d mappings, want 65535", len(got))
	}
	for i, m := range got {
		p := uint16(i + 1)
		if m != (Mapping{allIPs, one(p), p, UDP}) {
			t.Fatalf("mapping %d = %+v, want host and container port %d/udp", i, m, p)
		}
	}
}

func checkRoundTrip(t *testing.T, spec string, m Mapping) {
	t.Helper()
	s := m.String()
	back, err := ParsePublish(s)
	if err != nil {
		t.Errorf("from %q: ParsePublish(%q) of String(): %v", spec, s, err)
		return
	}
	if len(back) != 1 || back[0] != m {
		t.Errorf("from %q: ParsePublish(%q) = %+v, want [%+v]", spec, s, back, m)
	}
}

func TestParsePublishErrors(t *testing.T) {
	tests := []struct {
		spec string
		want string // substring of the error
	}{
		{"", `invalid port spec "": want [[ip:][hostPort]:]containerPort[/proto]`},
		{"8080:80:90:1", `invalid port spec "8080:80:90:1"`},
		{"1.2.3.4:80:80:80", `invalid port spec "1.2.3.4:80:80:80"`},
		{"::1:8080:80", `put the IPv6 address in brackets, as in "[::1]:8080:80"`},
		{"2001:db8::1::80", `as in "[2001:db8::1]::80"`},
		{"8000-8010:80-85", `invalid ranges specified for container and host Ports: "8000-8010:80-85": 11 host ports for 6 container ports`},
		{"8080:80-85", `invalid ranges specified for container and host Ports: "8080:80-85"`},
		{"10.0.0.1:1-2:1-3", `invalid ranges specified for container and host Ports: "10.0.0.1:1-2:1-3"`},
		{"80/sctp", `invalid proto "sctp" in "80/sctp": want tcp or udp`},
		{"1.2.3.4:80:80/icmp", `invalid proto "icmp" in "1.2.3.4:80:80/icmp"`},
		{"80/", `invalid proto "" in "80/"`},
		{"80/udp/tcp", `invalid proto "udp/tcp"`},
		{"80/tcp ", `invalid proto "tcp "`},
		{"99999:80", `invalid host port "99999" in "99999:80": want 1-65535`},
		{"65536:80", `invalid host port "65536"`},
		{"8080/udp:80", `invalid host port "8080/udp"`},
		{"0-10:80", `invalid host port "0-10" in "0-10:80": want 1-65535`},
		{"9000-8000:80", `invalid host port "9000-8000" in "9000-8000:80": range start 9000 is greater than end 8000`},
		{"x:80", `invalid host port "x" in "x:80": want a port 1-65535 or a range`},
		{"0", `invalid containerPort "0"`},
		{"8080:0", `invalid containerPort "0" in "8080:0": want 1-65535`},
		{"00/udp", `invalid containerPort "00"`},
		{"65536", `invalid containerPort "65536" in "65536": want 1-65535`},
		{"90-80", `invalid containerPort "90-80" in "90-80": range start 90 is greater than end 80`},
		{"0-80", `invalid containerPort "0-80"`},
		{"80-", `invalid containerPort "80-"`},
		{"-80", `invalid containerPort "-80"`},
		{"80-90-100", `invalid containerPort "80-90-100"`},
		{"+80", `invalid containerPort "+80"`},
		{" 80", `invalid containerPort " 80"`},
		{"0x50", `invalid containerPort "0x50"`},
		{"8_0", `invalid containerPort "8_0"`},
		{"８０", `invalid containerPort`},
		{"8080:", `no containerPort in "8080:"`},
		{"/udp", `no containerPort in "/udp"`},
		{"1.2.3.4:80:", `no containerPort in "1.2.3.4:80:"`},
		{"1.2.3:80:80", `invalid IP address "1.2.3" in "1.2.3:80:80"`},
		{"localhost:80:80", `invalid IP address "localhost"`},
		{"01.2.3.4:80:80", `invalid IP address "01.2.3.4"`},
		{"[fe80::1%eth0]:80:80", `invalid IP address "[fe80::1%eth0]" in "[fe80::1%eth0]:80:80": IPv6 zones are not supported`},
		{"[fe80::1%25eth0]::80", `IPv6 zones are not supported`},
		{"[]:80:80", `invalid IP address "[]"`},
		{"[::1:80:80", `missing "]"`},
		{"[::1]:80", `invalid port spec "[::1]:80": want [ipv6]:hostPort:containerPort`},
		{"[::1]80:80", `invalid port spec "[::1]80:80"`},
		{"[::1]:80:80:80", `invalid port spec "[::1]:80:80:80"`},
		{"[::1]", `invalid port spec "[::1]"`},
		{"[1.2.3]:80:80", `invalid IP address "[1.2.3]"`},
	}
	for _, tt := range tests {
		got, err := ParsePublish(tt.spec)
		if err == nil {
			t.Errorf("ParsePublish(%q) = %+v, want error containing %q", tt.spec, got, tt.want)
			continue
		}
		checkSpecError(t, "ParsePublish", tt.spec, err, tt.want)
	}
}

// checkSpecError checks that err wraps ErrInvalidSpec, names the input
// and contains want.
func checkSpecError(t *testing.T, fn, spec string, err error, want string) {
	t.Helper()
	if !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("%s(%q): error %q does not wrap ErrInvalidSpec", fn, spec, err)
	}
	if !strings.Contains(err.Error(), strconv.Quote(spec)) {
		t.Errorf("%s(%q): error %q does not name the input", fn, spec, err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("%s(%q): error %q, want it to contain %q", fn, spec, err, want)
	}
}

func TestMappingString(t *testing.T) {
	tests := []struct {
		m    Mapping
		want string
	}{
		{Mapping{ContainerPort: 80}, "80/tcp"},
		{Mapping{ContainerPort: 53, Proto: UDP}, "53/udp"},
		{Mapping{HostPort: one(8080), ContainerPort: 80}, "8080:80/tcp"},
		{Mapping{HostPort: PortRange{8000, 8010}, ContainerPort: 80}, "8000-8010:80/tcp"},
		{Mapping{HostIP: ip4, ContainerPort: 80}, "127.0.0.1::80/tcp"},
		{Mapping{HostIP: ip4, HostPort: one(8080), ContainerPort: 80, Proto: UDP}, "127.0.0.1:8080:80/udp"},
		{Mapping{HostIP: any4, HostPort: one(8080), ContainerPort: 80}, "0.0.0.0:8080:80/tcp"},
		{Mapping{HostIP: ip6, HostPort: one(8080), ContainerPort: 80}, "[::1]:8080:80/tcp"},
		{Mapping{HostIP: any6, ContainerPort: 80}, "[::]::80/tcp"},
		{Mapping{HostIP: ip6, HostPort: PortRange{1, 65535}, ContainerPort: 65535}, "[::1]:1-65535:65535/tcp"},
	}
	for _, tt := range tests {
		if got := tt.m.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.m, got, tt.want)
		}
		checkRoundTrip(t, tt.want, tt.m)
	}
}

func TestPortRange(t *testing.T) {
	tests := []struct {
		r   PortRange
		str string
		n   int
	}{
		{PortRange{}, "0", 0},
		{one(80), "80", 1},
		{PortRange{8000, 8010}, "8000-8010", 11},
		{PortRange{1, 65535}, "1-65535", 65535},
		{PortRange{90, 80}, "90-80", 0},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.str {
			t.Errorf("%#v.String() = %q, want %q", tt.r, got, tt.str)
		}
		if got := tt.r.Len(); got != tt.n {
			t.Errorf("%#v.Len() = %d, want %d", tt.r, got, tt.n)
		}
		if got, want := tt.r.IsZero(), tt.r == (PortRange{}); got != want {
			t.Errorf("%#v.IsZero() = %v, want %v", tt.r, got, want)
		}
	}
}

func TestProtoString(t *testing.T) {
	for p, want := range map[Proto]string{TCP: "tcp", UDP: "udp", 7: "Proto(7)"} {
		if got := p.String(); got != want {
			t.Errorf("Proto(%d).String() = %q, want %q", uint8(p), got, want)
		}
	}
	var zero Proto
	if zero != TCP {
		t.Errorf("zero Proto is %v, want tcp (Docker's default)", zero)
	}
}

func TestParseExpose(t *testing.T) {
	tests := []struct {
		spec string
		want []ExposedPort
	}{
		{"9000", []ExposedPort{{9000, TCP}}},
		{"9000/tcp", []ExposedPort{{9000, TCP}}},
		{"9000/udp", []ExposedPort{{9000, UDP}}},
		{"9000/UDP", []ExposedPort{{9000, UDP}}},
		{"9000-9002/tcp", []ExposedPort{{9000, TCP}, {9001, TCP}, {9002, TCP}}},
		{"9000-9001/udp", []ExposedPort{{9000, UDP}, {9001, UDP}}},
		{"65535", []ExposedPort{{65535, TCP}}},
	}
	for _, tt := range tests {
		got, err := ParseExpose(tt.spec)
		if err != nil {
			t.Errorf("ParseExpose(%q): %v", tt.spec, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseExpose(%q) = %+v, want %+v", tt.spec, got, tt.want)
		}
		for _, e := range got {
			back, err := ParseExpose(e.String())
			if err != nil || len(back) != 1 || back[0] != e {
				t.Errorf("ParseExpose(%q) of String() = %+v, %v; want [%+v]", e.String(), back, err, e)
			}
		}
	}
}

func TestParseExposeErrors(t *testing.T) {
	tests := []struct {
		spec string
		want string
	}{
		{"", `no port in ""`},
		{"8080:80", `invalid port format for --expose "8080:80"`},
		{"1.2.3.4::80", `invalid port format for --expose`},
		{"0", `invalid port "0" in "0": want 1-65535`},
		{"70000", `invalid port "70000"`},
		{"9010-9000", `invalid port "9010-9000" in "9010-9000": range start 9010 is greater than end 9000`},
		{"9000/sctp", `invalid proto "sctp" in "9000/sctp": want tcp or udp`},
		{"9000/", `invalid proto ""`},
		{"/tcp", `no port in "/tcp"`},
		{"abc", `invalid port "abc"`},
	}
	for _, tt := range tests {
		got, err := ParseExpose(tt.spec)
		if err == nil {
			t.Errorf("ParseExpose(%q) = %+v, want error containing %q", tt.spec, got, tt.want)
			continue
		}
		checkSpecError(t, "ParseExpose", tt.spec, err, tt.want)
	}
}

func TestParsePortFilter(t *testing.T) {
	tests := []struct {
		s        string
		port     uint16
		proto    Proto
		hasProto bool
	}{
		{"80", 80, TCP, false},
		{"80/tcp", 80, TCP, true},
		{"53/udp", 53, UDP, true},
		{"53/UDP", 53, UDP, true},
		{"65535", 65535, TCP, false},
	}
	for _, tt := range tests {
		port, proto, hasProto, err := ParsePortFilter(tt.s)
		if err != nil {
			t.Errorf("ParsePortFilter(%q): %v", tt.s, err)
			continue
		}
		if port != tt.port || proto != tt.proto || hasProto != tt.hasProto {
			t.Errorf("ParsePortFilter(%q) = %d, %v, %v; want %d, %v, %v",
				tt.s, port, proto, hasProto, tt.port, tt.proto, tt.hasProto)
		}
	}

	bad := []struct{ s, want string }{
		{"", `invalid port "" in ""`},
		{"0", `invalid port "0" in "0": want a single port 1-65535`},
		{"80-90", `invalid port "80-90"`},
		{"65536/tcp", `invalid port "65536"`},
		{"web", `invalid port "web"`},
		{"80/sctp", `invalid proto "sctp" in "80/sctp": want tcp or udp`},
		{"80/", `invalid proto ""`},
	}
	for _, tt := range bad {
		_, _, _, err := ParsePortFilter(tt.s)
		if err == nil {
			t.Errorf("ParsePortFilter(%q) succeeded, want error containing %q", tt.s, tt.want)
			continue
		}
		checkSpecError(t, "ParsePortFilter", tt.s, err, tt.want)
	}
}

func TestFormatPortLine(t *testing.T) {
	tests := []struct {
		ctr   uint16
		proto Proto
		ip    netip.Addr
		host  uint16
		want  string
	}{
		{80, TCP, any4, 8080, "80/tcp -> 0.0.0.0:8080"},
		{80, TCP, ip4, 8080, "80/tcp -> 127.0.0.1:8080"},
		{53, UDP, ten, 5353, "53/udp -> 10.0.0.1:5353"},
		{80, TCP, any6, 8080, "80/tcp -> [::]:8080"},
		{80, TCP, ip6, 32768, "80/tcp -> [::1]:32768"},
		{53, UDP, netip.MustParseAddr("2001:db8::1"), 53, "53/udp -> [2001:db8::1]:53"},
		{80, TCP, allIPs, 8080, "80/tcp -> 0.0.0.0:8080"}, // all addresses
		{80, UDP, allIPs, 65535, "80/udp -> 0.0.0.0:65535"},
		{80, TCP, netip.MustParseAddr("::ffff:10.0.0.1"), 8080, "80/tcp -> 10.0.0.1:8080"},
		{80, TCP, netip.MustParseAddr("fe80::1%eth0"), 8080, "80/tcp -> [fe80::1%eth0]:8080"},
	}
	for _, tt := range tests {
		if got := FormatPortLine(tt.ctr, tt.proto, tt.ip, tt.host); got != tt.want {
			t.Errorf("FormatPortLine(%d, %v, %v, %d) = %q, want %q", tt.ctr, tt.proto, tt.ip, tt.host, got, tt.want)
		}
	}
}
