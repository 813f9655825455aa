package vnettest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"time"

	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// Two hosts on one network, an HTTP server on one and a client on the
// other, with nothing but the standard library on top.
func Example() {
	t := &exampleT{} // in a test: the test's t
	defer t.done()

	w := vnettest.New(t)
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	server, client := lan.NewHost("server"), lan.NewHost("client")

	l, err := server.Listen("tcp", ":80")
	if err != nil {
		t.Fatalf("%v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.RemoteAddr)
	})}
	go srv.Serve(l)
	defer srv.Close()

	resp, err := client.HTTPClient().Get("http://server/")
	if err != nil {
		t.Fatalf("%v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("%s from %s\n", resp.Status, body[:14])
	// Output: 200 OK from hello 10.0.0.3
}

// TLS over a wire that loses 5% of frames, reorders 10% and jitters the
// rest: the handshake and the transfer complete, and the wire's counters
// show what it did.
func Example_tlsOverLossyLink() {
	t := &exampleT{}
	defer t.done()

	w := vnettest.New(t, vnettest.Seed(1))
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	server, client := lan.NewHost("server"), lan.NewHost("client")
	err := client.Wire().Impair(
		vnettest.Loss(0.05),
		vnettest.Reorder(0.1, 3*time.Millisecond),
		vnettest.Delay(time.Millisecond, 500*time.Microsecond),
	)
	if err != nil {
		t.Fatalf("%v", err)
	}

	cert := selfSigned("server")
	l, err := server.Listen("tcp", ":443")
	if err != nil {
		t.Fatalf("%v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 256<<10)) // 256 KiB
	})}
	go srv.Serve(tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}}))
	defer srv.Close()

	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	httpc := &http.Client{Transport: &http.Transport{
		DialContext:     client.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: roots},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://server/", nil)
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatalf("%v", err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Proto, n, err)
	fmt.Println("frames lost:", client.Wire().Stats(vnettest.Down).Dropped > 0)
	// Output:
	// HTTP/1.1 262144 <nil>
	// frames lost: true
}

// selfSigned makes a certificate for name.
func selfSigned(name string) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// A fuzz target through a custom stage: the stage is the code under test
// (here a filter that drops telnet), sitting on host a's wire; FuzzFrames
// feeds the fuzzer's input in as frames and checks that the network
// survives. In a _test.go file of your own this is
//
//	func FuzzFilter(f *testing.F) {
//		w := vnettest.New(f)
//		...
//		f.Fuzz(func(t *testing.T, data []byte) { vnettest.FuzzFrames(t, a, data) })
//	}
//
// and `go test -fuzz FuzzFilter` explores it; here the seed inputs run once.
func Example_fuzzThroughStage() {
	f := &exampleT{} // in a fuzz target: the *testing.F
	defer f.done()

	w := vnettest.New(f, vnettest.Seed(1))
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	a, _ := lan.NewHost("a"), lan.NewHost("b")
	dropped := 0
	filter := vnettest.StageFunc(func(_ *vnettest.StageContext, p vnettest.Packet, emit func(vnettest.Packet)) {
		if isTelnet(p.Data) {
			dropped++
			return
		}
		emit(p)
	})
	if err := a.Wire().SetStages(vnettest.Up, filter); err != nil {
		f.Fatalf("%v", err)
	}
	for _, seed := range [][]byte{frameSeed(synTo23()), frameSeed([]byte("not a frame"), make([]byte, 1514))} {
		t := &exampleT{} // in a fuzz target: the *testing.T of f.Fuzz
		vnettest.FuzzFrames(t, a, seed)
		fmt.Println("network survived:", !t.Failed())
	}
	fmt.Println("telnet frames dropped:", dropped)
	// Output:
	// network survived: true
	// network survived: true
	// telnet frames dropped: 1
}

// isTelnet reports whether f is an IPv4 TCP segment to port 23.
func isTelnet(f []byte) bool {
	if len(f) < 14+20 || f[12] != 0x08 || f[13] != 0x00 || f[14]>>4 != 4 || f[14+9] != 6 {
		return false
	}
	ihl := int(f[14]&0xf) * 4
	return ihl >= 20 && len(f) >= 14+ihl+4 && int(f[14+ihl+2])<<8|int(f[14+ihl+3]) == 23
}

// Two hosts behind NATs of different kinds ask one server what address
// they come from, twice each from one socket, through two server ports:
// the endpoint-independent NAT keeps one mapping, the symmetric one makes
// a mapping per destination.
func Example_natTypes() {
	t := &exampleT{}
	defer t.done()

	w := vnettest.New(t)
	inet := w.NewNetwork("inet", "198.51.100.0/24")
	server := inet.NewHostAt("stun", "198.51.100.10")
	for _, port := range []string{":3478", ":3479"} {
		c, err := server.ListenPacket("udp", port)
		if err != nil {
			t.Fatalf("%v", err)
		}
		defer c.Close()
		go func() { // answer each datagram with its source address
			buf := make([]byte, 1500)
			for {
				_, from, err := c.ReadFrom(buf)
				if err != nil {
					return
				}
				c.WriteTo([]byte(from.String()), from)
			}
		}()
	}
	kinds := []vnettest.NATConfig{
		{Mapping: vnettest.EndpointIndependent, Filtering: vnettest.EndpointIndependent, PublicAddr: "198.51.100.2"},
		{Mapping: vnettest.AddressAndPortDependent, Filtering: vnettest.AddressAndPortDependent, PublicAddr: "198.51.100.3"},
	}
	for i, cfg := range kinds {
		lan := w.NewNetwork(fmt.Sprintf("lan%d", i), fmt.Sprintf("10.%d.0.0/24", i))
		w.NewNATBox(fmt.Sprintf("nat%d", i), lan, inet, cfg)
		h := lan.NewHost(fmt.Sprintf("peer%d", i))
		sock, err := h.ListenPacket("udp", ":4000")
		if err != nil {
			t.Fatalf("%v", err)
		}
		var seen []string
		for _, port := range []int{3478, 3479} {
			sock.WriteTo([]byte("who am i"), &net.UDPAddr{IP: server.Addr().AsSlice(), Port: port})
			buf := make([]byte, 64)
			sock.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _, err := sock.ReadFrom(buf)
			if err != nil {
				t.Fatalf("%v", err)
			}
			seen = append(seen, string(buf[:n]))
		}
		sock.Close()
		fmt.Printf("%s mapping: %v\n", cfg.Mapping, seen)
	}
	// Output:
	// endpoint-independent mapping: [198.51.100.2:20000 198.51.100.2:20000]
	// address-and-port-dependent mapping: [198.51.100.3:20000 198.51.100.3:20001]
}
