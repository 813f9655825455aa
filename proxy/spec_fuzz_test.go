package proxy

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// publishSeeds covers every form ParsePublish accepts and the near misses
// it must reject. They run as plain tests under `go test`.
var publishSeeds = []string{
	"80", "80/tcp", "53/udp", "53/UDP", "0080", "65535", "0", "65536",
	"8080:80", "0:80", ":80", "::80", "99999:80", "8080:", "8080/udp:80",
	"127.0.0.1:8080:80", "127.0.0.1::80", "0.0.0.0:8080:80/udp", "1.2.3:80:80",
	"[::1]:8080:80", "[::]::80", "[::ffff:10.0.0.1]:1:1", "[10.0.0.1]::1",
	"[fe80::1%eth0]:80:80", "[]:80:80", "[::1:80:80", "[::1]:80", "::1:8080:80",
	"8000-8010:80-90", "8000-8010:80", "80-90", "10.0.0.1:8000-8001:80-81",
	"[::1]::80-81/udp", "8000-8010:80-85", "90-80", "0-10:80", "80-90-100",
	"80/sctp", "80/", "80/udp/tcp", "8080:80:90:1", "1-65535", "1-65535:1-65535",
}

// FuzzParsePublish checks that ParsePublish never panics; that what it
// accepts is well formed and prints back to itself; that what it rejects
// is reported with ErrInvalidSpec and names the input; and that on specs
// without a host part it agrees with ParseExpose, which parses the same
// container-port grammar on its own path.
func FuzzParsePublish(f *testing.F) {
	for _, s := range publishSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		ms, err := ParsePublish(spec)
		if !strings.Contains(spec, ":") {
			checkAgreesWithExpose(t, spec, ms, err)
		}
		if err != nil {
			checkPublishError(t, spec, ms, err)
			return
		}
		if len(ms) == 0 {
			t.Fatalf("ParsePublish(%q) accepted the spec but returned no mappings", spec)
		}
		for i := range ms {
			checkMapping(t, spec, ms, i)
		}
	})
}

// checkAgreesWithExpose fails unless ParseExpose accepts what ParsePublish
// accepted (ms, err) of a spec without a host part, with the same ports.
func checkAgreesWithExpose(t *testing.T, spec string, ms []Mapping, err error) {
	es, eerr := ParseExpose(spec)
	if (err == nil) != (eerr == nil) {
		t.Fatalf("ParsePublish(%q) error %v, but ParseExpose error %v", spec, err, eerr)
	}
	if err != nil {
		return
	}
	if len(es) != len(ms) {
		t.Fatalf("ParsePublish(%q) gave %d mappings, ParseExpose %d ports", spec, len(ms), len(es))
	}
	for i := range ms {
		if ms[i].ContainerPort != es[i].Port || ms[i].Proto != es[i].Proto ||
			!ms[i].HostPort.IsZero() || ms[i].HostIP.IsValid() {
			t.Fatalf("ParsePublish(%q)[%d] = %+v, ParseExpose = %+v", spec, i, ms[i], es[i])
		}
	}
}

// checkPublishError fails unless ParsePublish's error wraps
// ErrInvalidSpec, names the input and comes without mappings.
func checkPublishError(t *testing.T, spec string, ms []Mapping, err error) {
	if !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("ParsePublish(%q): error %q does not wrap ErrInvalidSpec", spec, err)
	}
	if !strings.Contains(err.Error(), strconv.Quote(spec)) {
		t.Fatalf("ParsePublish(%q): error %q does not name the input", spec, err)
	}
	if ms != nil {
		t.Fatalf("ParsePublish(%q) returned mappings with error %v", spec, err)
	}
}

// checkMapping fails unless ms[i] is well formed, follows ms[i-1], and
// prints to a spec that parses back to it alone.
func checkMapping(t *testing.T, spec string, ms []Mapping, i int) {
	m := ms[i]
	if m.ContainerPort == 0 {
		t.Fatalf("ParsePublish(%q)[%d] = %+v: container port 0", spec, i, m)
	}
	if m.Proto != TCP && m.Proto != UDP {
		t.Fatalf("ParsePublish(%q)[%d] = %+v: bad proto", spec, i, m)
	}
	if h := m.HostPort; !h.IsZero() && (h.Start == 0 || h.Start > h.End) {
		t.Fatalf("ParsePublish(%q)[%d] = %+v: bad host range", spec, i, m)
	}
	if len(ms) > 1 && m.HostPort.Len() > 1 {
		t.Fatalf("ParsePublish(%q)[%d] = %+v: host range with several container ports", spec, i, m)
	}
	if m.HostIP.Zone() != "" || m.HostIP.Is4In6() {
		t.Fatalf("ParsePublish(%q)[%d] = %+v: zoned or IPv4-mapped host address", spec, i, m)
	}
	if i > 0 {
		checkConsecutive(t, spec, ms[i-1], m, i)
	}
	s := m.String()
	back, err := ParsePublish(s)
	if err != nil {
		t.Fatalf("ParsePublish(%q)[%d].String() = %q, which does not parse: %v", spec, i, s, err)
	}
	if len(back) != 1 || back[0] != m {
		t.Fatalf("ParsePublish(%q)[%d].String() = %q, which parses to %+v, want [%+v]", spec, i, s, back, m)
	}
}

// checkConsecutive fails unless m, the i-th mapping of spec, follows prev.
func checkConsecutive(t *testing.T, spec string, prev, m Mapping, i int) {
	if m.ContainerPort != prev.ContainerPort+1 || m.Proto != prev.Proto || m.HostIP != prev.HostIP {
		t.Fatalf("ParsePublish(%q): mappings %d and %d are not consecutive: %+v, %+v", spec, i-1, i, prev, m)
	}
	if !m.HostPort.IsZero() && m.HostPort.Start != prev.HostPort.Start+1 {
		t.Fatalf("ParsePublish(%q): host ports %d and %d are not consecutive: %+v, %+v", spec, i-1, i, prev, m)
	}
}

// FuzzParseExpose checks that ParseExpose never panics, that what it
// accepts is a run of consecutive nonzero ports that print back to
// themselves, and that its errors wrap ErrInvalidSpec and name the input.
func FuzzParseExpose(f *testing.F) {
	for _, s := range []string{
		"9000", "9000/udp", "9000/TCP", "9000-9010/tcp", "0", "9010-9000",
		"9000/sctp", "9000/", "/tcp", "8080:80", "", "1-65535/udp", "09000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		es, err := ParseExpose(spec)
		if err != nil {
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), strconv.Quote(spec)) {
				t.Fatalf("ParseExpose(%q): error %q must wrap ErrInvalidSpec and name the input", spec, err)
			}
			return
		}
		if len(es) == 0 {
			t.Fatalf("ParseExpose(%q) accepted the spec but returned no ports", spec)
		}
		for i, e := range es {
			if e.Port == 0 || (e.Proto != TCP && e.Proto != UDP) {
				t.Fatalf("ParseExpose(%q)[%d] = %+v", spec, i, e)
			}
			if i > 0 && (e.Port != es[i-1].Port+1 || e.Proto != es[i-1].Proto) {
				t.Fatalf("ParseExpose(%q): ports %d and %d are not consecutive: %+v, %+v", spec, i-1, i, es[i-1], e)
			}
			back, err := ParseExpose(e.String())
			if err != nil || len(back) != 1 || back[0] != e {
				t.Fatalf("ParseExpose(%q)[%d].String() = %q, which parses to %+v, %v", spec, i, e.String(), back, err)
			}
		}
	})
}

// FuzzParsePortFilter checks that ParsePortFilter never panics and that
// what it accepts prints back to itself.
func FuzzParsePortFilter(f *testing.F) {
	for _, s := range []string{"80", "80/tcp", "53/UDP", "0", "80-90", "80/", "65536", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		port, proto, hasProto, err := ParsePortFilter(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Fatalf("ParsePortFilter(%q): error %q must wrap ErrInvalidSpec and name the input", s, err)
			}
			return
		}
		if port == 0 || (proto != TCP && proto != UDP) || (!hasProto && proto != TCP) {
			t.Fatalf("ParsePortFilter(%q) = %d, %v, %v", s, port, proto, hasProto)
		}
		canon := strconv.Itoa(int(port)) + "/" + proto.String()
		p2, proto2, has2, err := ParsePortFilter(canon)
		if err != nil || p2 != port || proto2 != proto || !has2 {
			t.Fatalf("ParsePortFilter(%q) of %q = %d, %v, %v, %v", canon, s, p2, proto2, has2, err)
		}
	})
}

// FuzzParseLocalPortRange checks that the ip_local_port_range parser never
// panics and returns only ordered ranges of nonzero ports.
func FuzzParseLocalPortRange(f *testing.F) {
	for _, s := range []string{"32768\t60999\n", "1 65535", "60999 32768", "0 1", "5", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseLocalPortRange(s)
		if err != nil {
			return
		}
		if r.Start == 0 || r.Start > r.End {
			t.Fatalf("parseLocalPortRange(%q) = %v", s, r)
		}
		canon := strconv.Itoa(int(r.Start)) + "\t" + strconv.Itoa(int(r.End)) + "\n"
		if back, err := parseLocalPortRange(canon); err != nil || back != r {
			t.Fatalf("parseLocalPortRange(%q) of %q = %v, %v; want %v", canon, s, back, err, r)
		}
	})
}
