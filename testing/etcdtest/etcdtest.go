// Package etcdtest runs a real etcd server (Debian's etcd-server package)
// for a test: one member, a temporary data directory, stopped by PID when
// the test ends. Tests that join hosts in a cluster use it instead of a
// fake, so that leases, TTLs and watches behave as they do in production.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Binary is where Debian's etcd-server package installs the server.
const Binary = "/usr/bin/etcd"

// Server is a running etcd.
type Server struct {
	// URL is the client URL, http://ADDR (https:// with TLS).
	URL string
	// Certs are the CA and certificates, with TLS.
	Certs Certs
	// Password is root's, with Auth.
	Password string
}

// Config says where the server listens.
type Config struct {
	// NetNS, if set, is the path of a network namespace to run the server
	// in (through nsenter); Dial must then reach ClientAddr there.
	NetNS string
	// ClientAddr and PeerAddr are HOST:PORT to listen on; empty picks
	// free loopback ports.
	ClientAddr, PeerAddr string
	// Dial, if set, opens the connection used to check that the server is
	// up (from inside NetNS).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLS serves clients over TLS only, with certificates made for the
	// test (NewCerts), and requires a client certificate signed by its
	// CA (etcd's --client-cert-auth).
	TLS bool
	// Auth turns etcd's auth on, with user root whose password is
	// Server.Password.
	Auth bool
}

// Start runs the server and waits until it answers /health. It fails the
// test if the binary is missing: .ci/run installs it.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	bin := Binary
	if _, err := os.Stat(bin); err != nil {
		var lerr error
		if bin, lerr = exec.LookPath("etcd"); lerr != nil {
			t.Fatalf("no etcd server (%v): install Debian's etcd-server package, as .ci/run does", err)
		}
	}
	if cfg.ClientAddr == "" {
		cfg.ClientAddr = freeAddr(t)
	}
	if cfg.PeerAddr == "" {
		cfg.PeerAddr = freeAddr(t)
	}
	client, peer := "http://"+cfg.ClientAddr, "http://"+cfg.PeerAddr
	srv := &Server{}
	if cfg.TLS {
		client = "https://" + cfg.ClientAddr
		host, _, _ := net.SplitHostPort(cfg.ClientAddr)
		srv.Certs = NewCerts(t, net.ParseIP(host))
	}
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	args := serverArgs(bin, dir, client, peer, cfg, srv.Certs)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil && len(b) > 0 {
				t.Logf("etcd log:\n%s", b)
			}
		}
	})
	tr := &http.Transport{DisableKeepAlives: true}
	if cfg.TLS {
		tr.TLSClientConfig = srv.Certs.clientTLS(t)
	}
	if cfg.Dial != nil {
		tr.DialContext = cfg.Dial
	}
	waitHealthy(t, &http.Client{Transport: tr, Timeout: time.Second}, client, done, logf.Name())
	srv.URL = client
	if cfg.Auth {
		srv.Password = "pw-" + filepath.Base(dir)
		enableAuth(t, client, tr.TLSClientConfig, cfg.Dial, srv.Password)
	}
	return srv
}

// waitHealthy waits until the server at client answers /health, failing
// the test if it exits (done closes) first or takes over 20 s.
func waitHealthy(t testing.TB, hc *http.Client, client string, done <-chan struct{}, logName string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := hc.Get(client + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("/health: %s", resp.Status)
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logName)
			t.Fatalf("etcd exited: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd at %s not ready after 20 s: %v", client, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serverArgs is the command line of the server.
func serverArgs(bin, dir, client, peer string, cfg Config, certs Certs) []string {
	args := []string{bin,
		"--name", "sytest", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "sytest=" + peer, "--initial-cluster-state", "new",
		// Short election settings make the minimum lease TTL about 1 s.
		"--heartbeat-interval", "50", "--election-timeout", "500",
		"--logger", "zap", "--log-level", "warn",
	}
	if cfg.TLS {
		args = append(args, "--cert-file", certs.ServerCert, "--key-file", certs.ServerKey,
			"--trusted-ca-file", certs.CA, "--client-cert-auth")
	}
	if cfg.NetNS != "" {
		args = append([]string{"nsenter", "--net=" + cfg.NetNS, "--"}, args...)
	}
	return args
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
