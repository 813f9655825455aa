// Package tap attaches containers to a switch through TAP devices created
// inside their network namespaces.
//
//	container netns                         switchyard (any netns)
//	  eth0 (TAP, persistent) ◄── fd ──► Port: one reader goroutine ──► vswitch
//	                                          Write ◄── other ports' readers
//
// Open enters the namespace only to open /dev/net/tun (a TAP belongs to the
// namespace its tun file was opened in); everything else — TUNSETIFF,
// netlink configuration, reads and writes — works from any thread.
//
// Devices are persistent: if the daemon dies, eth0 stays in the container
// with its address and routes (carrier down), and Open re-attaches to it
// when the daemon comes back, so connections survive a restart. Remove
// deletes a device for good.
//
// An open TAP holds a reference on its namespace: deleting the namespace's
// name (ip netns del) or the exit of its last process does not destroy it
// while the port is open. Whoever owns ports must watch the namespace paths
// and close the ports of namespaces that are gone (the daemon does).
//
// With Offload, the TAP is opened with IFF_VNET_HDR and TUNSETOFFLOAD (TSO
// and checksum offload), so the container's kernel hands over 64 KiB TCP
// superframes instead of MTU-sized frames; the switch forwards them whole to
// other offload ports. water, which opens plain TAPs, cannot set
// IFF_VNET_HDR, so the offload path opens /dev/net/tun itself.
package tap

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"github.com/songgao/water"
	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/internal/nsenter"
)

// Kernel TUN flags and offload bits (linux/if_tun.h).
const (
	tunFCsum   = 0x01
	tunFTSO4   = 0x02
	tunFTSO6   = 0x04
	tunFUSO4   = 0x20
	tunFUSO6   = 0x40
	iffVnetHdr = 0x4000
	iffTunExcl = 0x8000
)

// ErrExists is returned when a new device's name is taken in the namespace.
var ErrExists = errors.New("interface already exists")

// openResult is what opening a device inside the namespace yields.
type openResult struct {
	file    *os.File
	name    string
	offload bool // IFF_VNET_HDR set and TUNSETOFFLOAD accepted
	uso     bool // UDP segmentation offload accepted too
}

// openTAP opens (or, with !exclusive, re-attaches to) the persistent TAP
// name in the namespace at nsPath ("" for the calling process's own).
func openTAP(nsPath, name string, offload, exclusive bool) (openResult, error) {
	var res openResult
	open := func() error {
		var err error
		if offload {
			res, err = openVnet(name, exclusive)
		} else {
			res, err = openWater(name)
		}
		return err
	}
	var err error
	if nsPath == "" {
		err = open()
	} else {
		err = nsenter.Do(nsPath, open)
	}
	return res, err
}

// openWater opens a plain TAP through water. water has no IFF_TUN_EXCL:
// Open checks through netlink that a new device's name is free first.
func openWater(name string) (openResult, error) {
	ifce, err := water.New(water.Config{
		DeviceType:             water.TAP,
		PlatformSpecificParams: water.PlatformSpecificParams{Name: name, Persist: true},
	})
	if err != nil {
		return openResult{}, explainOpen(name, err)
	}
	f, ok := ifce.ReadWriteCloser.(*os.File)
	if !ok {
		ifce.Close()
		return openResult{}, fmt.Errorf("tap %s: water returned %T, want *os.File", name, ifce.ReadWriteCloser)
	}
	return openResult{file: f, name: ifce.Name()}, nil
}

// ifreq is struct ifreq with the flags member of the union.
type ifreq struct {
	name  [unix.IFNAMSIZ]byte
	flags uint16
	_     [24 - 2]byte
}

func ioctl(fd uintptr, req uintptr, arg uintptr) error {
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, req, arg); errno != 0 {
		return errno
	}
	return nil
}

// openVnet opens a TAP with IFF_VNET_HDR and enables checksum and TCP
// segmentation offload, and UDP segmentation offload where the kernel has
// it (6.2 and later).
func openVnet(name string, exclusive bool) (openResult, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return openResult{}, explainOpen(name, err)
	}
	var req ifreq
	copy(req.name[:unix.IFNAMSIZ-1], name)
	req.flags = unix.IFF_TAP | unix.IFF_NO_PI | iffVnetHdr
	if exclusive {
		req.flags |= iffTunExcl
	}
	if err := ioctl(uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); err != nil {
		unix.Close(fd)
		return openResult{}, explainOpen(name, err)
	}
	if err := ioctl(uintptr(fd), unix.TUNSETPERSIST, 1); err != nil {
		unix.Close(fd)
		return openResult{}, fmt.Errorf("tap %s: make persistent: %w", name, err)
	}
	hdrLen := int32(10)
	if err := ioctl(uintptr(fd), unix.TUNSETVNETHDRSZ, uintptr(unsafe.Pointer(&hdrLen))); err != nil {
		unix.Close(fd)
		return openResult{}, fmt.Errorf("tap %s: set vnet header size: %w", name, err)
	}
	res := openResult{offload: true, uso: true}
	if err := ioctl(uintptr(fd), unix.TUNSETOFFLOAD, tunFCsum|tunFTSO4|tunFTSO6|tunFUSO4|tunFUSO6); err != nil {
		res.uso = false
		if err := ioctl(uintptr(fd), unix.TUNSETOFFLOAD, tunFCsum|tunFTSO4|tunFTSO6); err != nil {
			unix.Close(fd)
			return openResult{}, fmt.Errorf("tap %s: enable offloads: %w", name, err)
		}
	}
	res.name = strings.TrimRight(string(req.name[:]), "\x00")
	res.file = os.NewFile(uintptr(fd), "/dev/net/tun:"+res.name) // non-blocking: uses the poller
	return res, nil
}

// explainOpen turns the kernel's answer to TUNSETIFF into a sentence that
// names the device and what to do.
func explainOpen(name string, err error) error {
	switch {
	case errors.Is(err, unix.EBUSY) && name != "":
		return fmt.Errorf("tap %s: %w in the namespace (choose another --ifname)", name, ErrExists)
	case errors.Is(err, unix.EINVAL) && name != "":
		return fmt.Errorf("tap %s: an interface of that name exists and is not a free TAP device (choose another --ifname): %w", name, err)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("tap %s: opening /dev/net/tun: %w (creating a TAP needs CAP_NET_ADMIN in the namespace's user namespace, and /dev/net/tun readable and writable: Debian, Ubuntu and Fedora ship it mode 0666)", name, err)
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("tap %s: /dev/net/tun is missing: %w (load the tun module: modprobe tun)", name, err)
	}
	return fmt.Errorf("tap %s: %w", name, err)
}
