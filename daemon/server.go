package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/internal/privdir"
)

// Serve listens on the configured socket (mode 0600, its directory created
// 0700 if missing) and serves the API until ctx ends. It refuses to start
// if another daemon answers on the socket, and removes a stale one.
func (d *Daemon) Serve(ctx context.Context) error {
	l, err := Listen(d.cfg.Socket)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           d.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(d.log.Named("http")),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	d.log.Info("serving API", zap.String("socket", d.cfg.Socket))
	select {
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
		os.Remove(d.cfg.Socket)
		return nil
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", d.cfg.Socket, err)
	}
}

// Listen opens the API socket at path.
func Listen(path string) (net.Listener, error) {
	if err := privdir.Ensure(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err == nil {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("socket %s: another switchyard daemon is already listening there (stop it, or give this one another --socket)", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	return l, nil
}

// Handler returns the API's HTTP handler.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/version", func(w http.ResponseWriter, r *http.Request) {
		reply(w, d.VersionInfo(), nil)
	})
	mux.HandleFunc("GET /v1/networks", func(w http.ResponseWriter, r *http.Request) {
		reply(w, d.Networks(), nil)
	})
	mux.HandleFunc("POST /v1/networks", func(w http.ResponseWriter, r *http.Request) {
		var req api.NetworkCreate
		if !decode(w, r, &req) {
			return
		}
		n, err := d.CreateNetwork(r.Context(), req)
		replyStatus(w, http.StatusCreated, n, err)
	})
	mux.HandleFunc("GET /v1/networks/{name}", func(w http.ResponseWriter, r *http.Request) {
		n, err := d.Network(r.PathValue("name"))
		reply(w, n, err)
	})
	mux.HandleFunc("DELETE /v1/networks/{name}", func(w http.ResponseWriter, r *http.Request) {
		replyStatus(w, http.StatusNoContent, nil, d.RemoveNetwork(r.Context(), r.PathValue("name")))
	})
	mux.HandleFunc("POST /v1/networks/{name}/endpoints", func(w http.ResponseWriter, r *http.Request) {
		var req api.EndpointCreate
		if !decode(w, r, &req) {
			return
		}
		e, err := d.Connect(r.Context(), r.PathValue("name"), req)
		replyStatus(w, http.StatusCreated, e, err)
	})
	mux.HandleFunc("DELETE /v1/networks/{name}/endpoints/{ep}", func(w http.ResponseWriter, r *http.Request) {
		replyStatus(w, http.StatusNoContent, nil, d.Disconnect(r.Context(), r.PathValue("name"), r.PathValue("ep")))
	})
	mux.HandleFunc("POST /v1/networks/{name}/endpoints/{ep}/ports", func(w http.ResponseWriter, r *http.Request) {
		var req api.PortRequest
		if !decode(w, r, &req) {
			return
		}
		b, err := d.AddPort(r.Context(), r.PathValue("name"), r.PathValue("ep"), req.Spec)
		replyStatus(w, http.StatusCreated, b, err)
	})
	mux.HandleFunc("DELETE /v1/networks/{name}/endpoints/{ep}/ports", func(w http.ResponseWriter, r *http.Request) {
		replyStatus(w, http.StatusNoContent, nil, d.RemovePort(r.Context(), r.PathValue("name"), r.PathValue("ep"), r.URL.Query().Get("spec")))
	})
	mux.HandleFunc("GET /v1/ports", func(w http.ResponseWriter, r *http.Request) {
		b, err := d.Ports(r.URL.Query().Get("endpoint"))
		if b == nil {
			b = []api.PortBinding{}
		}
		reply(w, b, err)
	})
	mux.HandleFunc("GET /v1/networks/{name}/nat", func(w http.ResponseWriter, r *http.Request) {
		t, err := d.NAT(r.PathValue("name"))
		reply(w, t, err)
	})
	mux.HandleFunc("GET /v1/conntrack", func(w http.ResponseWriter, r *http.Request) {
		es, err := d.Conntrack(r.URL.Query().Get("network"))
		reply(w, es, err)
	})
	mux.HandleFunc("GET /v1/networks/{name}/endpoints/{ep}/capture", func(w http.ResponseWriter, r *http.Request) {
		count, _ := strconv.Atoi(r.URL.Query().Get("count"))
		flusher, _ := w.(http.Flusher)
		started := false
		flush := func() {
			if flusher != nil {
				flusher.Flush()
			}
		}
		w.Header().Set("Content-Type", "application/vnd.tcpdump.pcap")
		_, _, err := d.Capture(r.Context(), r.PathValue("name"), r.PathValue("ep"), count, lazyHeader{w: w, started: &started}, flush)
		if err != nil && !started {
			replyStatus(w, 0, nil, err)
		}
	})
	mux.HandleFunc("GET /v1/networks/{name}/tunnel", func(w http.ResponseWriter, r *http.Request) {
		t, err := d.Tunnel(r.PathValue("name"))
		reply(w, t, err)
	})
	mux.HandleFunc("POST /v1/networks/{name}/tunnel/peers", func(w http.ResponseWriter, r *http.Request) {
		var req api.PeerRequest
		if !decode(w, r, &req) {
			return
		}
		t, err := d.AddTunnelPeer(r.Context(), r.PathValue("name"), req.Addr)
		replyStatus(w, http.StatusCreated, t, err)
	})
	mux.HandleFunc("POST /v1/networks/{name}/tunnel/key", func(w http.ResponseWriter, r *http.Request) {
		var req api.KeyRotation
		if !decode(w, r, &req) {
			return
		}
		t, err := d.RotateTunnelKey(r.Context(), r.PathValue("name"), req)
		reply(w, t, err)
	})
	mux.HandleFunc("DELETE /v1/networks/{name}/tunnel/peers", func(w http.ResponseWriter, r *http.Request) {
		replyStatus(w, http.StatusNoContent, nil, d.RemoveTunnelPeer(r.Context(), r.PathValue("name"), r.URL.Query().Get("addr")))
	})
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
		reply(w, d.Stats(), nil)
	})
	mux.HandleFunc("GET /v1/endpoints", func(w http.ResponseWriter, r *http.Request) {
		es, err := d.Endpoints(r.URL.Query().Get("network"))
		if es == nil {
			es = []api.Endpoint{}
		}
		reply(w, es, err)
	})
	return mux
}

// lazyHeader is the capture's response body: its first write commits the
// 200 status, so an error found before any data can still be an error
// response.
type lazyHeader struct {
	w       http.ResponseWriter
	started *bool
}

func (l lazyHeader) Write(b []byte) (int, error) {
	*l.started = true
	return l.w.Write(b)
}

// maxBody is the largest request body the API reads.
const maxBody = 1 << 20

// decode reads r's body into v: exactly one JSON value with no unknown
// fields, nothing after it, at most maxBody bytes.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errTrailing
			if tooLarge(terr) {
				err = terr
			}
		}
	}
	switch {
	case err == nil:
		return true
	case tooLarge(err):
		replyStatus(w, 0, nil, invalid("request body over %d bytes: send one JSON object of at most 1 MiB", maxBody))
	case err == errTrailing:
		replyStatus(w, 0, nil, invalid("malformed request body: data after the JSON object; send exactly one object"))
	default:
		replyStatus(w, 0, nil, invalid("malformed request body: %v", err))
	}
	return false
}

var errTrailing = errors.New("trailing data")

func tooLarge(err error) bool {
	var mb *http.MaxBytesError
	return errors.As(err, &mb)
}

func reply(w http.ResponseWriter, v any, err error) { replyStatus(w, http.StatusOK, v, err) }

func replyStatus(w http.ResponseWriter, status int, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		code, body := api.Body(err)
		if errors.Is(err, errClosed) {
			code = http.StatusServiceUnavailable
		}
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(body)
		return
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
