package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/switchyard-net/switchyard/internal/privdir"
)

// ErrUnreachable wraps failures to reach the daemon at all.
var ErrUnreachable = errors.New("daemon unreachable")

// Client talks to a daemon over its unix socket. Its zero value is not
// usable; call NewClient.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the daemon listening on socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			// Never trust a socket another user could have put there.
			if err := privdir.CheckSocket(socket); err != nil {
				return nil, err
			}
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:    4,
		IdleConnTimeout: 30 * time.Second,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr}}
}

// Socket returns the socket path the client uses.
func (c *Client) Socket() string { return c.socket }

// do sends a request with an optional JSON body and decodes a JSON answer
// into out (if non-nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://switchyard"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("cannot reach the switchyard daemon at %s (is `switchyard daemon` running? set --socket or SWITCHYARD_SOCKET for another one): %w: %w", c.socket, ErrUnreachable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(data, &e) != nil || e.Message == "" {
			return fmt.Errorf("%s %s: daemon answered %s", method, path, resp.Status)
		}
		return e.asError()
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}

// Version asks the daemon who it is; it doubles as a liveness check.
func (c *Client) Version(ctx context.Context) (Version, error) {
	var v Version
	return v, c.do(ctx, http.MethodGet, "/v1/version", nil, &v)
}

// Networks lists networks.
func (c *Client) Networks(ctx context.Context) ([]Network, error) {
	var ns []Network
	return ns, c.do(ctx, http.MethodGet, "/v1/networks", nil, &ns)
}

// Network returns one network.
func (c *Client) Network(ctx context.Context, name string) (Network, error) {
	var n Network
	return n, c.do(ctx, http.MethodGet, "/v1/networks/"+url.PathEscape(name), nil, &n)
}

// CreateNetwork creates a network.
func (c *Client) CreateNetwork(ctx context.Context, req NetworkCreate) (Network, error) {
	var n Network
	return n, c.do(ctx, http.MethodPost, "/v1/networks", req, &n)
}

// RemoveNetwork removes a network that has no endpoints.
func (c *Client) RemoveNetwork(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/networks/"+url.PathEscape(name), nil, nil)
}

// Connect attaches a namespace to a network.
func (c *Client) Connect(ctx context.Context, network string, req EndpointCreate) (Endpoint, error) {
	var e Endpoint
	return e, c.do(ctx, http.MethodPost, "/v1/networks/"+url.PathEscape(network)+"/endpoints", req, &e)
}

// Disconnect detaches an endpoint and removes its TAP.
func (c *Client) Disconnect(ctx context.Context, network, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/networks/"+url.PathEscape(network)+"/endpoints/"+url.PathEscape(name), nil, nil)
}

// Endpoints lists endpoints, of one network if network is not empty.
func (c *Client) Endpoints(ctx context.Context, network string) ([]Endpoint, error) {
	p := "/v1/endpoints"
	if network != "" {
		p += "?network=" + url.QueryEscape(network)
	}
	var es []Endpoint
	return es, c.do(ctx, http.MethodGet, p, nil, &es)
}

// AddPort publishes one more -p spec on a running endpoint.
func (c *Client) AddPort(ctx context.Context, network, endpoint, spec string) ([]PortBinding, error) {
	var b []PortBinding
	return b, c.do(ctx, http.MethodPost, "/v1/networks/"+url.PathEscape(network)+"/endpoints/"+url.PathEscape(endpoint)+"/ports", PortRequest{Spec: spec}, &b)
}

// RemovePort unpublishes one -p spec of a running endpoint.
func (c *Client) RemovePort(ctx context.Context, network, endpoint, spec string) error {
	return c.do(ctx, http.MethodDelete, "/v1/networks/"+url.PathEscape(network)+"/endpoints/"+url.PathEscape(endpoint)+"/ports?spec="+url.QueryEscape(spec), nil, nil)
}

// Ports lists published ports, of one endpoint ("network/name") or all.
func (c *Client) Ports(ctx context.Context, endpoint string) ([]PortBinding, error) {
	p := "/v1/ports"
	if endpoint != "" {
		p += "?endpoint=" + url.QueryEscape(endpoint)
	}
	var b []PortBinding
	return b, c.do(ctx, http.MethodGet, p, nil, &b)
}

// NAT returns a network's NAT rules and counters.
func (c *Client) NAT(ctx context.Context, network string) (NATTable, error) {
	var t NATTable
	return t, c.do(ctx, http.MethodGet, "/v1/networks/"+url.PathEscape(network)+"/nat", nil, &t)
}

// Conntrack lists tracked connections, of one network if network is set.
func (c *Client) Conntrack(ctx context.Context, network string) ([]ConntrackEntry, error) {
	p := "/v1/conntrack"
	if network != "" {
		p += "?network=" + url.QueryEscape(network)
	}
	var es []ConntrackEntry
	return es, c.do(ctx, http.MethodGet, p, nil, &es)
}

// Capture streams a pcap of an endpoint's frames (count frames, 0 for no
// limit) until ctx ends. The caller closes the returned body.
func (c *Client) Capture(ctx context.Context, network, endpoint string, count int) (io.ReadCloser, error) {
	p := fmt.Sprintf("/v1/networks/%s/endpoints/%s/capture?count=%d", url.PathEscape(network), url.PathEscape(endpoint), count)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://switchyard"+p, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the switchyard daemon at %s (is `switchyard daemon` running?): %w: %w", c.socket, ErrUnreachable, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e Error
		if json.Unmarshal(data, &e) != nil || e.Message == "" {
			return nil, fmt.Errorf("capture: daemon answered %s", resp.Status)
		}
		return nil, e.asError()
	}
	return resp.Body, nil
}

// Stats returns every counter of the daemon.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	return s, c.do(ctx, http.MethodGet, "/v1/stats", nil, &s)
}

// Tunnel describes a network's tunnel.
func (c *Client) Tunnel(ctx context.Context, network string) (Tunnel, error) {
	var t Tunnel
	return t, c.do(ctx, http.MethodGet, "/v1/networks/"+url.PathEscape(network)+"/tunnel", nil, &t)
}

// AddTunnelPeer adds a static peer to a network's tunnel.
func (c *Client) AddTunnelPeer(ctx context.Context, network, addr string) (Tunnel, error) {
	var t Tunnel
	return t, c.do(ctx, http.MethodPost, "/v1/networks/"+url.PathEscape(network)+"/tunnel/peers", PeerRequest{Addr: addr}, &t)
}

// RotateTunnelKey starts replacing the key of a network's sealed tunnel.
func (c *Client) RotateTunnelKey(ctx context.Context, network string, req KeyRotation) (Tunnel, error) {
	var t Tunnel
	return t, c.do(ctx, http.MethodPost, "/v1/networks/"+url.PathEscape(network)+"/tunnel/key", req, &t)
}

// RemoveTunnelPeer removes a static peer from a network's tunnel.
func (c *Client) RemoveTunnelPeer(ctx context.Context, network, addr string) error {
	return c.do(ctx, http.MethodDelete, "/v1/networks/"+url.PathEscape(network)+"/tunnel/peers?addr="+url.QueryEscape(addr), nil, nil)
}
