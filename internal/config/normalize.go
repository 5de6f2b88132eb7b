package config

import (
	"maps"
	"math"
	"net"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"
	"time"
)

// normalize puts names into the forms the rest of zkgate compares them in
// and derives the defaults that depend on other keys. Values it cannot make
// sense of are left for Validate to report.
func (c *Config) normalize() {
	for i, s := range c.ZooKeeper.Servers {
		c.ZooKeeper.Servers[i] = withZooKeeperPort(strings.TrimSpace(s))
	}
	for name, ep := range c.EntryPoints {
		if ep.TLS != nil && ep.TLS.MinVersion == "" {
			tls := *ep.TLS
			tls.MinVersion = TLSVersion12
			ep.TLS = &tls
			c.EntryPoints[name] = ep
		}
	}
	for i := range c.TrustedProxies {
		c.TrustedProxies[i] = strings.TrimSpace(c.TrustedProxies[i])
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		// Service names are map keys, which viper lower-cases.
		r.Service = strings.ToLower(strings.TrimSpace(r.Service))
		for j, h := range r.Match.Hosts {
			r.Match.Hosts[j] = strings.ToLower(strings.TrimSpace(h))
		}
		for j, m := range r.Match.Methods {
			r.Match.Methods[j] = strings.ToUpper(strings.TrimSpace(m))
		}
		r.Match.Headers = canonicalKeys(r.Match.Headers)
		r.ResponseHeaders.Set = canonicalKeys(r.ResponseHeaders.Set)
		for j, h := range r.ResponseHeaders.Remove {
			r.ResponseHeaders.Remove[j] = canonicalHeader(strings.TrimSpace(h))
		}
		r.normalizePolicies()
		r.RequestHeaders.Set = canonicalKeys(r.RequestHeaders.Set)
		for j, h := range r.RequestHeaders.Remove {
			r.RequestHeaders.Remove[j] = canonicalHeader(strings.TrimSpace(h))
		}
	}
	for name, s := range c.Services {
		if zk := s.Discovery.ZooKeeper; zk != nil && zk.Path == "" && strings.HasPrefix(c.ZooKeeper.BasePath, "/") {
			zk.Path = defaultServicePath(c.ZooKeeper.BasePath, name)
		}
		c.Services[name] = s
	}
}

// withZooKeeperPort adds ZooKeeper's default port 2181 to a server address
// without one ("zk1", "::1", "[::1]").
func withZooKeeperPort(s string) string {
	if _, _, err := net.SplitHostPort(s); err == nil || s == "" || strings.Contains(s, "/") {
		return s
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		return s + ":2181"
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Is6() {
		return "[" + s + "]:2181"
	}
	if !strings.Contains(s, ":") {
		return s + ":2181"
	}
	return s
}

// canonicalKeys returns m with canonical header names as keys. Of keys
// that name one field (a case-sensitive source: viper has already folded
// a file's keys), the value of the last in byte order is kept, whatever
// the map's order.
func canonicalKeys(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	out := make(map[string]string, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out[canonicalHeader(k)] = m[k]
	}
	return out
}

// canonicalHeader returns the canonical form of a header name; names that are
// not valid tokens are returned unchanged.
func canonicalHeader(name string) string {
	return textproto.CanonicalMIMEHeaderKey(name)
}

// normalizePolicies fills the defaults of the policy blocks a route has
// (they are pointers: absent blocks are off, so the defaults merger does
// not reach them).
func (r *Route) normalizePolicies() {
	if c := r.CORS; c != nil {
		if len(c.AllowedMethods) == 0 {
			c.AllowedMethods = []string{"GET", "HEAD", "POST"}
		}
		for i, m := range c.AllowedMethods {
			c.AllowedMethods[i] = strings.ToUpper(strings.TrimSpace(m))
		}
		for i, h := range c.AllowedHeaders {
			c.AllowedHeaders[i] = canonicalHeader(strings.TrimSpace(h))
		}
		for i, h := range c.ExposedHeaders {
			c.ExposedHeaders[i] = canonicalHeader(strings.TrimSpace(h))
		}
	}
	if a := r.Auth; a != nil {
		if k := a.APIKey; k != nil {
			if k.Header == "" {
				k.Header = "X-API-Key"
			}
			k.Header = canonicalHeader(strings.TrimSpace(k.Header))
		}
		if j := a.JWT; j != nil {
			j.ForwardClaims = canonicalValues(j.ForwardClaims)
		}
		if b := a.Basic; b != nil && b.Realm == "" {
			b.Realm = "zkgate"
		}
	}
	if l := r.RateLimit; l != nil {
		if l.Period == 0 {
			l.Period = time.Second
		}
		if l.Key == "" {
			l.Key = RateKeyClientIP
		}
		if l.Burst == 0 && l.Average > 0 {
			l.Burst = int(math.Ceil(l.Average))
		}
	}
	if c := r.Compress; c != nil {
		if c.MinBytes == 0 {
			c.MinBytes = 1024
		}
		if c.Level == 0 {
			c.Level = 5
		}
	}
}

// canonicalValues returns m with its values (header names) in canonical
// form.
func canonicalValues(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = canonicalHeader(strings.TrimSpace(v))
	}
	return out
}
