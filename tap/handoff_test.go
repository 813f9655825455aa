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

// A handed-off TAP, moved and renamed by its runtime, is found again in
// its new namespace by its owner's mark and its MAC, and only by those.
func TestFindMarkedAfterHandoff(t *testing.T) {
	from, to := netnstest.New(t), netnstest.New(t)
	mac := vswitch.MAC{0x02, 0x42, 10, 79, 0, 2}
	for i, m := range []vswitch.MAC{mac, {0x02, 0x42, 10, 79, 0, 3}} {
		name := "syfind" + string(rune('0'+i))
		port, err := tap.Open(tap.Config{NetNS: from.Path, Name: name, MAC: m, Configure: true, LinkOnly: true, Owner: "d1"})
		if err != nil {
			t.Fatal(err)
		}
		defer port.Remove()
		from.MustRun("ip", "link", "set", name, "netns", to.Path)
		to.MustRun("ip", "link", "set", name, "name", "eth"+string(rune('0'+i)))
	}
	// Not ours: a TAP with the MAC but no mark.
	to.MustRun("ip", "tuntap", "add", "dev", "stranger", "mode", "tap")
	to.MustRun("ip", "link", "set", "stranger", "address", "02:42:0a:4f:00:09")

	if got, err := tap.FindMarked(to.Path, "d1", mac); err != nil || got != "eth0" {
		t.Errorf("FindMarked(d1, %s) = %q, %v; want eth0", mac, got, err)
	}
	if got, err := tap.FindMarked(to.Path, "d2", mac); err != nil || got != "" {
		t.Errorf("FindMarked of another daemon = %q, %v; want none", got, err)
	}
	if got, err := tap.FindMarked(to.Path, "d1", vswitch.MAC{0x02, 0x42, 10, 79, 0, 9}); err != nil || got != "" {
		t.Errorf("FindMarked of the stranger's MAC = %q, %v; want none", got, err)
	}
	if got, err := tap.FindMarked(from.Path, "d1", mac); err != nil || got != "" {
		t.Errorf("FindMarked in the namespace it left = %q, %v; want none", got, err)
	}
}
