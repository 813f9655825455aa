package tap_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/songgao/water"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tap"
	"github.com/switchyard-net/switchyard/testing/netnstest"
	"github.com/switchyard-net/switchyard/testing/porttest"
)

// A VM's TAP: the switch sits on the host side; the test plays QEMU on the
// file-descriptor side. Frames cross both ways.
func TestVMTAP(t *testing.T) {
	ns := netnstest.New(t)
	var port *tap.VMPort
	err := ns.Do(func() (err error) {
		port, err = tap.OpenVM(tap.VMConfig{Name: "vm1", Owner: -1, Group: -1})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sw := vswitch.New(vswitch.Config{})
	defer sw.Close()
	if _, err := sw.Attach(port, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	peer := porttest.New("peer", 1500)
	if _, err := sw.Attach(peer, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}

	// "QEMU" opens the VM's TAP, as -netdev tap,ifname=vm1 does.
	var vm *water.Interface
	if err := ns.Do(func() (err error) {
		vm, err = water.New(water.Config{DeviceType: water.TAP, PlatformSpecificParams: water.PlatformSpecificParams{Name: "vm1"}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	vmMAC := vswitch.MAC{0x02, 0x42, 0, 0, 0, 0x99}
	peerMAC := vswitch.MAC{0x02, 0x42, 0, 0, 0, 0x01}

	// VM → switch.
	out := make([]byte, 60)
	copy(out, vswitch.Broadcast[:])
	copy(out[6:], vmMAC[:])
	out[12], out[13] = 0x88, 0xb5 // local experimental EtherType
	copy(out[14:], "from the VM")
	if _, err := vm.Write(out); err != nil {
		t.Fatal(err)
	}
	select {
	case <-peer.Notify():
	case <-time.After(5 * time.Second):
		t.Fatal("the VM's frame did not reach the switch")
	}
	if got := peer.Take(); len(got) == 0 || !bytes.Contains(got[0].Data, []byte("from the VM")) {
		t.Fatalf("peer got %v", got)
	}

	// Switch → VM.
	in := make([]byte, 60)
	copy(in, vmMAC[:])
	copy(in[6:], peerMAC[:])
	in[12], in[13] = 0x88, 0xb5
	copy(in[14:], "to the VM")
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := vm.Read(buf)
			if err != nil {
				return
			}
			if bytes.Contains(buf[:n], []byte("to the VM")) {
				got <- append([]byte(nil), buf[:n]...)
				return
			}
		}
	}()
	// The kernel drops what is sent to the TAP until it has activated the
	// device's queue, which it does asynchronously after QEMU attaches
	// (linkwatch): send again until the VM sees the frame.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(5 * time.Second)
	for peer.Inject(in); ; {
		select {
		case <-got:
			return
		case <-tick.C:
			peer.Inject(in)
		case <-timeout:
			t.Fatal("the switch's frame did not reach the VM")
		}
	}
}

// A VM's TAP is created exclusively too: a name that exists is ErrExists
// without Existing, and re-attached with it.
func TestVMTAPExclusive(t *testing.T) {
	ns := netnstest.New(t)
	err := ns.Do(func() error {
		p, err := tap.OpenVM(tap.VMConfig{Name: "vm1", Owner: -1, Group: -1})
		if err != nil {
			return err
		}
		p.Close() // persistent: vm1 stays
		if _, err := tap.OpenVM(tap.VMConfig{Name: "vm1", Owner: -1, Group: -1}); !errors.Is(err, tap.ErrExists) {
			return fmt.Errorf("OpenVM over an existing vm1: err %v, want ErrExists", err)
		}
		p, err = tap.OpenVM(tap.VMConfig{Name: "vm1", Owner: -1, Group: -1, Existing: true})
		if err != nil {
			return fmt.Errorf("OpenVM with Existing: %w", err)
		}
		return p.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}
