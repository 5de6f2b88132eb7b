package app

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"os"

	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/internal/tlscert"
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
		pool, err := tlscert.CheckCA(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.tls.%w", key, err)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		pair, err := tlscert.Check(tlscert.Pair{CertFile: t.CertFile, KeyFile: t.KeyFile})
		if err != nil {
			return nil, fmt.Errorf("%s.tls.%w", key, err)
		}
		c.Certificates = []tls.Certificate{*pair}
	}
	return c, nil
}

// upstreamFilesDigest is a digest of the files a service's upstream TLS
// reads (CA, client certificate and key), so that a reload rebuilds a
// service whose files changed though its configuration did not.
func upstreamFilesDigest(u config.Upstream) [sha256.Size]byte {
	h := sha256.New()
	if u.UsesTLS() {
		for _, path := range []string{u.TLS.CAFile, u.TLS.CertFile, u.TLS.KeyFile} {
			if path == "" {
				continue
			}
			data, err := os.ReadFile(path)
			if err != nil {
				data = []byte("error: " + err.Error())
			}
			fmt.Fprintf(h, "%s\x00%d\x00", path, len(data))
			h.Write(data)
		}
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
