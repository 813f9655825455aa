package tap

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/internal/evloop"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// Config describes a TAP endpoint.
type Config struct {
	// NetNS is the path of the network namespace to create the device in
	// (/var/run/netns/NAME, /proc/PID/ns/net). "" means the calling
	// process's own namespace: a TAP for a VM (QEMU -netdev tap).
	NetNS string
	// Name is the interface name inside the namespace. "" means eth0.
	Name string
	// PortName names the port on the switch. "" means Name.
	PortName string
	// MAC of the interface; zero leaves the kernel's random one.
	MAC vswitch.MAC
	// MTU of the interface; 0 means 1500.
	MTU int
	// Addrs are assigned to the interface; any other non-link-local
	// address on it is removed.
	Addrs []netip.Prefix
	// Gateway, if valid, becomes the namespace's default route, unless the
	// namespace has one through another interface already (a second
	// network keeps the first one's gateway, as in Docker).
	Gateway netip.Addr
	// Offload opens the device with IFF_VNET_HDR and TSO/checksum offload.
	Offload bool
	// Owner, if set, identifies the daemon that makes the device: it is
	// written into the device's mark, for Marked.
	Owner string
	// Existing re-attaches to a device of that name left by an earlier
	// run (or creates it if missing). Without it the name must be free.
	Existing bool
	// Configure applies MAC, MTU, addresses and routes. Leave it false to
	// take the device as it is (a VM's TAP, configured by its owner).
	Configure bool
	// LinkOnly, with Configure, applies only MAC and MTU and leaves the
	// device down, without addresses or routes: a device a container
	// runtime moves into its sandbox and configures there.
	LinkOnly bool
	// Logger; nil means no logging.
	Logger *zap.Logger
	// OnGone, if set, is called once, from the reader goroutine, when the
	// device disappears under the port (its namespace was deleted).
	OnGone func(error)
	// Gateway6, if valid, becomes the namespace's IPv6 default route, as
	// Gateway does for its family: a dual-stack endpoint has both.
	Gateway6 netip.Addr
	// Loop, if set, reads the device instead of a goroutine of the
	// port's own: one loop serves all the TAPs of a network and polls
	// them briefly before it parks (see internal/evloop). Its buffer must
	// hold LoopBufLen bytes.
	Loop *evloop.Loop
}

// Port is a TAP device as a vswitch.Port.
type Port struct {
	reader
	cfg     Config
	log     *zap.Logger
	raw     syscall.RawConn
	name    string
	offload bool
	uso     bool

	writers sync.Pool // *vnetWriter

	writeErrors atomic.Uint64

	looped *loopReader // set by Start when cfg.Loop reads the device
}

var _ vswitch.Port = (*Port)(nil)

// Open creates (or re-attaches to) the TAP device described by cfg and
// configures it. The returned Port is not reading yet: attach it to a
// switch.
func Open(cfg Config) (*Port, error) {
	if cfg.Name == "" {
		cfg.Name = "eth0"
	}
	if cfg.PortName == "" {
		cfg.PortName = cfg.Name
	}
	if cfg.MTU <= 0 {
		cfg.MTU = vswitch.DefaultMTU
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	where := cfg.NetNS
	if where == "" {
		where = "the host namespace"
	}
	open := openConfigured
	if needsHelper(cfg.NetNS) {
		open = openViaHelper // unprivileged: the helper does it all inside the namespace
	}
	res, err := open(cfg)
	if err != nil {
		return nil, fmt.Errorf("in %s: %w", where, err)
	}
	p := &Port{
		cfg:     cfg,
		log:     cfg.Logger.Named("tap").With(zap.String("port", cfg.PortName), zap.String("ifname", res.name)),
		reader:  reader{file: res.file, done: make(chan struct{})},
		name:    res.name,
		offload: res.offload,
		uso:     res.uso,
	}
	p.raw, err = p.file.SyscallConn()
	if err != nil {
		p.file.Close()
		return nil, fmt.Errorf("tap %s: %w", res.name, err)
	}
	p.writers.New = func() any { return newVnetWriter() }
	return p, nil
}

// openConfigured opens the TAP of cfg in the namespace at cfg.NetNS and,
// with cfg.Configure, configures it; a device that cannot be configured is
// removed. It is Open's work where this process may enter the namespace,
// and the helper's inside it where it may not.
func openConfigured(cfg Config) (openResult, error) {
	res, err := openTAP(cfg.NetNS, cfg.Name, cfg.Offload, !cfg.Existing)
	if err != nil {
		return res, err
	}
	h, err := nlHandle(cfg.NetNS)
	if err != nil {
		res.file.Close()
		return openResult{}, err
	}
	defer h.Close()
	if cfg.Existing {
		// Adopt only a TAP of ours: closing the descriptor leaves
		// anything else as it was.
		if err := checkMark(h, res.name); err != nil {
			res.file.Close()
			return openResult{}, err
		}
	} else if err = setMark(h, res.name, cfg.Owner); err != nil {
		res.file.Close()
		Remove(cfg.NetNS, res.name)
		return openResult{}, err
	}
	if !cfg.Configure {
		return res, nil
	}
	if cfg.LinkOnly {
		err = configureLink(h, res.name, cfg)
	} else {
		err = configure(h, cfg.NetNS, res.name, cfg)
	}
	if err != nil {
		res.file.Close()
		Remove(cfg.NetNS, res.name)
		return openResult{}, fmt.Errorf("configure tap %s: %w", res.name, err)
	}
	return res, nil
}

// Name returns the interface name inside the namespace.
func (p *Port) Name() string { return p.name }

// Offload reports whether the device was opened with IFF_VNET_HDR.
func (p *Port) Offload() bool { return p.offload }

// Info implements vswitch.Port.
func (p *Port) Info() vswitch.PortInfo {
	info := vswitch.PortInfo{Name: p.cfg.PortName, Kind: "tap", MTU: p.cfg.MTU}
	if p.offload {
		info.Offloads = vswitch.OffloadCsum | vswitch.OffloadTSO4 | vswitch.OffloadTSO6
		if p.uso {
			info.Offloads |= vswitch.OffloadUSO
		}
	}
	return info
}

// readBufLen fits the largest frame a TAP can hand over: a 64 KiB
// superframe behind the virtio-net header, or a 64 KiB MTU frame.
const readBufLen = vswitch.VnetHdrLen + 65535 + vswitch.EthHeaderLen + 4

// Start implements vswitch.Port: it starts the reader goroutine.
func (p *Port) Start(in vswitch.Ingress) error {
	if p.cfg.Loop != nil {
		return p.startLoop(in)
	}
	p.start(in, p)
	return nil
}

// gone implements frameSource: EBADFD, ENODEV and EIO mean the device was
// deleted (its namespace went away); OnGone is told.
func (p *Port) gone(err error) bool {
	if !errors.Is(err, unix.EBADFD) && !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.EIO) {
		return false
	}
	p.log.Warn("tap device gone", zap.Error(err))
	if p.cfg.OnGone != nil {
		p.cfg.OnGone(err)
	}
	return true
}

// deliver implements frameSource: it hands one frame read from the
// device to the switch, without its virtio-net header. The reader holds
// no lock, so the frame is Direct.
func (p *Port) deliver(in vswitch.Ingress, b []byte) {
	if !p.offload {
		in.Receive(vswitch.Frame{Data: b, Direct: true})
		return
	}
	if len(b) < vswitch.VnetHdrLen {
		p.readErrors.Add(1)
		return
	}
	in.Receive(vswitch.Frame{Data: b[vswitch.VnetHdrLen:], Offload: vswitch.DecodeOffload(b), Direct: true})
}

// Write implements vswitch.Port. The frame goes to the kernel in one
// syscall (writev of the virtio-net header and the frame with offload).
func (p *Port) Write(f vswitch.Frame) error {
	if p.closed.Load() {
		return os.ErrClosed
	}
	if !p.offload {
		_, err := p.file.Write(f.Data)
		if err != nil {
			p.writeErrors.Add(1)
		}
		return err
	}
	w := p.writers.Get().(*vnetWriter)
	f.Offload.Encode(w.hdr[:])
	w.iov[0].Base, w.iov[0].Len = &w.hdr[0], vswitch.VnetHdrLen
	if len(f.Data) > 0 {
		w.iov[1].Base = &f.Data[0]
	}
	w.iov[1].Len = uint64(len(f.Data))
	err := p.raw.Write(w.fn)
	if err == nil {
		err = w.err
	}
	w.iov[1].Base, w.err = nil, nil // do not keep the caller's frame alive
	p.writers.Put(w)
	if err != nil {
		p.writeErrors.Add(1)
	}
	return err
}

// vnetWriter holds what one writev needs, with its callback bound once so
// that a write allocates nothing.
type vnetWriter struct {
	hdr [vswitch.VnetHdrLen]byte
	iov [2]unix.Iovec
	err error
	fn  func(fd uintptr) bool
}

func newVnetWriter() *vnetWriter {
	w := &vnetWriter{}
	w.fn = w.write
	return w
}

func (w *vnetWriter) write(fd uintptr) bool {
	_, _, errno := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iov[0])), 2)
	switch errno {
	case 0:
		w.err = nil
	case unix.EAGAIN:
		return false // wait until writable
	case unix.EINTR:
		return false
	default:
		w.err = errno
	}
	return true
}

// Close implements vswitch.Port: it stops the reader and closes the file.
// The device itself stays (it is persistent) for a later Open with
// Existing.
func (p *Port) Close() error {
	if p.looped != nil {
		p.cfg.Loop.Remove(p.looped.token) // a no-op the second time
	}
	return p.close()
}

// Unpersist clears the device's persistent flag: the kernel deletes the
// interface when the port is closed (by Close, or by the switch's Detach).
// Disconnecting an endpoint is Unpersist, then Detach.
func (p *Port) Unpersist() error {
	var perr error
	if err := p.raw.Control(func(fd uintptr) { perr = ioctl(fd, unix.TUNSETPERSIST, 0) }); err != nil {
		return fmt.Errorf("tap %s: clear persist flag: %w", p.name, err)
	}
	if perr != nil {
		return fmt.Errorf("tap %s: clear persist flag: %w", p.name, perr)
	}
	return nil
}

// Remove deletes the device and closes the port. If the port is already
// closed it deletes the interface through netlink instead.
func (p *Port) Remove() error {
	if err := p.Unpersist(); err != nil {
		p.Close()
		return Remove(p.cfg.NetNS, p.name)
	}
	return p.Close()
}

// Errors returns the counts of failed reads and writes on the device.
func (p *Port) Errors() (read, write uint64) { return p.readErrors.Load(), p.writeErrors.Load() }
