package app

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/proxy"
)

// upstreamProtocol is the proxy's name for a service's upstream protocol.
func upstreamProtocol(u config.Upstream) proxy.UpstreamProtocol {
	switch u.Protocol {
	case config.ProtocolH2C:
		return proxy.UpstreamH2C
	case config.ProtocolH2:
		return proxy.UpstreamH2
	}
	return proxy.UpstreamHTTP1
}

// upstreamTLS builds the client TLS configuration towards a service's
// endpoints, or nil when the service does not use TLS. Its files are read
// here, so that zkgate validate names a missing or broken one by key.
func upstreamTLS(key string, u config.Upstream) (*tls.Config, error) {
	if !u.UsesTLS() {
		return nil, nil
	}
	t := u.TLS
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // the operator's explicit choice, documented as for tests
	}
	if t.CAFile != "" {
		pool, err := loadCertPool(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.tls.ca_file: %w", key, err)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s.tls: cert_file %s, key_file %s: %w", key, t.CertFile, t.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// loadCertPool reads PEM certificates from path; a file with none is an
// error.
func loadCertPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return pool, nil
}
