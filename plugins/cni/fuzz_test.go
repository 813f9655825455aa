package cni

import (
	"strings"
	"testing"
)

// FuzzParseConfig: any stdin gets a config or an error, never a panic; an
// accepted config names a network and has port mappings that make -p
// specs the daemon's parser accepts the shape of.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		`{"cniVersion":"1.1.0","name":"synet","type":"switchyard","subnet":"10.99.0.0/24"}`,
		`{"cniVersion":"0.3.1","name":"k8s","type":"switchyard","network":"pods","socket":"/run/switchyard/switchyard.sock"}`,
		`{"cniVersion":"1.0.0","name":"n","type":"switchyard","runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"udp","hostIP":"::1"}],"ips":["10.0.0.2/24"],"mac":"02:00:00:00:00:01"}}`,
		`{"cniVersion":"1.0.0","name":"n","type":"switchyard","prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.0.0.2/24","interface":0}]}}`,
		`{"cniVersion":"1.1.0","name":"n","type":"switchyard","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}`,
		`{"name":"n","type":"switchyard","subnet":"10.0.0.1/24"}`,
		`{}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		conf, err := ParseConfig(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "network config: ") {
				t.Fatalf("error %q does not say it is about the network config", err)
			}
			return
		}
		if conf.Network == "" || conf.Type != PluginType {
			t.Fatalf("accepted %q with network %q, type %q", data, conf.Network, conf.Type)
		}
		for _, pm := range conf.RuntimeConfig.PortMappings {
			spec, err := pm.Spec()
			if err != nil {
				t.Fatalf("accepted mapping %+v: %v", pm, err)
			}
			if !strings.HasSuffix(spec, "/tcp") && !strings.HasSuffix(spec, "/udp") {
				t.Fatalf("spec %q has no protocol", spec)
			}
		}
	})
}

// FuzzParseArgs: CNI_ARGS never panic; an accepted IP= is one address.
func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{
		"", "IgnoreUnknown=1;K8S_POD_NAME=web;K8S_POD_NAMESPACE=default", "IP=10.99.0.7", "IP=10.99.0.7;MAC=02:00:00:00:00:07",
		"IP=", "=", ";;", "FOO=1", "IgnoreUnknown=maybe", "K8S_POD_NAME=a=b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseArgs(s)
		if err != nil {
			if !strings.Contains(err.Error(), "CNI_ARGS") {
				t.Fatalf("error %q does not name CNI_ARGS", err)
			}
			return
		}
		conf := &NetConf{}
		conf.Network = "n"
		r, err := buildRequest(conf, a)
		if err != nil {
			if a.IP == "" {
				t.Fatalf("request from %q without IP= failed: %v", s, err)
			}
			return
		}
		if r.Name != "" && !dnsLabel.MatchString(r.Name) {
			t.Fatalf("name %q is not a DNS label", r.Name)
		}
	})
}
