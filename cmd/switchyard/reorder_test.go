package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestReorderArgs(t *testing.T) {
	app := newApp()
	for _, tc := range []struct{ in, want string }{
		{"sy network create web --subnet 10.0.0.0/24 --icc=false", "sy network create --subnet 10.0.0.0/24 --icc=false web"},
		{"sy --socket /s network create web --internal --mtu 9000", "sy --socket /s network create --internal --mtu 9000 web"},
		{"sy connect web --netns /var/run/netns/a --ip 10.0.0.5", "sy connect --netns /var/run/netns/a --ip 10.0.0.5 web"},
		{"sy network create --subnet 10.0.0.0/24 web", "sy network create --subnet 10.0.0.0/24 web"},
		{"sy disconnect web a", "sy disconnect web a"},
		{"sy network create web --aux-address a=10.0.0.9 --aux-address b=10.0.0.10", "sy network create --aux-address a=10.0.0.9 --aux-address b=10.0.0.10 web"},
		{"sy nosuchcommand --x y", "sy nosuchcommand --x y"},
		{"sy connect web -- --netns x", "sy connect web -- --netns x"},
		{"sy daemon --log-format json", "sy --log-format json daemon"},
		{"sy network create web --socket /s --subnet 10.0.0.0/24", "sy --socket /s network create --subnet 10.0.0.0/24 web"},
		{"sy --log-level warn network ls --socket=/s", "sy --log-level warn --socket=/s network ls"},
		{"sy run --log-level debug -p 80 -- cmd --log-format json", "sy --log-level debug run -p 80 -- cmd --log-format json"},
	} {
		got := reorderArgs(app, strings.Fields(tc.in))
		if want := strings.Fields(tc.want); !reflect.DeepEqual(got, want) {
			t.Errorf("reorderArgs(%q) = %q, want %q", tc.in, strings.Join(got, " "), tc.want)
		}
	}
}
