// Package attachtest is an in-memory attach.Attacher for the daemon's
// tests: namespaces are names in a table, devices are porttest ports, and
// any step can be told to fail or to block, so that every rollback path of
// the control plane runs without root, TAPs or namespaces.
//
//	a := attachtest.New()
//	a.AddNetNS("/run/netns/web")
//	a.Fail(attachtest.StepOpen, errors.New("boom"))    // the next Open fails
//	gate := a.Block(attachtest.StepOpen)                  // the next Open waits
//	<-gate.Entered; …; gate.Release()
package attachtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"sync"

	"github.com/switchyard-net/switchyard/daemon/attach"
	"github.com/switchyard-net/switchyard/internal/nsenter"
	"github.com/switchyard-net/switchyard/internal/rootfs"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tap"
	"github.com/switchyard-net/switchyard/testing/porttest"
)

// Step names a method of the Attacher (or of its ports) that can be made
// to fail or block.
type Step string

// Steps.
const (
	StepNetNS           Step = "netns"
	StepLinks           Step = "links"
	StepOpen            Step = "open"
	StepOpenVM          Step = "open-vm"
	StepStart           Step = "start" // the port's Start, when the switch attaches it
	StepForget          Step = "forget"
	StepRemove          Step = "remove"
	StepWriteResolvConf Step = "write-resolv-conf"
)

// Gate holds one blocked call: Entered is closed when the call arrives,
// Release lets it go on.
type Gate struct {
	Entered chan struct{}
	release chan struct{}
	once    sync.Once
}

// Release lets the blocked call go on. It may be called more than once.
func (g *Gate) Release() { g.once.Do(func() { close(g.release) }) }

// Device is a device the Attacher holds: it exists from Open until it is
// removed (Forget then Close, or Remove), across ports opened on it.
type Device struct {
	NetNS string // "" for a VM TAP
	Name  string
	// Config is what the last Open asked for.
	Config tap.Config
	// Opens counts the Opens of the device (re-attaches included).
	Opens int
}

type devKey struct{ netns, name string }

// Attacher is an in-memory attach.Attacher. Create it with New.
type Attacher struct {
	mu      sync.Mutex
	self    nsenter.ID // the daemon's own namespace
	nextIno uint64
	netns   map[string]nsenter.ID
	pids    map[int]string
	hostMnt map[int]bool        // processes in the daemon's mount namespace
	links   map[string][]string // other interfaces in a namespace (lo, …)
	devices map[devKey]*Device
	ports   map[devKey]*Port // open ports
	files   map[string][]byte
	fail    map[Step][]failure
	block   map[Step][]*Gate
}

var _ attach.Attacher = (*Attacher)(nil)

// SelfNetNS is the path of the daemon's own namespace in every Attacher.
const SelfNetNS = "/proc/self/ns/net"

// New returns an Attacher with one namespace, the daemon's own at
// SelfNetNS, which endpoints may not use.
func New() *Attacher {
	a := &Attacher{
		netns: map[string]nsenter.ID{}, pids: map[int]string{}, hostMnt: map[int]bool{}, links: map[string][]string{},
		devices: map[devKey]*Device{}, ports: map[devKey]*Port{}, files: map[string][]byte{},
		fail: map[Step][]failure{}, block: map[Step][]*Gate{},
	}
	a.self = a.AddNetNS(SelfNetNS)
	return a
}

// AddNetNS makes a namespace at path (replacing one already there, as a
// deleted namespace's path reused by a new one) with only "lo" in it.
func (a *Attacher) AddNetNS(path string) nsenter.ID {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nextIno++
	id := nsenter.ID{Dev: 4, Ino: 4026530000 + a.nextIno}
	a.netns[path] = id
	a.links[path] = []string{"lo"}
	for k := range a.devices {
		if k.netns == path {
			delete(a.devices, k) // the old namespace's devices went with it
		}
	}
	return id
}

// AddPID makes process pid, in a new namespace, and returns its path.
func (a *Attacher) AddPID(pid int) string {
	path := fmt.Sprintf("/proc/%d/ns/net", pid)
	a.AddNetNS(path)
	a.mu.Lock()
	a.pids[pid] = path
	a.mu.Unlock()
	return path
}

// AddLink puts an interface that is not the daemon's into a namespace.
func (a *Attacher) AddLink(netns, name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.links[netns] = append(a.links[netns], name)
}

// DeleteNetNS deletes the namespace at path and its devices. Open ports in
// it are not told (see Port.Gone).
func (a *Attacher) DeleteNetNS(path string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.netns, path)
	delete(a.links, path)
	for k := range a.devices {
		if k.netns == path {
			delete(a.devices, k)
		}
	}
}

// failure is a call told to fail: of any namespace if netns is "".
type failure struct {
	netns string
	err   error
}

// Fail makes the next call of step return err (calls queue up: Fail twice
// makes the next two calls fail).
func (a *Attacher) Fail(step Step, err error) { a.FailIn(step, "", err) }

// FailIn makes the next call of step about namespace netns ("" for a VM
// TAP's) return err.
func (a *Attacher) FailIn(step Step, netns string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail[step] = append(a.fail[step], failure{netns, err})
}

// Block makes the next call of step wait until the gate is released (or
// its ctx ends, for the methods that take one).
func (a *Attacher) Block(step Step) *Gate {
	g := &Gate{Entered: make(chan struct{}), release: make(chan struct{})}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.block[step] = append(a.block[step], g)
	return g
}

// enter runs the failure and blocking rules of step, for a call about
// namespace netns.
func (a *Attacher) enter(ctx context.Context, step Step, netns string) error {
	a.mu.Lock()
	var g *Gate
	if gs := a.block[step]; len(gs) > 0 {
		g, a.block[step] = gs[0], gs[1:]
	}
	a.mu.Unlock()
	if g != nil {
		close(g.Entered)
		select {
		case <-g.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, f := range a.fail[step] {
		if f.netns == "" || f.netns == netns {
			a.fail[step] = slices.Delete(a.fail[step], i, i+1)
			return f.err
		}
	}
	return nil
}

// Devices lists the devices that exist, sorted by namespace and name.
func (a *Attacher) Devices() []Device {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Device, 0, len(a.devices))
	for _, d := range a.devices {
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].NetNS != out[j].NetNS {
			return out[i].NetNS < out[j].NetNS
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Port returns the open port of device name in netns ("" for a VM TAP),
// or nil.
func (a *Attacher) Port(netns, name string) *Port {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ports[devKey{netns, name}]
}

// OpenPorts counts the ports opened and not closed yet.
func (a *Attacher) OpenPorts() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ports)
}

// File returns what WriteResolvConf wrote at path, and whether it is there.
func (a *Attacher) File(path string) ([]byte, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, ok := a.files[path]
	return b, ok
}

// Files counts the files written and not removed.
func (a *Attacher) Files() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.files)
}

// NetNS implements attach.Attacher.
func (a *Attacher) NetNS(path string) (nsenter.ID, error) {
	if err := a.enter(context.Background(), StepNetNS, path); err != nil {
		return nsenter.ID{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	id, ok := a.netns[path]
	if !ok {
		return nsenter.ID{}, fmt.Errorf("network namespace %s: %w", path, os.ErrNotExist)
	}
	return id, nil
}

// ForeignNetNS implements attach.Attacher.
func (a *Attacher) ForeignNetNS(path string) (nsenter.ID, error) {
	id, err := a.NetNS(path)
	if err != nil {
		return id, err
	}
	if id == a.self {
		return nsenter.ID{}, fmt.Errorf("network namespace %s: %w", path, nsenter.ErrOwnNamespace)
	}
	return id, nil
}

// NetNSOfPID implements attach.Attacher.
func (a *Attacher) NetNSOfPID(pid int) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.pids[pid]
	if !ok {
		return "", fmt.Errorf("process %d: %w", pid, os.ErrNotExist)
	}
	return p, nil
}

// ShareMountNS puts process pid in the daemon's mount namespace.
func (a *Attacher) ShareMountNS(pid int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hostMnt[pid] = true
}

// SharesMountNS implements attach.Attacher: processes made by AddPID have
// mount namespaces of their own, unless ShareMountNS said otherwise; any
// other PID is the daemon's.
func (a *Attacher) SharesMountNS(pid int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.pids[pid]
	return !ok || a.hostMnt[pid]
}

// Links implements attach.Attacher.
func (a *Attacher) Links(ctx context.Context, nsPath string) ([]string, error) {
	if err := a.enter(ctx, StepLinks, nsPath); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.netns[nsPath]; !ok {
		return nil, fmt.Errorf("list interfaces in %s: %w", nsPath, os.ErrNotExist)
	}
	names := slices.Clone(a.links[nsPath])
	for k := range a.devices {
		if k.netns == nsPath {
			names = append(names, k.name)
		}
	}
	return names, nil
}

// Open implements attach.Attacher: the device is made (or found, with
// cfg.Existing) and a port opened on it.
func (a *Attacher) Open(ctx context.Context, cfg tap.Config) (attach.Port, error) {
	if err := a.enter(ctx, StepOpen, cfg.NetNS); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.netns[cfg.NetNS]; !ok && cfg.NetNS != "" { // "": the daemon's own (a host interface)
		return nil, fmt.Errorf("open network namespace %s: %w", cfg.NetNS, os.ErrNotExist)
	}
	if slices.Contains(a.links[cfg.NetNS], cfg.Name) {
		return nil, fmt.Errorf("tap %s: %w in %s", cfg.Name, tap.ErrExists, cfg.NetNS)
	}
	return a.openLocked(devKey{cfg.NetNS, cfg.Name}, cfg, cfg.Existing, cfg.Offload)
}

// OpenVM implements attach.Attacher.
func (a *Attacher) OpenVM(ctx context.Context, cfg tap.VMConfig) (attach.Port, error) {
	if err := a.enter(ctx, StepOpenVM, ""); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.openLocked(devKey{"", cfg.Name}, tap.Config{Name: cfg.Name, PortName: cfg.PortName, MTU: cfg.MTU, Existing: cfg.Existing, Owner: cfg.Daemon}, cfg.Existing, false)
}

func (a *Attacher) openLocked(k devKey, cfg tap.Config, existing, offload bool) (attach.Port, error) {
	if a.ports[k] != nil {
		return nil, fmt.Errorf("tap %s: %w (a port is open on it)", k.name, tap.ErrExists)
	}
	d := a.devices[k]
	if d != nil && !existing {
		return nil, fmt.Errorf("tap %s: %w", k.name, tap.ErrExists)
	}
	if d == nil {
		d = &Device{NetNS: k.netns, Name: k.name}
		a.devices[k] = d
	}
	d.Config, d.Opens = cfg, d.Opens+1
	name := cfg.PortName
	if name == "" {
		name = cfg.Name
	}
	p := &Port{Port: porttest.New(name, cfg.MTU), a: a, key: k, offload: offload, onGone: cfg.OnGone}
	a.ports[k] = p
	return p, nil
}

// Marked implements attach.Attacher: the devices in nsPath whose last
// Open named owner.
func (a *Attacher) Marked(nsPath, owner string) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var names []string
	for k, d := range a.devices {
		if k.netns == nsPath && owner != "" && d.Config.Owner == owner {
			names = append(names, k.name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// Remove implements attach.Attacher.
func (a *Attacher) Remove(nsPath, name string) error {
	if err := a.enter(context.Background(), StepRemove, nsPath); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.devices, devKey{nsPath, name})
	return nil
}

// WriteResolvConf implements attach.Attacher. A process's file is kept
// under its path like a named namespace's; what it held before is the
// empty Previous (the file did not exist).
func (a *Attacher) WriteResolvConf(path string, pid int, data []byte) (*rootfs.Previous, error) {
	if err := a.enter(context.Background(), StepWriteResolvConf, ""); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.files[path] = slices.Clone(data)
	if pid > 0 {
		return &rootfs.Previous{}, nil
	}
	return nil, nil
}

// RemoveResolvConf implements attach.Attacher.
func (a *Attacher) RemoveResolvConf(path string, pid int, prev *rootfs.Previous) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.files, path)
	return nil
}

// FindMarked implements attach.Attacher: the device in nsPath whose last
// Open named owner and mac.
func (a *Attacher) FindMarked(nsPath, owner string, mac vswitch.MAC) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, d := range a.devices {
		if k.netns == nsPath && owner != "" && d.Config.Owner == owner && d.Config.MAC == mac {
			return k.name, nil
		}
	}
	return "", nil
}

// ProcessNetNSes implements attach.Attacher: every namespace but the
// daemon's own, by path, sorted.
func (a *Attacher) ProcessNetNSes() ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var paths []string
	for p := range a.netns {
		if p != SelfNetNS {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	return paths, nil
}

// Move moves the device name from the namespace at from to the one at to,
// renamed newName, as a container runtime does with a handoff TAP (""
// is the daemon's own namespace). A port open on it stays open.
func (a *Attacher) Move(from, name, to, newName string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	old, moved := devKey{from, name}, devKey{to, newName}
	d := a.devices[old]
	if d == nil {
		return fmt.Errorf("attachtest: no device %s in %q", name, from)
	}
	if _, ok := a.netns[to]; !ok && to != "" {
		return fmt.Errorf("attachtest: no namespace %s", to)
	}
	if a.devices[moved] != nil || slices.Contains(a.links[to], newName) {
		return fmt.Errorf("attachtest: %s exists in %q", newName, to)
	}
	delete(a.devices, old)
	d.NetNS, d.Name = to, newName
	a.devices[moved] = d
	if p := a.ports[old]; p != nil {
		delete(a.ports, old)
		p.key = moved
		a.ports[moved] = p
	}
	return nil
}

// keyOf returns where p's device is now.
func (a *Attacher) keyOf(p *Port) devKey {
	a.mu.Lock()
	defer a.mu.Unlock()
	return p.key
}

// Port is a device's port: a porttest.Port (Inject to send from the
// "container", Sent to see what reached it) that also keeps the device's
// life cycle.
type Port struct {
	*porttest.Port
	a       *Attacher
	key     devKey // guarded by a.mu: Move changes it
	offload bool
	onGone  func(error)

	mu        sync.Mutex
	forgotten bool
	closed    bool
}

var _ attach.Port = (*Port)(nil)

// Start implements vswitch.Port; it fails if StepStart was told to.
func (p *Port) Start(in vswitch.Ingress) error {
	if err := p.a.enter(context.Background(), StepStart, p.a.keyOf(p).netns); err != nil {
		return err
	}
	return p.Port.Start(in)
}

// Offload implements attach.Port.
func (p *Port) Offload() bool { return p.offload }

// Forget implements attach.Port: the device goes when the port closes.
func (p *Port) Forget() error {
	if err := p.a.enter(context.Background(), StepForget, p.a.keyOf(p).netns); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forgotten = true
	return nil
}

// Close implements vswitch.Port: the port closes, and the device goes if
// it was forgotten.
func (p *Port) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	forgotten := p.forgotten
	p.mu.Unlock()
	p.Port.Close()
	p.a.mu.Lock()
	defer p.a.mu.Unlock()
	if p.a.ports[p.key] == p {
		delete(p.a.ports, p.key)
	}
	if forgotten {
		delete(p.a.devices, p.key)
	}
	return nil
}

// Gone tells the port's owner that the device disappeared under it, as a
// TAP's reader does when its namespace is deleted (tap.Config.OnGone).
func (p *Port) Gone() {
	if p.onGone != nil {
		p.onGone(errors.New("attachtest: device gone"))
	}
}
