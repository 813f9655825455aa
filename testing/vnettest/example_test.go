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
