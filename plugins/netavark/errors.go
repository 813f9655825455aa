package netavark

import (
	"errors"
	"regexp"
	"strings"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// The daemon names the offending fields of its own requests; podman's
// users know the fields of netavark's JSON. These tables say which of
// podman's inputs each API field came from.
var (
	endpointFields = map[string]string{
		"netns":        "netns path",
		"ifname":       "network_options.interface_name",
		"ip":           "network_options.static_ips",
		"ip6":          "network_options.static_ips",
		"mac":          "network_options.static_mac",
		"aliases":      "network_options.aliases",
		"publish":      "port_mappings",
		"name":         "container_name",
		"container_id": "container_id",
	}
	networkFields = map[string]string{
		"name":     "network name",
		"subnet":   "subnets[0].subnet",
		"gateway":  "subnets[0].gateway",
		"subnets":  "subnets",
		"gateways": "subnets[].gateway",
		"ipv6":     "ipv6_enabled",
		"mtu":      "options.mtu",
		"internal": "internal",
	}
)

// fieldRef is an API field named inside a problem's text, like `netns`.
var fieldRef = regexp.MustCompile("`([a-z0-9_]+)`")

// inNetavarkWords renders a daemon's validation error with podman's field
// names in place of the API's; other errors pass unchanged.
func inNetavarkWords(err error, names map[string]string) error {
	var ve *api.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	name := func(f string) string {
		if n, ok := names[f]; ok {
			return n
		}
		return f
	}
	refs := func(s string) string {
		return fieldRef.ReplaceAllStringFunc(s, func(ref string) string { return name(strings.Trim(ref, "`")) })
	}
	lines := make([]string, len(ve.Fields))
	for i, f := range ve.Fields {
		f.Problem, f.Accepted = refs(f.Problem), refs(f.Accepted)
		lines[i] = f.Render(name(f.Field))
	}
	return &wordsError{msg: "invalid " + strings.Join(lines, "; "), err: err}
}

// wordsError is an error rewritten in podman's words; it still wraps the
// daemon's.
type wordsError struct {
	msg string
	err error
}

func (e *wordsError) Error() string { return e.msg }
func (e *wordsError) Unwrap() error { return e.err }
