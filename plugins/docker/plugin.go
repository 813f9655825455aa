package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// Name is the plugin's name: Docker's -d and --ipam-driver value, and the
// base name of its socket in /run/docker/plugins.
const Name = "switchyard"

// DefaultSocket is where dockerd looks for the plugin.
const DefaultSocket = "/run/docker/plugins/" + Name + ".sock"

// Daemon is what the plugin asks of the Switchyard daemon: the methods of
// *api.Client it uses.
type Daemon interface {
	Networks(ctx context.Context) ([]api.Network, error)
	CreateNetwork(ctx context.Context, req api.NetworkCreate) (api.Network, error)
	RemoveNetwork(ctx context.Context, name string) error
	Connect(ctx context.Context, network string, req api.EndpointCreate) (api.Endpoint, error)
	Disconnect(ctx context.Context, network, name string) error
	Endpoints(ctx context.Context, network string) ([]api.Endpoint, error)
	AddPort(ctx context.Context, network, endpoint, spec string) ([]api.PortBinding, error)
	RemovePort(ctx context.Context, network, endpoint, spec string) error
	Ports(ctx context.Context, endpoint string) ([]api.PortBinding, error)
}

var _ Daemon = (*api.Client)(nil)

// Plugin serves libnetwork's remote network driver and remote IPAM
// protocols, translating each call into calls on a Switchyard daemon.
// Create it with New; it is an http.Handler.
type Plugin struct {
	d   Daemon
	log *zap.Logger
	mux *http.ServeMux
	// timeout bounds each call on the daemon.
	timeout time.Duration

	mu sync.Mutex
	// networks maps Docker network IDs to Switchyard network names, for
	// the networks made since the plugin started (others are found by
	// their default name).
	networks map[string]string
	// endpoints are the endpoints Docker created and has not joined yet
	// (see Join), by Docker endpoint ID.
	endpoints map[string]pendingEndpoint
	// handed holds the addresses RequestAddress gave out and Docker has
	// not released, by pool: the daemon holds them only once their
	// endpoint joins.
	handed map[netip.Prefix]map[netip.Addr]bool
}

// pendingEndpoint is an endpoint between CreateEndpoint and Join.
type pendingEndpoint struct {
	network string
	addr    netip.Prefix
	addr6   netip.Prefix // on a dual-stack network
	mac     string
}

// New returns a plugin that calls d; log may be nil.
func New(d Daemon, log *zap.Logger) *Plugin {
	if log == nil {
		log = zap.NewNop()
	}
	p := &Plugin{
		d: d, log: log.Named("docker"), mux: http.NewServeMux(), timeout: time.Minute,
		networks:  map[string]string{},
		endpoints: map[string]pendingEndpoint{},
		handed:    map[netip.Prefix]map[netip.Addr]bool{},
	}
	p.routes()
	return p
}

// ServeHTTP answers one call of dockerd's.
func (p *Plugin) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.mux.ServeHTTP(w, r) }

// family is the protocol a call belongs to: it decides the shape of the
// error body.
type family int

const (
	familyPlugin family = iota
	familyNetwork
	familyIPAM
)

// handle registers a call: its body is decoded into a new In, and fn's
// answer (or error) encoded in the shape of the call's family.
func handle[In any](p *Plugin, f family, path string, fn func(ctx context.Context, req In) (any, error)) {
	p.mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
		var req In
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err == nil {
			err = decode(body, &req)
		}
		if err != nil {
			p.log.Debug("undecodable call", zap.String("call", path), zap.Error(err))
			p.reply(w, f, http.StatusBadRequest, nil, fmt.Errorf("%s: %w", path, err))
			return
		}
		p.log.Debug("call", zap.String("call", path), zap.ByteString("body", body))
		ctx, cancel := context.WithTimeout(r.Context(), p.timeout)
		defer cancel()
		out, err := fn(ctx, req)
		if err != nil {
			p.log.Info("call failed", zap.String("call", path), zap.Error(err))
		}
		p.reply(w, f, http.StatusOK, out, err)
	})
}

// decode reads a call's JSON body; an empty body is an empty request (the
// calls without payload).
func decode(body []byte, into any) error {
	if len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("undecodable request body: %w", err)
	}
	return nil
}

// reply writes an answer. An error goes in the family's error field: a
// driver that could decode the call answers 200 with it, as the protocol
// asks.
func (p *Plugin) reply(w http.ResponseWriter, f family, status int, out any, err error) {
	w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1+json")
	if err != nil {
		msg := Name + ": " + err.Error()
		switch f {
		case familyIPAM:
			out = ipamError{Error: msg}
		default:
			out = driverError{Err: msg}
		}
	} else if out == nil {
		out = struct{}{}
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(out)
}

// empty is a call with no payload, or one whose payload is not needed.
type empty struct{}

func (p *Plugin) routes() {
	// A call this plugin does not know is a 404, by which Docker knows
	// that the driver does not implement it.
	p.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		p.reply(w, familyNetwork, http.StatusNotFound, nil, fmt.Errorf("no such call %s %s", r.Method, r.URL.Path))
	})
	handle(p, familyPlugin, "/Plugin.Activate", func(context.Context, empty) (any, error) {
		return activateResponse{Implements: []string{"NetworkDriver", "IpamDriver"}}, nil
	})

	handle(p, familyNetwork, "/NetworkDriver.GetCapabilities", func(context.Context, empty) (any, error) {
		return capabilitiesResponse{Scope: "local", ConnectivityScope: "local"}, nil
	})
	handle(p, familyNetwork, "/NetworkDriver.CreateNetwork", p.createNetwork)
	handle(p, familyNetwork, "/NetworkDriver.DeleteNetwork", p.deleteNetwork)
	handle(p, familyNetwork, "/NetworkDriver.CreateEndpoint", p.createEndpoint)
	handle(p, familyNetwork, "/NetworkDriver.DeleteEndpoint", p.deleteEndpoint)
	handle(p, familyNetwork, "/NetworkDriver.EndpointOperInfo", p.operInfo)
	handle(p, familyNetwork, "/NetworkDriver.Join", p.join)
	handle(p, familyNetwork, "/NetworkDriver.Leave", p.leave)
	handle(p, familyNetwork, "/NetworkDriver.ProgramExternalConnectivity", p.programExternal)
	handle(p, familyNetwork, "/NetworkDriver.RevokeExternalConnectivity", p.revokeExternal)
	// Node discovery concerns multi-host drivers; a local one has nothing
	// to do.
	handle(p, familyNetwork, "/NetworkDriver.DiscoverNew", func(context.Context, empty) (any, error) { return nil, nil })
	handle(p, familyNetwork, "/NetworkDriver.DiscoverDelete", func(context.Context, empty) (any, error) { return nil, nil })

	handle(p, familyIPAM, "/IpamDriver.GetCapabilities", func(context.Context, empty) (any, error) {
		return ipamCapabilitiesResponse{}, nil
	})
	handle(p, familyIPAM, "/IpamDriver.GetDefaultAddressSpaces", func(context.Context, empty) (any, error) {
		return addressSpacesResponse{LocalDefaultAddressSpace: addressSpace, GlobalDefaultAddressSpace: addressSpace}, nil
	})
	handle(p, familyIPAM, "/IpamDriver.RequestPool", p.requestPool)
	handle(p, familyIPAM, "/IpamDriver.ReleasePool", p.releasePool)
	handle(p, familyIPAM, "/IpamDriver.RequestAddress", p.requestAddress)
	handle(p, familyIPAM, "/IpamDriver.ReleaseAddress", p.releaseAddress)
}

// isNotFound reports whether the daemon said the thing is not there.
func isNotFound(err error) bool { return errors.Is(err, api.ErrNotFound) }
