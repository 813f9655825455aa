package tap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/internal/nsexec"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// Rootless TAPs. An unprivileged process cannot enter a network namespace
// that belongs to another user namespace, even one its own user created:
// it must enter that user namespace first, which needs a single-threaded
// process. So a short-lived helper does the namespace work: the current
// executable started again as
//
//	self __switchyard-tap-helper      fd 3: a SOCK_SEQPACKET socket to the parent
//	                                  fd 4: the owning user namespace, fd 5: the network namespace
//
// with internal/nsexec entering both before the Go runtime starts. It
// reads one request from fd 3 (open, list or remove), does it inside the
// namespaces with the capabilities the user namespace grants, and answers
// on fd 3 — with the TAP's file descriptor attached (SCM_RIGHTS) for open.
// slirp4netns creates its TAP the same way.

// HelperArg is argv[1] of a process started as the TAP helper. Binaries
// that open TAPs as an unprivileged user must call RunHelper when they
// see it (cmd/switchyard does; so do the tests' TestMain).
const HelperArg = "__switchyard-tap-helper"

type helperOp string

const (
	opOpen   helperOp = "open"
	opLinks  helperOp = "links"
	opRemove helperOp = "remove"
)

type helperRequest struct {
	Op        helperOp       `json:"op"`
	Name      string         `json:"name,omitempty"`
	Offload   bool           `json:"offload,omitempty"`
	Existing  bool           `json:"existing,omitempty"`
	Configure bool           `json:"configure,omitempty"`
	MAC       vswitch.MAC    `json:"mac"`
	MTU       int            `json:"mtu,omitempty"`
	Addrs     []netip.Prefix `json:"addrs,omitempty"`
	Gateway   netip.Addr     `json:"gateway,omitzero"`
	Owner     string         `json:"owner,omitempty"`
	Gateway6  netip.Addr     `json:"gateway6,omitzero"`
}

type helperReply struct {
	Name    string   `json:"name,omitempty"`
	Offload bool     `json:"offload,omitempty"`
	USO     bool     `json:"uso,omitempty"`
	Links   []string `json:"links,omitempty"`
	Err     string   `json:"err,omitempty"`
	// Exists marks Err as ErrExists; NotOurs as ErrNotOurs.
	Exists  bool `json:"exists,omitempty"`
	NotOurs bool `json:"not_ours,omitempty"`
}

// ErrNoHelper is returned when a rootless TAP is needed but this binary
// cannot run the helper (built without cgo).
var ErrNoHelper = errors.New("this binary cannot enter user namespaces (built without cgo)")

// needsHelper reports whether this process must use the helper to work in
// the namespace at nsPath: it is not root, so it cannot enter it directly.
func needsHelper(nsPath string) bool {
	return nsPath != "" && os.Geteuid() != 0
}

// runHelper starts the helper in the namespace at nsPath (and the user
// namespace that owns it), sends req and returns its reply and the file
// descriptor it sent, if any.
func runHelper(nsPath string, req helperRequest) (helperReply, *os.File, error) {
	if r := residentFor(nsPath); r != nil {
		return r.exchange(req)
	}
	if !nsexec.Available() {
		return helperReply{}, nil, ErrNoHelper
	}
	self, err := os.Executable()
	if err != nil {
		return helperReply{}, nil, fmt.Errorf("find own executable for the TAP helper: %w", err)
	}
	netFile, err := os.Open(nsPath)
	if err != nil {
		return helperReply{}, nil, fmt.Errorf("open network namespace %s: %w", nsPath, err)
	}
	defer netFile.Close()
	userFD, err := unix.IoctlRetInt(int(netFile.Fd()), nsGetUserNS)
	if err != nil {
		return helperReply{}, nil, fmt.Errorf("find the user namespace that owns %s: %w", nsPath, err)
	}
	userFile := os.NewFile(uintptr(userFD), "userns")
	defer userFile.Close()
	if same, _ := sameNamespace(userFile, "/proc/self/ns/user"); same {
		return helperReply{}, nil, fmt.Errorf("network namespace %s belongs to the host's user namespace, which an unprivileged process cannot work in: "+
			"create it from a user namespace of your own (unshare -Urn, or a rootless runtime), or run the daemon as root", nsPath)
	}

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return helperReply{}, nil, fmt.Errorf("socketpair for the TAP helper: %w", err)
	}
	parent := os.NewFile(uintptr(fds[0]), "tap-helper-parent")
	child := os.NewFile(uintptr(fds[1]), "tap-helper-child")
	defer parent.Close()

	cmd := exec.Command(self, HelperArg)
	cmd.ExtraFiles = []*os.File{child, userFile, netFile} // fds 3, 4, 5
	cmd.Env = append(os.Environ(), nsexec.EnvUser+"=/proc/self/fd/4", nsexec.EnvNet+"=/proc/self/fd/5")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		child.Close()
		return helperReply{}, nil, fmt.Errorf("start the TAP helper: %w", err)
	}
	child.Close()
	reply, file, err := exchange(parent, req)
	werr := cmd.Wait()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" && werr != nil {
			msg = werr.Error()
		}
		if msg != "" {
			return helperReply{}, nil, fmt.Errorf("TAP helper in %s: %s", nsPath, msg)
		}
		return helperReply{}, nil, fmt.Errorf("TAP helper in %s: %w", nsPath, err)
	}
	return reply, file, nil
}

// exchange sends req on conn and reads the reply and any passed fd.
func exchange(conn *os.File, req helperRequest) (helperReply, *os.File, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return helperReply{}, nil, err
	}
	if _, err := conn.Write(b); err != nil {
		return helperReply{}, nil, err
	}
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(conn.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return helperReply{}, nil, err
	}
	if n == 0 {
		return helperReply{}, nil, errors.New("helper exited without answering")
	}
	var reply helperReply
	if err := json.Unmarshal(buf[:n], &reply); err != nil {
		return helperReply{}, nil, fmt.Errorf("helper answer: %w", err)
	}
	var file *os.File
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err == nil && len(msgs) > 0 {
			if fds, err := unix.ParseUnixRights(&msgs[0]); err == nil && len(fds) == 1 {
				if err := unix.SetNonblock(fds[0], true); err != nil {
					unix.Close(fds[0])
					return helperReply{}, nil, err
				}
				file = os.NewFile(uintptr(fds[0]), "/dev/net/tun:"+reply.Name)
			}
		}
	}
	return reply, file, nil
}

// RunHelper is the main of the TAP helper process (argv[1] == HelperArg):
// it serves one request on fd 3 and returns the exit status.
func RunHelper() int {
	conn := os.NewFile(3, "tap-helper")
	buf := make([]byte, 64<<10)
	n, err := conn.Read(buf)
	if err != nil {
		fmt.Fprintf(os.Stderr, "switchyard TAP helper: read request: %v\n", err)
		return 1
	}
	var req helperRequest
	if err := json.Unmarshal(buf[:n], &req); err != nil {
		fmt.Fprintf(os.Stderr, "switchyard TAP helper: request: %v\n", err)
		return 1
	}
	reply, fd := serveHelper(req)
	b, _ := json.Marshal(reply)
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	if err := unix.Sendmsg(int(conn.Fd()), b, oob, nil, 0); err != nil {
		fmt.Fprintf(os.Stderr, "switchyard TAP helper: answer: %v\n", err)
		return 1
	}
	return 0
}

// serveHelper does req in the helper's namespaces.
func serveHelper(req helperRequest) (helperReply, int) {
	fail := func(err error) (helperReply, int) {
		return helperReply{Err: err.Error(), Exists: errors.Is(err, ErrExists), NotOurs: errors.Is(err, ErrNotOurs)}, -1
	}
	switch req.Op {
	case opLinks:
		links, err := Links("")
		if err != nil {
			return fail(err)
		}
		return helperReply{Links: links}, -1
	case opRemove:
		if err := Remove("", req.Name); err != nil {
			return fail(err)
		}
		return helperReply{}, -1
	case opOpen:
	default:
		return fail(fmt.Errorf("unknown request %q", req.Op))
	}
	res, err := openConfigured(Config{
		Name: req.Name, Offload: req.Offload, Existing: req.Existing, Configure: req.Configure,
		MAC: req.MAC, MTU: req.MTU, Addrs: req.Addrs, Gateway: req.Gateway, Owner: req.Owner, Gateway6: req.Gateway6,
	})
	if err != nil {
		return fail(err)
	}
	fd, err := unix.Dup(int(res.file.Fd()))
	res.file.Close()
	if err != nil {
		return fail(err)
	}
	return helperReply{Name: res.name, Offload: res.offload, USO: res.uso}, fd
}

// nsGetUserNS is NS_GET_USERNS (linux/nsfs.h): an fd for the user
// namespace that owns a namespace.
const nsGetUserNS = 0xb701

// sameNamespace reports whether f is the namespace at path.
func sameNamespace(f *os.File, path string) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &a); err != nil {
		return false, err
	}
	if err := unix.Stat(path, &b); err != nil {
		return false, err
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}

// openViaHelper opens and configures the TAP of cfg through the helper.
func openViaHelper(cfg Config) (openResult, error) {
	reply, file, err := runHelper(cfg.NetNS, helperRequest{
		Op: opOpen, Name: cfg.Name, Offload: cfg.Offload, Existing: cfg.Existing, Configure: cfg.Configure,
		MAC: cfg.MAC, MTU: cfg.MTU, Addrs: cfg.Addrs, Gateway: cfg.Gateway, Owner: cfg.Owner, Gateway6: cfg.Gateway6,
	})
	if err != nil {
		return openResult{}, err
	}
	if reply.Err != "" {
		return openResult{}, helperError{reply.Err, reply.Exists, reply.NotOurs}
	}
	if file == nil {
		return openResult{}, errors.New("TAP helper sent no file descriptor")
	}
	return openResult{file: file, name: reply.Name, offload: reply.Offload, uso: reply.USO}, nil
}

// helperError is an error the helper reported; it matches ErrExists or
// ErrNotOurs when the helper's did.
type helperError struct {
	msg     string
	exists  bool
	notOurs bool
}

func (e helperError) Error() string { return e.msg }

func (e helperError) Is(target error) bool {
	return (e.exists && target == ErrExists) || (e.notOurs && target == ErrNotOurs)
}

// linksViaHelper lists the interfaces of a namespace through the helper.
func linksViaHelper(nsPath string) ([]string, error) {
	reply, _, err := runHelper(nsPath, helperRequest{Op: opLinks})
	if err != nil {
		return nil, err
	}
	if reply.Err != "" {
		return nil, helperError{msg: reply.Err}
	}
	return reply.Links, nil
}

// removeViaHelper deletes an interface of a namespace through the helper.
func removeViaHelper(nsPath, name string) error {
	reply, _, err := runHelper(nsPath, helperRequest{Op: opRemove, Name: name})
	if err != nil {
		return err
	}
	if reply.Err != "" {
		return helperError{msg: reply.Err, notOurs: reply.NotOurs}
	}
	return nil
}
