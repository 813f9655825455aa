package daemoncmd

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon"
	"github.com/switchyard-net/switchyard/daemon/metrics"
	"github.com/switchyard-net/switchyard/internal/privdir"
)

// serveDebug serves Go's pprof handlers on a unix socket at path (mode
// 0600, in a directory private to the daemon's user), never on TCP:
// profiles reveal internals, and a TCP port on loopback is reachable by
// every local user. It stops when ctx ends.
func serveDebug(ctx context.Context, path string, log *zap.Logger) error {
	if err := privdir.Ensure(filepath.Dir(path)); err != nil {
		return fmt.Errorf("--debug-socket %s: %w", path, err)
	}
	os.Remove(path) // a stale socket of an earlier run
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("--debug-socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("--debug-socket %s: %w", path, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	serveUntil(ctx, l, mux)
	log.Info("serving pprof", zap.String("socket", path))
	return nil
}

// listenMetrics opens the metrics listener at addr ("" for none).
func listenMetrics(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	if _, err := netip.ParseAddrPort(addr); err != nil {
		return nil, fmt.Errorf("invalid --metrics %q: want an IP address and port, like 127.0.0.1:9100", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	return l, nil
}

// serveMetrics serves Prometheus metrics of d at http://ADDR/metrics on l
// until ctx ends.
func serveMetrics(ctx context.Context, l net.Listener, d *daemon.Daemon, log *zap.Logger) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(d.Stats))
	serveUntil(ctx, l, mux)
	log.Info("serving metrics", zap.String("url", "http://"+l.Addr().String()+"/metrics"))
}

// serveUntil serves h on l until ctx ends.
func serveUntil(ctx context.Context, l net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
}
