package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
)

// Listen opens the plugin's socket at path (DefaultSocket for dockerd),
// making its directory and replacing a socket left by a previous run.
// The socket is for root's dockerd: mode 0600.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("docker plugin socket %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("docker plugin socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("docker plugin socket %s: another process serves it", path)
		}
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("docker plugin socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("docker plugin socket %s: %w", path, err)
	}
	return l, nil
}

// Serve serves the plugin on l until ctx ends, then removes the socket.
func (p *Plugin) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(p.log.Named("http"))}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	p.log.Info("serving the Docker network and IPAM driver", zap.String("socket", l.Addr().String()))
	select {
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
		os.Remove(l.Addr().String())
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve docker plugin on %s: %w", l.Addr(), err)
	}
}
