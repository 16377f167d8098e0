package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sipguard/sipguard/internal/natstest"
)

// writeCerts makes a CA and a certificate for 127.0.0.1 signed by it, in
// dir: ca.pem, server-cert.pem, server-key.pem.
func writeCerts(t *testing.T, dir string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sipguard test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nats-1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	for name, block := range map[string]*pem.Block{
		"ca.pem": {Type: "CERTIFICATE", Bytes: caDER}, "server-cert.pem": {Type: "CERTIFICATE", Bytes: der},
		"server-key.pem": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestContribServer runs contrib/nats/nats-server.conf as shipped, with
// only its paths and port changed: nodes connect over TLS, checking the
// server's certificate against [cluster] ca; a node without that CA is
// refused and says why.
func TestContribServer(t *testing.T) {
	dir := t.TempDir()
	writeCerts(t, dir)
	conf, err := os.ReadFile(filepath.Join("..", "contrib", "nats", "nats-server.conf"))
	if err != nil {
		t.Fatal(err)
	}
	users, err := os.ReadFile(filepath.Join("..", "contrib", "nats", "users.conf"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer(
		"listen: 0.0.0.0:4222", "listen: 127.0.0.1:-1",
		"/var/lib/nats", filepath.Join(dir, "js"),
		"/etc/nats/", dir+"/",
	).Replace(string(conf))
	if s == string(conf) || strings.Contains(s, "/etc/nats") {
		t.Fatal("contrib/nats/nats-server.conf changed: update this test's replacements")
	}
	os.WriteFile(filepath.Join(dir, "users.conf"), users, 0o600)
	path := filepath.Join(dir, "nats-server.conf")
	os.WriteFile(path, []byte(s), 0o600)
	url := strings.Replace(natstest.Start(t, path).ClientURL(), "nats://", "tls://", 1)
	createStream(t, url, contribStream(t), nats.RootCAs(filepath.Join(dir, "ca.pem")))

	la, lb := newLocal(), newLocal()
	a := runNode(t, Config{Servers: []string{url}, Name: "pbx-a", User: "pbx-a", Password: "pbx-a-secret", CA: filepath.Join(dir, "ca.pem")}, la)
	b := runNode(t, Config{Servers: []string{url}, Name: "pbx-b", User: "pbx-b", Password: "pbx-b-secret", CA: filepath.Join(dir, "ca.pem")}, lb)
	eventually(t, 10*time.Second, "a and b connected over TLS", func() bool { return a.Stats().CaughtUp && b.Stats().CaughtUp })
	a.Publish(testBan("198.51.100.7/32", time.Hour))
	eventually(t, 5*time.Second, "b has a's ban", func() bool { return lb.has("198.51.100.7/32") })

	// Without the CA, the server's certificate is not trusted.
	c := runNode(t, Config{Servers: []string{url}, Name: "pbx-c", User: "pbx-c", Password: "pbx-c-secret"}, newLocal())
	eventually(t, 10*time.Second, "c reports the certificate", func() bool { return strings.Contains(c.Stats().LastError, "certificate") })
	if c.Stats().Connected {
		t.Fatal("c connected without trusting the server's certificate")
	}
	// A wrong password is refused, and said so.
	d := runNode(t, Config{Servers: []string{url}, Name: "pbx-d", User: "pbx-d", Password: "guess", CA: filepath.Join(dir, "ca.pem"), Accept: true, Queue: 1}, newLocal())
	eventually(t, 10*time.Second, "d reports the refusal", func() bool { return strings.Contains(d.Stats().LastError, "uthorization") })
}
