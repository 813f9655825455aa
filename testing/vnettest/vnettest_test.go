package vnettest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/vnettest"
)

func newHosts(t *testing.T, sw *vswitch.Switch, addrs ...string) []*vnettest.Host {
	t.Helper()
	var hosts []*vnettest.Host
	for i, a := range addrs {
		h, err := vnettest.NewHost(sw, vnettest.HostConfig{Name: "h" + string(rune('a'+i)), Addr: netip.MustParsePrefix(a)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
		hosts = append(hosts, h)
	}
	return hosts
}

// Three hosts on one switch: each pair exchanges TCP data in both
// directions, which takes ARP through the switch first.
func TestThreeHostsTCPAndARP(t *testing.T) {
	sw := vswitch.New(vswitch.Config{Name: "t", Logger: zaptest.NewLogger(t)})
	t.Cleanup(func() { sw.Close() })
	hosts := newHosts(t, sw, "10.9.0.2/24", "10.9.0.3/24", "10.9.0.4/24")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	payload := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(payload)
	want := sha256.Sum256(payload)

	for i, srv := range hosts {
		l, err := srv.ListenTCP(8000)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() { // echo the hash of what was received
					h := sha256.New()
					io.Copy(h, c)
					c.Write(h.Sum(nil))
					c.Close()
				}()
			}
		}()
		t.Cleanup(func() { l.Close() })
		for j, cli := range hosts {
			if i == j {
				continue
			}
			c, err := cli.DialTCP(ctx, netip.AddrPortFrom(srv.Addr(), 8000))
			if err != nil {
				t.Fatalf("%s dial %s: %v", cli.Addr(), srv.Addr(), err)
			}
			if _, err := c.Write(payload); err != nil {
				t.Fatalf("%s → %s write: %v", cli.Addr(), srv.Addr(), err)
			}
			c.(interface{ CloseWrite() error }).CloseWrite()
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			got, err := io.ReadAll(c)
			c.Close()
			if err != nil || !bytes.Equal(got, want[:]) {
				t.Fatalf("%s → %s: server hashed %x (err %v), want %x", cli.Addr(), srv.Addr(), got, err, want)
			}
		}
	}

	// Every host's MAC was learned on its own port, from ARP and TCP.
	learned := map[vswitch.MAC]string{}
	for _, e := range sw.FDB() {
		learned[e.MAC] = e.Port
	}
	for _, h := range hosts {
		if learned[h.MAC()] != h.Link().Name() {
			t.Errorf("MAC %s learned on %q, want %q", h.MAC(), learned[h.MAC()], h.Link().Name())
		}
		if st := h.Link().Stats(); st.TX.Frames == 0 || st.RX.Frames == 0 {
			t.Errorf("%s: rx=%d tx=%d frames, want both > 0", h.Link().Name(), st.RX.Frames, st.TX.Frames)
		}
	}
}

func TestPingBetweenHosts(t *testing.T) {
	sw := vswitch.New(vswitch.Config{})
	t.Cleanup(func() { sw.Close() })
	hosts := newHosts(t, sw, "10.9.0.2/24", "10.9.0.3/24")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := hosts[0].Ping(ctx, hosts[1].Addr()); err != nil {
		t.Fatal(err)
	}
	// A host that is not there does not answer.
	short, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	if _, err := hosts[0].Ping(short, netip.MustParseAddr("10.9.0.99")); err == nil {
		t.Fatal("ping of an absent host succeeded")
	}
}

func TestUDPBetweenHosts(t *testing.T) {
	sw := vswitch.New(vswitch.Config{})
	t.Cleanup(func() { sw.Close() })
	hosts := newHosts(t, sw, "10.9.0.2/24", "10.9.0.3/24")
	srv, err := hosts[1].ListenUDP(5353)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := hosts[0].DialUDP(netip.AddrPortFrom(hosts[1].Addr(), 5353))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The first datagram may wait on ARP; retry a few times.
	buf := make([]byte, 64)
	for i := 0; i < 20; i++ {
		c.Write([]byte("hello"))
		srv.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, from, err := srv.ReadFrom(buf)
		if err == nil {
			if string(buf[:n]) != "hello" || from.(interface{ String() string }).String() == "" {
				t.Fatalf("got %q from %v", buf[:n], from)
			}
			return
		}
	}
	t.Fatal("no UDP datagram arrived")
}
