package kafka

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
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

const (
	saslUser = "shipper"
	saslPass = "s3cret-Pa55word"
)

// TestSASL authenticates with each mechanism against a broker that
// requires it, the password given inline or in a file.
func TestSASL(t *testing.T) {
	tests := []struct {
		mechanism string // ours
		kfake     string // the broker's name for it
		consumer  sasl.Mechanism
		fromFile  bool
	}{
		{"plain", "PLAIN", plain.Auth{User: saslUser, Pass: saslPass}.AsMechanism(), false},
		{"scram-sha-256", "SCRAM-SHA-256", scram.Auth{User: saslUser, Pass: saslPass}.AsSha256Mechanism(), true},
		{"scram-sha-512", "SCRAM-SHA-512", scram.Auth{User: saslUser, Pass: saslPass}.AsSha512Mechanism(), false},
	}
	for _, tt := range tests {
		t.Run(tt.mechanism, func(t *testing.T) {
			c := newCluster(t, kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(tt.kfake, saslUser, saslPass))
			cfg := configFor(c.ListenAddrs())
			cfg.SASL = &SASLConfig{Mechanism: tt.mechanism, Username: saslUser, Password: saslPass}
			if tt.fromFile {
				f := filepath.Join(t.TempDir(), "pw")
				if err := os.WriteFile(f, []byte(saslPass+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				cfg.SASL.Password, cfg.SASL.PasswordFile = "", f
			}
			o := newOutput(t, cfg)
			if d := o.Describe(); strings.Contains(d, saslPass) || !strings.Contains(d, tt.mechanism) {
				t.Errorf("Describe() = %q: want the mechanism, never the password", d)
			}
			if err := o.Check(context.Background()); err != nil {
				t.Errorf("Check: %v", err)
			}
			s := &shipper{t: t, o: o}
			for _, b := range batches(testSource("app", "/a"), 300, 100, 20) {
				s.ship(b)
			}
			if len(s.errs) != 0 {
				t.Errorf("Send failed: %v", joinErrs(s.errs))
			}
			recs := consume(t, c.ListenAddrs(), []string{"app"}, 300, kgo.SASL(tt.consumer))
			if m := missing(seqs(recs)["app"], 300); len(m) > 0 {
				t.Errorf("missing %v", m)
			}

			// A wrong password is retried, and no error shows it.
			const wrong = "wrong-Pa55word-xyz"
			cfg.SASL.Password, cfg.SASL.PasswordFile = wrong, ""
			bad := newOutput(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
			defer cancel()
			err := bad.Send(ctx, batches(testSource("app", "/a"), 3, 10, 0)[0])
			if err == nil {
				t.Fatal("Send with a wrong password succeeded")
			}
			if strings.Contains(err.Error(), wrong) || strings.Contains(bad.Describe(), wrong) {
				t.Errorf("the password shows in %q", err)
			}
			t.Logf("wrong password: %v", err)
		})
	}
}

// TestTLS ships over TLS to a broker that requires a client certificate
// signed by the test CA.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	serverCert := ca.issue(t, "broker", true)
	clientCert := ca.issue(t, "shipper", false)
	caFile := writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.cert.Raw)
	certFile := writePEM(t, dir, "client.pem", "CERTIFICATE", clientCert.Certificate[0])
	keyDER, err := x509.MarshalPKCS8PrivateKey(clientCert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writePEM(t, dir, "client-key.pem", "PRIVATE KEY", keyDER)

	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	c := newCluster(t, kfake.NumBrokers(1), kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}))
	cfg := configFor(c.ListenAddrs())
	cfg.TLS = &TLSConfig{CA: caFile, Cert: certFile, Key: keyFile}
	o := newOutput(t, cfg)
	if err := o.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	s := &shipper{t: t, o: o}
	for _, b := range batches(testSource("app", "/a"), 300, 100, 20) {
		s.ship(b)
	}
	if len(s.errs) != 0 {
		t.Errorf("Send failed: %v", joinErrs(s.errs))
	}
	recs := consume(t, c.ListenAddrs(), []string{"app"}, 300, kgo.DialTLSConfig(&tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12,
	}))
	if m := missing(seqs(recs)["app"], 300); len(m) > 0 {
		t.Errorf("missing %v", m)
	}

	// Without the CA the broker's certificate is refused, and retried.
	cfg.TLS = &TLSConfig{Cert: certFile, Key: keyFile}
	bad := newOutput(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	if err := bad.Send(ctx, batches(testSource("app", "/a"), 3, 10, 0)[0]); err == nil {
		t.Fatal("Send trusting no test CA succeeded")
	} else {
		t.Logf("untrusted broker: %v", err)
	}
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T) *testCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "logagent test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

var serial int64 = 1

func (ca *testCA) issue(t *testing.T, name string, server bool) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
