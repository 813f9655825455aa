package vnettest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// fakeTB stands in for a test whose failures are checked rather than
// suffered: Fatalf records and unwinds (caught by try), Errorf records,
// and Cleanup runs when run ends.
type fakeTB struct {
	testing.TB // the real test, for TempDir and Helper
	mu         sync.Mutex
	errs       []string
	logs       []string
	failed     bool
	cleanups   []func()
	artifacts  string
}

type fatal struct{}

func newFake(t *testing.T) *fakeTB { return &fakeTB{TB: t, artifacts: t.TempDir()} }

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	panic(fatal{})
}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
	f.failed = true
}
func (f *fakeTB) Logf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}
func (f *fakeTB) Cleanup(fn func())   { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) ArtifactDir() string { return f.artifacts }

// end runs the cleanups, last first, as the testing package does.
func (f *fakeTB) end() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	f.cleanups = nil
}

func (f *fakeTB) errors() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.errs, "\n")
}

// try runs fn and reports whether it called Fatalf.
func try(fn func()) (fataled bool) {
	defer func() {
		if v := recover(); v != nil {
			if _, ok := v.(fatal); !ok {
				panic(v)
			}
			fataled = true
		}
	}()
	fn()
	return false
}

// Bad input fails the test with a message naming the part and what would
// be accepted.
func TestBadInputNamesThePart(t *testing.T) {
	cases := []struct {
		name string
		do   func(w *vnettest.World)
		want string
	}{
		{"bad subnet", func(w *vnettest.World) { w.NewNetwork("lan", "10.0.0.0/33") }, `network "lan": subnet "10.0.0.0/33"`},
		{"IPv6 subnet", func(w *vnettest.World) { w.NewNetwork("lan", "fd00::/64") }, `want an IPv4 prefix`},
		{"two networks one name", func(w *vnettest.World) { w.NewNetwork("lan", "10.0.0.0/24"); w.NewNetwork("lan", "10.1.0.0/24") }, `network "lan": a network of that name exists already`},
		{"address outside", func(w *vnettest.World) { w.NewNetwork("lan", "10.0.0.0/24").NewHostAt("a", "10.0.1.5") }, `host "a": address 10.0.1.5 is outside network lan (10.0.0.0/24)`},
		{"two hosts one address", func(w *vnettest.World) {
			n := w.NewNetwork("lan", "10.0.0.0/24")
			n.NewHostAt("a", "10.0.0.7")
			n.NewHostAt("b", "10.0.0.7")
		}, `host "b": address 10.0.0.7 on network lan is taken by a`},
		{"two hosts one name", func(w *vnettest.World) {
			n := w.NewNetwork("lan", "10.0.0.0/24")
			n.NewHost("a")
			n.NewHost("a")
		}, `host "a": a host of that name exists already`},
		{"full network", func(w *vnettest.World) {
			n := w.NewNetwork("lan", "10.0.0.0/30") // .1 gateway, .2 the only host
			n.NewHost("a")
			n.NewHost("b")
		}, `host "b": network lan (10.0.0.0/30) has no free address left`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t)
			defer f.end()
			w := vnettest.New(f)
			if !try(func() { c.do(w) }) {
				t.Fatalf("no failure; want one containing %q", c.want)
			}
			if !strings.Contains(f.errors(), c.want) {
				t.Fatalf("failure %q; want it to contain %q", f.errors(), c.want)
			}
		})
	}
}

func TestBadStagesAreRefused(t *testing.T) {
	w := vnettest.New(t)
	h := w.NewNetwork("lan", "10.0.0.0/24").NewHost("a")
	for _, c := range []struct {
		stage vnettest.Stage
		want  string
	}{
		{vnettest.Loss(1.5), "wire a up: stage Loss(1.5): loss rate 1.5 outside [0,1]"},
		{vnettest.Loss(-0.1), "loss rate -0.1 outside [0,1]"},
		{vnettest.Delay(-time.Second, 0), "stage Delay(-1s, 0s): delay and jitter must not be negative"},
		{vnettest.Delay(0, -time.Second), "must not be negative"},
		{vnettest.BurstLoss(0.1, 2), "leave probability 2 outside [0,1]"},
		{vnettest.Duplicate(7), "duplication rate 7"},
		{vnettest.Reorder(0.5, -1), "hold must not be negative"},
		{vnettest.Corrupt(-1), "corruption rate -1"},
		{vnettest.Truncate(0.5, -3), "kept length must not be negative"},
		{vnettest.MTUBlackHole(20), "mtu 20 below 68"},
		{vnettest.RateLimit(0, time.Second), "rate 0 bit/s: want more than 0"},
		{nil, "nil stage"},
	} {
		err := h.Wire().SetStages(vnettest.Up, vnettest.Delay(time.Millisecond, 0), c.stage)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("SetStages(%v): error %v, want one containing %q", c.stage, err, c.want)
		}
	}
}

// pair builds a world with two hosts on one network (seed 1 unless opts
// say otherwise), and checks they reach each other before the test
// impairs anything.
func pair(t *testing.T, opts ...vnettest.Option) (*vnettest.World, *vnettest.Host, *vnettest.Host) {
	t.Helper()
	w := vnettest.New(t, append([]vnettest.Option{vnettest.Seed(1)}, opts...)...)
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	a, b := lan.NewHost("a"), lan.NewHost("b")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.Ping(ctx, b.Addr()); err != nil {
		t.Fatalf("a ping b before any impairment: %v", err)
	}
	return w, a, b
}

// Two hosts: HTTP-free TCP and UDP through the std-lib API, by name.
func TestDialByName(t *testing.T) {
	_, a, b := pair(t)
	l, err := b.Listen("tcp", ":7000")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := l.Accept()
		if err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	c, err := a.Dial("tcp", "b:7000")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	if _, err := a.Dial("tcp", "nobody:7000"); !isNotFound(err) {
		t.Fatalf("dial of an unknown name: %v, want a not-found DNS error", err)
	}
	if _, err := a.Dial("sctp", "b:7000"); err == nil || !strings.Contains(err.Error(), `network "sctp": want tcp`) {
		t.Fatalf("dial sctp: %v", err)
	}
	if _, err := b.Listen("tcp", "10.9.9.9:80"); err == nil || !strings.Contains(err.Error(), "want the host's own address 10.0.0.3") {
		t.Fatalf("listen on a foreign address: %v", err)
	}
}

func isNotFound(err error) bool {
	var d *net.DNSError
	return errors.As(err, &d) && d.IsNotFound
}

// udpProbe sends n numbered datagrams from a to b through stages on b's
// Down direction, one at a time, each only after the previous one has
// entered b's wire, so the frames meet the stages in a fixed order. It
// returns the numbers that came out of the stages, in order.
func udpProbe(t *testing.T, a, b *vnettest.Host, n int, stages ...vnettest.Stage) []int {
	t.Helper()
	var mu sync.Mutex
	var got []int
	record := vnettest.StageFunc(func(_ *vnettest.StageContext, p vnettest.Packet, emit func(vnettest.Packet)) {
		if v, ok := probeNumber(p.Data); ok {
			mu.Lock()
			got = append(got, v)
			mu.Unlock()
		}
		emit(p)
	})
	if err := b.Wire().SetStages(vnettest.Down, append(stages, record)...); err != nil {
		t.Fatal(err)
	}
	// A listener, so that b answers no datagram with ICMP port
	// unreachable (which would make a's next Write fail unsent).
	srv, err := b.ListenPacket("udp", ":9000")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := a.Dial("udp", "b:9000")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wire := b.Wire()
	for i := range n {
		before := wire.Stats(vnettest.Down).In
		if _, err := c.Write(binary.BigEndian.AppendUint32(nil, uint32(i))); err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		waitFor(t, fmt.Sprintf("datagram %d to enter b's wire", i), func() bool { return wire.Stats(vnettest.Down).In > before })
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]int(nil), got...)
}

// probeNumber reads the number in a udpProbe datagram: IPv4, UDP to port
// 9000, four bytes of payload.
func probeNumber(f []byte) (int, bool) {
	if len(f) < 14+20+8+4 || binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[14+9] != 17 {
		return 0, false
	}
	ihl := int(f[14]&0xf) * 4
	udp := f[14+ihl:]
	if len(udp) < 12 || binary.BigEndian.Uint16(udp[2:]) != 9000 {
		return 0, false
	}
	return int(binary.BigEndian.Uint32(udp[8:])), true
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// The same seed gives the same losses; another seed, others.
func TestSeedReplaysLosses(t *testing.T) {
	run := func(seed int64) []int {
		var got []int
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			w, a, b := pair(t, vnettest.Seed(seed))
			if w.Seed() != seed {
				t.Fatalf("World seed %d, want %d", w.Seed(), seed)
			}
			got = udpProbe(t, a, b, 64, vnettest.Loss(0.5))
		})
		return got
	}
	first, again, other := run(42), run(42), run(43)
	if len(first) == 0 || len(first) == 64 {
		t.Fatalf("Loss(0.5) passed %d of 64 datagrams", len(first))
	}
	if fmt.Sprint(first) != fmt.Sprint(again) {
		t.Fatalf("seed 42 passed %v, then %v", first, again)
	}
	if fmt.Sprint(first) == fmt.Sprint(other) {
		t.Fatalf("seeds 42 and 43 passed the same datagrams %v", first)
	}
}

func TestDuplicateAndCut(t *testing.T) {
	_, a, b := pair(t)
	got := udpProbe(t, a, b, 5, vnettest.Duplicate(1))
	if fmt.Sprint(got) != "[0 0 1 1 2 2 3 3 4 4]" {
		t.Fatalf("Duplicate(1) passed %v", got)
	}
	b.Wire().Cut()
	got = udpProbe(t, a, b, 5)
	if len(got) != 0 {
		t.Fatalf("a cut wire passed %v", got)
	}
	if s := b.Wire().Stats(vnettest.Down); s.Dropped < 5 {
		t.Fatalf("cut wire counted %d drops, want 5 or more", s.Dropped)
	}
	b.Wire().Heal()
	if got := udpProbe(t, a, b, 3); fmt.Sprint(got) != "[0 1 2]" {
		t.Fatalf("healed wire passed %v", got)
	}
}

// A stage that panics fails the test, naming the wire and the stage, and
// the frame is dropped; the world goes on.
func TestPanickingStageFailsTheTest(t *testing.T) {
	f := newFake(t)
	w := vnettest.New(f)
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	a, b := lan.NewHost("a"), lan.NewHost("b")
	boom := vnettest.StageFunc(func(*vnettest.StageContext, vnettest.Packet, func(vnettest.Packet)) { panic("boom") })
	if err := b.Wire().SetStages(vnettest.Down, boom); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	a.Ping(ctx, b.Addr())
	waitFor(t, "a drop on b's wire", func() bool { return b.Wire().Stats(vnettest.Down).Dropped > 0 })
	f.end()
	if want := "vnettest: wire b down: stage StageFunc panicked: boom"; !strings.Contains(f.errors(), want) {
		t.Fatalf("failures %q, want one containing %q", f.errors(), want)
	}
}

// Delay shows in the round trip time; a lossy, reordering, duplicating
// wire still carries a TCP stream intact.
func TestDelayAndLossyTCP(t *testing.T) {
	_, a, b := pair(t)
	if err := b.Wire().Impair(vnettest.Delay(20*time.Millisecond, 0)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rtt, err := a.Ping(ctx, b.Addr())
	if err != nil || rtt < 40*time.Millisecond {
		t.Fatalf("ping over 20 ms each way: rtt %v, %v; want ≥ 40ms", rtt, err)
	}

	if err := b.Wire().SetStages(vnettest.Up, vnettest.Loss(0.05), vnettest.Reorder(0.1, 5*time.Millisecond), vnettest.Duplicate(0.05), vnettest.Delay(time.Millisecond, time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := b.Wire().SetStages(vnettest.Down, vnettest.BurstLoss(0.02, 0.5), vnettest.Corrupt(0.02), vnettest.Delay(time.Millisecond, 0)); err != nil {
		t.Fatal(err)
	}
	l, err := b.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := l.Accept()
		if err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	c, err := a.DialContext(ctx, "tcp", "b:80")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := bytes.Repeat([]byte("switchyard"), 15000)
	go c.Write(payload)
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("echo over a lossy wire: equal=%v, %v", bytes.Equal(got, payload), err)
	}
	up, down := b.Wire().Stats(vnettest.Up), b.Wire().Stats(vnettest.Down)
	if up.Dropped == 0 {
		t.Fatalf("no frame lost (up %+v, down %+v): the stages did not run", up, down)
	}
}

// Frames longer than the black hole's MTU vanish; shorter ones pass.
func TestMTUBlackHole(t *testing.T) {
	_, a, b := pair(t)
	c, err := a.Dial("udp", "b:9000")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	small := udpProbe(t, a, b, 2, vnettest.MTUBlackHole(1000))
	if len(small) != 2 {
		t.Fatalf("small datagrams: %v", small)
	}
	before := b.Wire().Stats(vnettest.Down).Dropped
	c.Write(make([]byte, 1200))
	waitFor(t, "the large datagram to be dropped", func() bool { return b.Wire().Stats(vnettest.Down).Dropped > before })
}

// A rate limit spaces frames by their transmission time: 20 datagrams of
// 1000 bytes at 8 Mbit/s leave at least 19 × 1 ms apart in all, and the
// stream that crosses it arrives whole.
func TestRateLimit(t *testing.T) {
	_, a, b := pair(t)
	var mu sync.Mutex
	var times []time.Time
	record := vnettest.StageFunc(func(_ *vnettest.StageContext, p vnettest.Packet, emit func(vnettest.Packet)) {
		if len(p.Data) > 1000 {
			mu.Lock()
			times = append(times, p.At)
			mu.Unlock()
		}
		emit(p)
	})
	if err := b.Wire().SetStages(vnettest.Down, vnettest.RateLimit(8_000_000, time.Second), record); err != nil {
		t.Fatal(err)
	}
	srv, err := b.ListenPacket("udp", ":9000")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := a.Dial("udp", "b:9000")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 20 {
		if _, err := c.Write(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 2000)
	for i := range 20 {
		srv.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := srv.ReadFrom(buf); err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if spread := times[len(times)-1].Sub(times[0]); spread < 19*time.Millisecond {
		t.Fatalf("20 frames of 1042 bytes at 8 Mbit/s left within %v, want ≥ 19ms", spread)
	}
}

// A failed test leaves a pcap of each wire in its artifact directory,
// names it in the log, and logs the seed.
func TestPcapSavedOnFailure(t *testing.T) {
	f := newFake(t)
	w := vnettest.New(f, vnettest.Seed(7))
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	a, b := lan.NewHost("a"), lan.NewHost("b")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.Ping(ctx, b.Addr()); err != nil {
		t.Fatal(err)
	}
	f.Errorf("the test under test fails")
	f.end()
	logs := strings.Join(f.logs, "\n")
	if !strings.Contains(logs, "seed 7 (replay with VNETTEST_SEED=7)") {
		t.Errorf("log %q does not name the seed", logs)
	}
	for _, h := range []string{"a", "b"} {
		name := filepath.Join(f.artifacts, h+".pcap")
		if !strings.Contains(logs, "frames of wire "+h+" saved in "+name) {
			t.Errorf("log %q does not name %s", logs, name)
		}
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		// Header, then at least ARP request, ARP reply, echo request
		// and echo reply records.
		if len(data) < 24 || binary.LittleEndian.Uint32(data) != 0xa1b2c3d4 {
			t.Fatalf("%s: not a pcap file", name)
		}
		records := 0
		for off := 24; off+16 <= len(data); records++ {
			off += 16 + int(binary.LittleEndian.Uint32(data[off+8:]))
		}
		if records < 3 {
			t.Errorf("%s holds %d frames, want ≥ 3", name, records)
		}
	}
}

// Nothing is written when the test passes.
func TestNoPcapOnSuccess(t *testing.T) {
	f := newFake(t)
	w := vnettest.New(f)
	w.NewNetwork("lan", "10.0.0.0/24").NewHost("a")
	f.end()
	if ents, _ := os.ReadDir(f.artifacts); len(ents) != 0 || len(f.logs) != 0 {
		t.Fatalf("passing test left %v and logged %q", ents, f.logs)
	}
}

// A test that forgets to close anything leaks no goroutine: the world
// goes with the test.
func TestForgottenWorldLeaksNothing(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Run("forgetful", func(t *testing.T) {
		_, a, b := pair(t)
		b.Wire().Impair(vnettest.Delay(time.Millisecond, 0))
		l, _ := b.Listen("tcp", ":80")
		_ = l
		c, err := a.Dial("tcp", "b:80")
		if err != nil {
			t.Fatal(err)
		}
		_ = c
		u, _ := a.ListenPacket("udp", ":53")
		_ = u
	})
	t.Run("forgetful with every part", func(t *testing.T) {
		w := vnettest.New(t)
		inet := w.NewNetwork("inet", "203.0.113.0/24")
		web := inet.NewHost("web")
		serveRemoteAddr(t, web, 80)
		lan := w.NewNetwork("lan", "10.0.0.0/24")
		gw := lan.NewGateway(vnettest.GatewayConfig{Uplink: inet, DHCP: true})
		h := lan.NewHost("h")
		serveRemoteAddr(t, h, 80)
		if err := gw.PublishTCP(8080, h, 80); err != nil {
			t.Fatal(err)
		}
		if err := gw.PublishUDP(8053, h, 53); err != nil {
			t.Fatal(err)
		}
		if c, err := web.Dial("udp", "203.0.113.3:8053"); err == nil {
			c.Write([]byte("a flow through the published UDP port"))
		}
		get(t, h.HTTPClient(), "http://203.0.113.2/")        // egress: a relay through the uplink
		get(t, web.HTTPClient(), "http://203.0.113.3:8080/") // a published port's relay
		east, west := w.NewNetwork("east", "10.1.0.0/24"), w.NewNetwork("west", "10.2.0.0/24")
		w.NewRouter("r", east, west)
		home := w.NewNetwork("home", "192.168.1.0/24")
		w.NewNATBox("nat", home, inet, vnettest.NATConfig{})
		get(t, home.NewHost("laptop").HTTPClient(), "http://web/")
		// Keep-alive connections, listeners and flows all left open.
	})
	goleak.VerifyNone(t, ignore)
}

// $VNETTEST_SEED replays a run; a malformed one is named.
func TestSeedFromEnvironment(t *testing.T) {
	t.Setenv(vnettest.SeedEnv, "12345")
	if s := vnettest.New(t).Seed(); s != 12345 {
		t.Fatalf("seed %d, want 12345 from $%s", s, vnettest.SeedEnv)
	}
	if s := vnettest.New(t, vnettest.Seed(3)).Seed(); s != 3 {
		t.Fatalf("seed %d, want the option's 3 over the environment's", s)
	}
	t.Setenv(vnettest.SeedEnv, "0x12")
	f := newFake(t)
	defer f.end()
	if !try(func() { vnettest.New(f) }) || !strings.Contains(f.errors(), `$VNETTEST_SEED="0x12": want a decimal integer`) {
		t.Fatalf("failure %q", f.errors())
	}
}
