package tap_test

import (
	"strings"
	"testing"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tap"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// A LinkOnly device gets its MAC and MTU and nothing else: down, with no
// address and no route, for a runtime to move into its sandbox. Moved to
// another namespace and renamed, as Docker does, it still carries frames
// through the port's descriptor.
func TestLinkOnlyHandoff(t *testing.T) {
	from, to := netnstest.New(t), netnstest.New(t)
	port, err := tap.Open(tap.Config{
		NetNS: from.Path, Name: "syhand0", MTU: 1400, MAC: vswitch.MAC{0x02, 0x42, 10, 78, 0, 2},
		Configure: true, LinkOnly: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Remove()
	link := from.MustRun("ip", "-d", "link", "show", "syhand0")
	for _, want := range []string{"mtu 1400", "02:42:0a:4e:00:02", "tap", "state DOWN"} {
		if !strings.Contains(link, want) {
			t.Errorf("ip link: no %q in\n%s", want, link)
		}
	}
	if addrs := from.MustRun("ip", "-o", "addr", "show", "dev", "syhand0"); strings.Contains(addrs, "inet") {
		t.Errorf("a LinkOnly device has addresses:\n%s", addrs)
	}

	// The runtime's part: move, rename, address, up.
	from.MustRun("ip", "link", "set", "syhand0", "netns", to.Path)
	to.MustRun("ip", "link", "set", "syhand0", "name", "eth0")
	to.MustRun("ip", "addr", "add", "10.78.0.2/24", "dev", "eth0")
	to.MustRun("ip", "link", "set", "eth0", "up")

	frames := make(chan []byte, 16)
	if err := port.Start(ingressFunc(func(f vswitch.Frame) {
		select {
		case frames <- append([]byte(nil), f.Data...):
		default:
		}
	})); err != nil {
		t.Fatal(err)
	}
	// Any frame the moved device sends reaches the port's descriptor.
	pinged := make(chan struct{})
	go func() { to.Run("ping", "-c", "1", "-W", "1", "10.78.0.9"); close(pinged) }()
	defer func() { <-pinged }()
	f := <-frames
	if len(f) < 14 || vswitch.MAC(f[6:12]) != (vswitch.MAC{0x02, 0x42, 10, 78, 0, 2}) {
		t.Fatalf("frame from the moved device: % x", f)
	}
}

type ingressFunc func(vswitch.Frame)

func (f ingressFunc) Receive(fr vswitch.Frame) { f(fr) }
