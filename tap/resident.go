package tap

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Resident helpers. Starting the helper costs a process start (tens of
// milliseconds for this binary) per request. A process that already lives
// in the namespace, as root of its user namespace, can serve the same
// requests over a socket for as long as it runs: `switchyard run`'s init
// does, so that its TAP costs no extra process. ServeHelper is its side;
// RegisterHelper makes runHelper use it for that namespace instead of
// starting one.

var residents struct {
	sync.Mutex
	m map[string]*resident
}

type resident struct {
	mu   sync.Mutex // one exchange at a time
	conn *os.File
}

// RegisterHelper makes requests for the namespace at nsPath go to the
// process at the other end of conn (a SOCK_SEQPACKET socket), which runs
// ServeHelper inside it. The registration owns conn; UnregisterHelper
// closes it.
func RegisterHelper(nsPath string, conn *os.File) {
	residents.Lock()
	defer residents.Unlock()
	if residents.m == nil {
		residents.m = map[string]*resident{}
	}
	if old := residents.m[nsPath]; old != nil {
		old.conn.Close()
	}
	residents.m[nsPath] = &resident{conn: conn}
}

// UnregisterHelper forgets the resident helper of nsPath and closes its
// connection, which ends its ServeHelper.
func UnregisterHelper(nsPath string) {
	residents.Lock()
	r := residents.m[nsPath]
	delete(residents.m, nsPath)
	residents.Unlock()
	if r != nil {
		r.mu.Lock()
		r.conn.Close()
		r.mu.Unlock()
	}
}

// residentFor returns the resident helper of nsPath, if any.
func residentFor(nsPath string) *resident {
	residents.Lock()
	defer residents.Unlock()
	return residents.m[nsPath]
}

func (r *resident) exchange(req helperRequest) (helperReply, *os.File, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reply, file, err := exchange(r.conn, req)
	if err != nil {
		return reply, file, fmt.Errorf("resident TAP helper: %w", err)
	}
	return reply, file, nil
}

// ServeHelper answers helper requests on conn, in the caller's network
// namespace and with its capabilities, until conn reaches end of file or
// fails. It is the resident side of RegisterHelper.
func ServeHelper(conn *os.File) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := conn.Read(buf)
		if n == 0 || errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed) {
			return nil // the daemon is done with us
		}
		if err != nil {
			return err
		}
		var req helperRequest
		if err := json.Unmarshal(buf[:n], &req); err != nil {
			return fmt.Errorf("helper request: %w", err)
		}
		reply, fd := serveHelper(req)
		b, _ := json.Marshal(reply)
		var oob []byte
		if fd >= 0 {
			oob = unix.UnixRights(fd)
		}
		err = unix.Sendmsg(int(conn.Fd()), b, oob, nil, 0)
		if fd >= 0 {
			unix.Close(fd)
		}
		if err != nil {
			return fmt.Errorf("helper answer: %w", err)
		}
	}
}
