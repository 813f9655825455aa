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
// other offload ports.
//
// Every TAP, plain, offload or a VM's, is opened by openDevice. A new one
// (no Existing) is asked for with IFF_TUN_EXCL: the kernel creates it or
// refuses a name that is taken, in one step. water, named in the design, has neither
// IFF_TUN_EXCL nor IFF_VNET_HDR nor a way to leave the device's group
// unset, so this package talks to /dev/net/tun itself (ioctls from
// golang.org/x/sys/unix).
package tap

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"

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
		res, err = openPort(name, offload, exclusive)
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

// openDevice is the one way this package opens a TAP: /dev/net/tun
// attached to the device name (created if missing) with TUNSETIFF, made
// persistent. With exclusive, IFF_TUN_EXCL makes the kernel refuse a name
// that exists (EBUSY, reported as ErrExists) in the same step that creates
// it, so no other process can slip in between a check and the creation.
// extra are more TUNSETIFF flags (IFF_VNET_HDR); setup, if not nil, runs
// on the file descriptor before the device is made persistent. It returns
// the descriptor and the device's name.
func openDevice(name string, exclusive bool, extra uint16, fdFlags int, setup func(fd int) error) (int, string, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|fdFlags, 0)
	if err != nil {
		return -1, "", explainOpen(name, err)
	}
	var req ifreq
	copy(req.name[:unix.IFNAMSIZ-1], name)
	req.flags = unix.IFF_TAP | unix.IFF_NO_PI | extra
	if exclusive {
		req.flags |= iffTunExcl
	}
	if err := ioctl(uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); err != nil {
		unix.Close(fd)
		return -1, "", explainOpen(name, err)
	}
	name = strings.TrimRight(string(req.name[:]), "\x00")
	if setup != nil {
		if err := setup(fd); err != nil {
			unix.Close(fd)
			return -1, "", fmt.Errorf("tap %s: %w", name, err)
		}
	}
	if err := ioctl(uintptr(fd), unix.TUNSETPERSIST, 1); err != nil {
		unix.Close(fd)
		return -1, "", fmt.Errorf("tap %s: make persistent: %w", name, err)
	}
	return fd, name, nil
}

// openPort opens the TAP a Port reads and writes, non-blocking so that
// reads go through Go's poller. With offload it sets IFF_VNET_HDR and
// enables checksum and TCP segmentation offload, and UDP segmentation
// offload where the kernel has it (6.2 and later).
func openPort(name string, offload, exclusive bool) (openResult, error) {
	if !offload {
		fd, name, err := openDevice(name, exclusive, 0, unix.O_NONBLOCK, nil)
		if err != nil {
			return openResult{}, err
		}
		return openResult{file: os.NewFile(uintptr(fd), "/dev/net/tun:"+name), name: name}, nil
	}
	res := openResult{offload: true, uso: true}
	fd, name, err := openDevice(name, exclusive, iffVnetHdr, unix.O_NONBLOCK, func(fd int) error {
		uso, err := enableOffloads(fd)
		res.uso = uso
		return err
	})
	if err != nil {
		return openResult{}, err
	}
	res.name = name
	res.file = os.NewFile(uintptr(fd), "/dev/net/tun:"+name)
	return res, nil
}

// enableOffloads sets the virtio-net header size and the offloads; it
// reports whether UDP segmentation offload was accepted.
func enableOffloads(fd int) (uso bool, err error) {
	hdrLen := int32(10)
	if err := ioctl(uintptr(fd), unix.TUNSETVNETHDRSZ, uintptr(unsafe.Pointer(&hdrLen))); err != nil {
		return false, fmt.Errorf("set vnet header size: %w", err)
	}
	if err := ioctl(uintptr(fd), unix.TUNSETOFFLOAD, tunFCsum|tunFTSO4|tunFTSO6|tunFUSO4|tunFUSO6); err == nil {
		return true, nil
	}
	if err := ioctl(uintptr(fd), unix.TUNSETOFFLOAD, tunFCsum|tunFTSO4|tunFTSO6); err != nil {
		return false, fmt.Errorf("enable offloads: %w", err)
	}
	return false, nil
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
