package main

import (
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// The CONTAINER column: runtime and the first 12 characters of the ID,
// either alone, or "-".
func TestShortContainer(t *testing.T) {
	for _, c := range []struct {
		e    api.Endpoint
		want string
	}{
		{api.Endpoint{}, "-"},
		{api.Endpoint{Runtime: "cni", ContainerID: "0123456789abcdef"}, "cni:0123456789ab"},
		{api.Endpoint{ContainerID: "0123456789abcdef"}, "0123456789ab"},
		{api.Endpoint{Runtime: "docker"}, "docker"},
	} {
		if got := shortContainer(c.e); got != c.want {
			t.Errorf("%+v: %q, want %q", c.e, got, c.want)
		}
	}
}
