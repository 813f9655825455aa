package etcdtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Certs are PEM files made for one test: a CA, a server certificate for
// 127.0.0.1 (and the server's own address) signed by it, and a client
// certificate signed by it.
type Certs struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

// NewCerts writes a fresh CA and its server and client certificates to
// a temporary directory; the server's is valid for 127.0.0.1 and ips.
func NewCerts(t testing.TB, ips ...net.IP) Certs {
	t.Helper()
	dir := t.TempDir()
	caKey, ca := mustCert(t, nil, nil, &x509.Certificate{
		Subject: pkix.Name{CommonName: "switchyard test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	})
	c := Certs{CA: filepath.Join(dir, "ca.pem")}
	writePEM(t, c.CA, "CERTIFICATE", ca.Raw)
	// The server certificate serves clients and, inside etcd, its own
	// gateway, which connects as a client.
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	for _, leaf := range []struct {
		cert, key *string
		name      string
		tmpl      x509.Certificate
	}{
		{&c.ServerCert, &c.ServerKey, "server", x509.Certificate{Subject: pkix.Name{CommonName: "etcd"},
			IPAddresses: append([]net.IP{net.IPv4(127, 0, 0, 1)}, ips...), ExtKeyUsage: both}},
		{&c.ClientCert, &c.ClientKey, "client", x509.Certificate{Subject: pkix.Name{CommonName: "switchyard-host"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}},
	} {
		leaf.tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		key, cert := mustCert(t, &leaf.tmpl, ca, caKey)
		*leaf.cert, *leaf.key = filepath.Join(dir, leaf.name+".pem"), filepath.Join(dir, leaf.name+"-key.pem")
		writePEM(t, *leaf.cert, "CERTIFICATE", cert.Raw)
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, *leaf.key, "EC PRIVATE KEY", der)
	}
	return c
}

// mustCert makes a key and a certificate from tmpl signed by parent's
// key (self-signed if parent is nil: then signer is the template).
func mustCert(t testing.TB, tmpl *x509.Certificate, parent *x509.Certificate, signer any) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		tmpl, parent, signer = signer.(*x509.Certificate), signer.(*x509.Certificate), key
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// clientTLS is the client side of c, for the health check.
func (c Certs) clientTLS(t testing.TB) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	b, err := os.ReadFile(c.CA)
	if err != nil || !pool.AppendCertsFromPEM(b) {
		t.Fatalf("CA %s: %v", c.CA, err)
	}
	kp, err := tls.LoadX509KeyPair(c.ClientCert, c.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{kp}}
}

// enableAuth creates user root with password and turns etcd's auth on,
// reaching the server through dial if set.
func enableAuth(t testing.TB, url string, tc *tls.Config, dial func(ctx context.Context, network, addr string) (net.Conn, error), password string) {
	t.Helper()
	cfg := clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, TLS: tc, Logger: zap.NewNop()}
	if dial != nil {
		cfg.DialOptions = []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dial(ctx, "tcp", addr)
		})}
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.UserAdd(ctx, "root", password); err != nil {
		t.Fatalf("etcd user add root: %v", err)
	}
	if _, err := c.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatalf("etcd grant root: %v", err)
	}
	if _, err := c.AuthEnable(ctx); err != nil {
		t.Fatalf("etcd auth enable: %v", err)
	}
}
