package tap

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// TAPs for virtual machines (switchyard connect --tap-only). A VM's TAP
// belongs to its hypervisor: QEMU opens it (-netdev tap,ifname=NAME) and
// its file descriptor is the VM's side of the wire. So the switch attaches
// to the other side, the interface in the host's namespace, the way the
// Linux bridge enslaves a VM's TAP: through an AF_PACKET socket bound to
// it, reading every frame the VM sends and sending the VM its frames.
//
//	VM ── QEMU ── TAP fd ═══ kernel interface NAME ◄── AF_PACKET socket ── VMPort ── vswitch
//
// The device is persistent and owned by a user of the caller's choice, so
// an unprivileged QEMU can open it. Until one does, the interface has no
// carrier and frames to it are dropped (counted).

// VMConfig describes a TAP for a virtual machine.
type VMConfig struct {
	// Name of the TAP in the calling process's namespace.
	Name string
	// PortName on the switch; "" means Name.
	PortName string
	// Owner and Group may open the device (TUNSETOWNER, TUNSETGROUP);
	// -1 leaves them unset (only CAP_NET_ADMIN may then).
	Owner, Group int
	// MTU of the interface; 0 means 1500.
	MTU int
	// Daemon, if set, identifies the daemon that makes the device: it is
	// written into the device's mark, for Marked.
	Daemon string
	// Existing re-attaches to a device left by an earlier run.
	Existing bool
	Logger   *zap.Logger
}

// VMPort is the host side of a VM's TAP as a switch port.
type VMPort struct {
	reader  // on the AF_PACKET socket
	cfg     VMConfig
	log     *zap.Logger
	raw     sysRawConn
	ifindex int

	writeErrors atomic.Uint64
	sendPool    sync.Pool
}

type sysRawConn interface {
	Read(func(fd uintptr) bool) error
	Write(func(fd uintptr) bool) error
	Control(func(fd uintptr)) error
}

var _ vswitch.Port = (*VMPort)(nil)

// OpenVM creates (or re-attaches to) a persistent TAP for a VM in the
// calling process's namespace, brings it up and opens the AF_PACKET socket
// the switch uses.
func OpenVM(cfg VMConfig) (*VMPort, error) {
	if cfg.PortName == "" {
		cfg.PortName = cfg.Name
	}
	if cfg.MTU <= 0 {
		cfg.MTU = vswitch.DefaultMTU
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if err := createPersistent(cfg.Name, cfg.Owner, cfg.Group, !cfg.Existing); err != nil {
		return nil, err
	}
	link, err := netlink.LinkByName(cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("tap %s: %w", cfg.Name, err)
	}
	switch {
	case cfg.Existing && !ours(link):
		return nil, fmt.Errorf("tap %s (%s): %w", cfg.Name, link.Type(), ErrNotOurs)
	case !cfg.Existing:
		if err := netlink.LinkSetAlias(link, markFor(cfg.Daemon)); err != nil {
			netlink.LinkDel(link)
			return nil, fmt.Errorf("tap %s: mark it as Switchyard's: %w", cfg.Name, err)
		}
	}
	if link.Attrs().MTU != cfg.MTU {
		if err := netlink.LinkSetMTU(link, cfg.MTU); err != nil {
			RemoveVM(cfg.Name)
			return nil, fmt.Errorf("tap %s: set MTU %d: %w", cfg.Name, cfg.MTU, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		RemoveVM(cfg.Name)
		return nil, fmt.Errorf("tap %s: bring up: %w", cfg.Name, err)
	}
	file, err := packetSocket(link.Attrs().Index)
	if err != nil {
		RemoveVM(cfg.Name)
		return nil, fmt.Errorf("tap %s: %w", cfg.Name, err)
	}
	p := &VMPort{
		cfg: cfg, log: cfg.Logger.Named("vmtap").With(zap.String("port", cfg.PortName)),
		reader: reader{file: file, done: make(chan struct{})}, ifindex: link.Attrs().Index,
	}
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, err
	}
	p.raw = rc
	p.sendPool.New = func() any { return newPacketSender(p.ifindex) }
	return p, nil
}

// createPersistent makes (or, with !exclusive, re-attaches to) the
// persistent TAP name, owned by owner and group when they are not
// negative, and lets it go: the VM's hypervisor opens it.
func createPersistent(name string, owner, group int, exclusive bool) error {
	fd, _, err := openDevice(name, exclusive, 0, 0, func(fd int) error {
		if owner >= 0 {
			if err := ioctl(uintptr(fd), unix.TUNSETOWNER, uintptr(owner)); err != nil {
				return fmt.Errorf("set owner %d: %w", owner, err)
			}
		}
		if group >= 0 {
			if err := ioctl(uintptr(fd), unix.TUNSETGROUP, uintptr(group)); err != nil {
				return fmt.Errorf("set group %d: %w", group, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// htons is the network-order form of a 16-bit protocol number.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// packetSocket opens a non-blocking AF_PACKET socket on interface ifindex
// that sees every frame arriving on it (promiscuous) and not the ones it
// sends itself.
func packetSocket(ifindex int) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket (needs CAP_NET_RAW): %w", err)
	}
	fail := func(what string, err error) (*os.File, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		return fail("bind AF_PACKET socket", err)
	}
	mreq := unix.PacketMreq{Ifindex: int32(ifindex), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
		return fail("promiscuous mode", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return fail("PACKET_IGNORE_OUTGOING (kernel 4.20 or later)", err)
	}
	return os.NewFile(uintptr(fd), "packet"), nil
}

// Info implements vswitch.Port.
func (p *VMPort) Info() vswitch.PortInfo {
	return vswitch.PortInfo{Name: p.cfg.PortName, Kind: "vm-tap", MTU: p.cfg.MTU}
}

// Start implements vswitch.Port.
func (p *VMPort) Start(in vswitch.Ingress) error {
	p.start(in, p)
	return nil
}

// deliver implements frameSource. The reader holds no lock, so the frame
// is Direct.
func (p *VMPort) deliver(in vswitch.Ingress, b []byte) {
	in.Receive(vswitch.Frame{Data: b, Direct: true})
}

// gone implements frameSource: ENETDOWN and ENXIO mean the interface went
// away.
func (p *VMPort) gone(err error) bool {
	if !errors.Is(err, unix.ENETDOWN) && !errors.Is(err, unix.ENXIO) {
		return false
	}
	p.log.Warn("VM tap interface gone", zap.Error(err))
	return true
}

// packetSender holds one sendto's address and frame, with its callback
// bound once so that a write allocates nothing.
type packetSender struct {
	sa  unix.RawSockaddrLinklayer
	buf []byte
	err error
	fn  func(fd uintptr) bool
}

func newPacketSender(ifindex int) *packetSender {
	s := &packetSender{}
	s.sa.Family = unix.AF_PACKET
	s.sa.Ifindex = int32(ifindex)
	s.sa.Halen = 6
	s.fn = s.send
	return s
}

func (s *packetSender) send(fd uintptr) bool {
	_, _, errno := unix.Syscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&s.buf[0])), uintptr(len(s.buf)), 0,
		uintptr(unsafe.Pointer(&s.sa)), unsafe.Sizeof(s.sa))
	switch errno {
	case 0:
		s.err = nil
	case unix.EAGAIN, unix.EINTR:
		return false
	default:
		s.err = errno
	}
	return true
}

// Write implements vswitch.Port: the frame goes out of the interface to
// the VM.
func (p *VMPort) Write(f vswitch.Frame) error {
	if p.closed.Load() {
		return os.ErrClosed
	}
	if len(f.Data) < vswitch.EthHeaderLen {
		return errors.New("runt frame")
	}
	s := p.sendPool.Get().(*packetSender)
	s.buf = f.Data
	copy(s.sa.Addr[:6], f.Data[0:6])
	err := p.raw.Write(s.fn)
	if err == nil {
		err = s.err
	}
	s.buf, s.err = nil, nil
	p.sendPool.Put(s)
	if err != nil {
		p.writeErrors.Add(1) // no VM attached yet (no carrier), or the device went away
	}
	return err
}

// Close implements vswitch.Port; the device stays for a later OpenVM
// with Existing.
func (p *VMPort) Close() error { return p.close() }

// Name returns the interface name.
func (p *VMPort) Name() string { return p.cfg.Name }

// RemoveVM deletes a VM TAP from the calling process's namespace.
func RemoveVM(name string) error { return Remove("", name) }
