package kafka

import (
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

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/weir-stream/weir/message"
)

// selfSigned returns a server certificate for 127.0.0.1 and the path of
// its PEM file (it is its own CA).
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kfake"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caFile
}

func TestTLS(t *testing.T) {
	cert, caFile := selfSigned(t)
	c := newCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	addrs := c.ListenAddrs()
	ctx := testCtx(t, 30*time.Second)

	untrusted := newTestOutput(t, addrs, map[string]any{"tls": map[string]any{"enabled": true}})
	if err := untrusted.Connect(ctx); err == nil {
		t.Fatal("connect trusting only the system roots succeeded")
	}
	out := newTestOutput(t, addrs, map[string]any{"topic": "in", "tls": map[string]any{"enabled": true, "ca_file": caFile}})
	if err := out.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := out.Write(ctx, message.FromStrings("secret")); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(ctx); err != nil {
		t.Fatal(err)
	}
	in := newTestInput(t, addrs, map[string]any{"tls": map[string]any{"enabled": true, "skip_verify": true}})
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, rows := read(t, ctx, in, 1)
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if rows[0].value != "secret" {
		t.Fatalf("read %q", rows[0].value)
	}
}
