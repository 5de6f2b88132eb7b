package benchkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// BenchCert is the certificate every TLS target serves: one ECDSA P-256
// key and a self-signed certificate for 127.0.0.1 and localhost, made at
// bench time in the run's state directory (never committed).
type BenchCert struct {
	// CertFile and KeyFile are the PEM files.
	CertFile, KeyFile string
	// Pool trusts the certificate, for the harness's own checks.
	Pool *x509.CertPool
}

// WriteBenchCert makes a fresh ECDSA P-256 key and a self-signed
// certificate valid for a day (IP SAN 127.0.0.1, DNS SAN localhost) and
// writes them to dir as cert.pem and key.pem (the key 0600).
func WriteBenchCert(dir string) (BenchCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return BenchCert{}, fmt.Errorf("benchkit: certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return BenchCert{}, fmt.Errorf("benchkit: certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "zkbench"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // self-signed: it is its own trust anchor in Pool
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return BenchCert{}, fmt.Errorf("benchkit: certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return BenchCert{}, fmt.Errorf("benchkit: certificate key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return BenchCert{}, fmt.Errorf("benchkit: %w", err)
	}
	c := BenchCert{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), Pool: x509.NewCertPool()}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(c.CertFile, certPEM, 0o644); err != nil {
		return BenchCert{}, fmt.Errorf("benchkit: write certificate: %w", err)
	}
	if err := os.WriteFile(c.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return BenchCert{}, fmt.Errorf("benchkit: write key: %w", err)
	}
	c.Pool.AppendCertsFromPEM(certPEM)
	return c, nil
}
