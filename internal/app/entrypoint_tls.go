package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"

	"github.com/sirupsen/logrus"

	"github.com/zkgate/zkgate/internal/admin"
	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/internal/metrics"
	"github.com/zkgate/zkgate/internal/tlscert"
	"github.com/zkgate/zkgate/proxy"
)

// buildTLSStores loads the certificate store of each TLS entry point of cfg
// (zkgate validate does too, so that a file it accepts also starts). Every
// problem is returned, each naming its key and file.
func buildTLSStores(cfg *config.Config, log logrus.FieldLogger) (map[string]*tlscert.Store, error) {
	stores := map[string]*tlscert.Store{}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(cfg.EntryPoints)) {
		ep := cfg.EntryPoints[name]
		if ep.TLS == nil {
			continue
		}
		opts := tlscert.Options{
			MinVersion: tlsVersion(ep.TLS.MinVersion),
			NextProtos: alpn(ep.HTTP2),
		}
		if log != nil {
			opts.Logger = log.WithField("entry_point", name)
		}
		for _, c := range ep.TLS.Certificates {
			opts.Pairs = append(opts.Pairs, tlscert.Pair{CertFile: c.CertFile, KeyFile: c.KeyFile})
		}
		if ca := ep.TLS.ClientAuth; ca != nil {
			opts.ClientCAFile, opts.ClientAuthRequired = ca.CAFile, ca.Required
		}
		st, err := tlscert.New(opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("entry_points.%s.tls.%w", name, err))
			continue
		}
		stores[name] = st
	}
	return stores, errors.Join(errs...)
}

// tlsVersion is crypto/tls's constant for a configured min_version.
func tlsVersion(v string) uint16 {
	if v == config.TLSVersion13 {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

// alpn is what a TLS entry point offers by ALPN.
func alpn(mode string) []string {
	if mode == config.HTTP2Off {
		return []string{"http/1.1"}
	}
	return []string{"h2", "http/1.1"}
}

// http2Mode is the proxy's name for an entry point's http2 key.
func http2Mode(mode string) proxy.HTTP2Mode {
	switch mode {
	case config.HTTP2Off:
		return proxy.HTTP2Off
	case config.HTTP2H2C:
		return proxy.HTTP2H2C
	}
	return proxy.HTTP2Auto
}

// http2Server maps EntryPoint.HTTP2Server to the proxy's.
func http2Server(name string) proxy.HTTP2Server {
	if name == config.HTTP2ServerZkgate {
		return proxy.HTTP2ServerZkgate
	}
	return proxy.HTTP2ServerGo
}

// watchTLSStores watches every store's files until ctx ends; a store whose
// files cannot be watched still reloads on SIGHUP and POST /api/reload.
func (g *Gateway) watchTLSStores(ctx context.Context) {
	for _, name := range slices.Sorted(maps.Keys(g.tls)) {
		if err := g.tls[name].Watch(ctx); err != nil {
			g.log.WithError(err).WithField("entry_point", name).Warn("certificate files are not watched; reload with SIGHUP or POST /api/reload")
		}
	}
}

// waitTLSStores waits for the watches to end (after their context).
func (g *Gateway) waitTLSStores() {
	for _, st := range g.tls {
		st.Wait()
	}
}

// reloadTLSStores reloads every store's files now; a pair that does not
// load is logged and counted by its store, which keeps the served ones.
func (g *Gateway) reloadTLSStores() {
	for _, st := range g.tls {
		_ = st.Reload()
	}
}

// redirectPort is the port of the entry point a redirecting one sends
// clients to: its bound listener's.
func redirectPort(listeners map[string]net.Listener, to string) int {
	ln := listeners[to]
	if ln == nil {
		return 0
	}
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(port)
	return p
}

// tlsInfo is a TLS entry point's state for the admin API.
func tlsInfo(ep config.EntryPoint, st *tlscert.Store) *admin.TLSInfo {
	if st == nil || ep.TLS == nil {
		return nil
	}
	info := &admin.TLSInfo{MinVersion: ep.TLS.MinVersion, ClientAuth: "none", Reloads: st.Reloads(), ReloadFailures: st.ReloadFailures()}
	if ca := ep.TLS.ClientAuth; ca != nil {
		info.ClientAuth = "optional"
		if ca.Required {
			info.ClientAuth = "required"
		}
	}
	if err := st.LastReloadError(); err != nil {
		info.LastReloadFailure = err.Error()
	}
	for _, c := range st.Certificates() {
		info.Certificates = append(info.Certificates, admin.CertificateInfo{
			CertFile: c.CertFile, KeyFile: c.KeyFile, Names: c.Names, Subject: c.Subject, Issuer: c.Issuer,
			NotAfter: c.NotAfter, ExpiresSoon: c.ExpiresSoon, Expired: c.Expired,
		})
	}
	return info
}

// tlsMetrics is the TLS entry points' state for the metrics.
func (g *Gateway) tlsMetrics() []metrics.EntryPointTLS {
	var out []metrics.EntryPointTLS
	for _, name := range slices.Sorted(maps.Keys(g.tls)) {
		st := g.tls[name]
		m := metrics.EntryPointTLS{EntryPoint: name, Reloads: st.Reloads(), ReloadFailures: st.ReloadFailures()}
		for _, c := range st.Certificates() {
			m.Certificates = append(m.Certificates, metrics.Certificate{CertFile: c.CertFile, Subject: c.Subject, NotAfter: c.NotAfter})
		}
		out = append(out, m)
	}
	return out
}

// protocolOf is what an entry point speaks to clients: "http" or "https".
func protocolOf(ep config.EntryPoint) string {
	if ep.TLS != nil {
		return "https"
	}
	return "http"
}
