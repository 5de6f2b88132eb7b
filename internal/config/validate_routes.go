package config

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/discovery"
	"github.com/zkgate/zkgate/proxy"
)

// BalancerConsistentHash is the balancer that needs Route.HashOn.
const BalancerConsistentHash = "consistent_hash"

func (c *Config) validateRoutes(p *problems) {
	seen := map[string]int{}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		switch {
		case r.Name == "":
			p.addf(key+".name", "required")
		case !nameRe.MatchString(r.Name):
			p.addf(key+".name", "invalid route name %q (letters, digits, '.', '_', '-')", r.Name)
		default:
			if j, dup := seen[r.Name]; dup {
				p.addf(key+".name", "duplicate route name %q (also routes[%d])", r.Name, j)
			} else {
				seen[r.Name] = i
			}
		}
		validateMatch(p, key+".match", &r.Match)
		switch _, ok := c.Services[r.Service]; {
		case r.Service == "":
			p.addf(key+".service", "required")
		case !ok:
			p.addf(key+".service", "unknown service %q (defined: %s)", r.Service, listOrNone(sortedNames(c.Services)))
		}
		if names := balancer.Names(); !slices.Contains(names, r.Balancer) {
			p.addf(key+".balancer", "unknown balancer %q (valid: %s)", r.Balancer, strings.Join(names, ", "))
		}
		switch {
		case r.Balancer == BalancerConsistentHash && r.HashOn == "":
			p.addf(key+".hash_on", "required by balancer consistent_hash (client_ip, header:NAME, cookie:NAME or path)")
		case r.Balancer == BalancerConsistentHash:
			if err := proxy.CheckHashOn(r.HashOn); err != nil {
				p.add(key+".hash_on", err)
			}
		case r.HashOn != "":
			p.addf(key+".hash_on", "only used by balancer consistent_hash, not %q: remove it", r.Balancer)
		}
		validateHeaderEdits(p, key+".request_headers", r.RequestHeaders.Set, r.RequestHeaders.Remove)
		p.nonNegative(key+".timeout", int64(r.Timeout))
		validatePolicies(p, key, &r)
	}
}

// validatePolicies checks a route's admission and response policies.
// Whether their files load is checked where they are loaded, by validate
// as by serve.
func validatePolicies(p *problems, key string, r *Route) {
	for j, c := range r.IPAllow {
		if _, err := parsePrefix(c); err != nil {
			p.addf(fmt.Sprintf("%s.ip_allow[%d]", key, j), "%q is not a CIDR or IP address", c)
		}
	}
	for j, c := range r.IPDeny {
		if _, err := parsePrefix(c); err != nil {
			p.addf(fmt.Sprintf("%s.ip_deny[%d]", key, j), "%q is not a CIDR or IP address", c)
		}
	}
	if c := r.CORS; c != nil {
		ck := key + ".cors"
		if len(c.AllowedOrigins) == 0 {
			p.addf(ck+".allowed_origins", "at least one origin is required (\"*\" for any)")
		}
		for j, o := range c.AllowedOrigins {
			if err := checkOrigin(o); err != nil {
				p.add(fmt.Sprintf("%s.allowed_origins[%d]", ck, j), err)
			} else if o == "*" && c.AllowCredentials {
				p.addf(fmt.Sprintf("%s.allowed_origins[%d]", ck, j), "\"*\" cannot be used with allow_credentials: list the origins")
			}
		}
		for j, m := range c.AllowedMethods {
			if !proxy.ValidToken(m) {
				p.addf(fmt.Sprintf("%s.allowed_methods[%d]", ck, j), "invalid method %q", m)
			}
		}
		for j, h := range c.AllowedHeaders {
			if !proxy.ValidToken(h) {
				p.addf(fmt.Sprintf("%s.allowed_headers[%d]", ck, j), "invalid header name %q", h)
			}
		}
		for j, h := range c.ExposedHeaders {
			if !proxy.ValidToken(h) {
				p.addf(fmt.Sprintf("%s.exposed_headers[%d]", ck, j), "invalid header name %q", h)
			}
		}
		p.nonNegative(ck+".max_age", int64(c.MaxAge))
	}
	if a := r.Auth; a != nil {
		ak := key + ".auth"
		n := 0
		if a.APIKey != nil {
			n++
			if !proxy.ValidToken(a.APIKey.Header) {
				p.addf(ak+".api_key.header", "invalid header name %q", a.APIKey.Header)
			}
			if a.APIKey.KeysFile == "" {
				p.addf(ak+".api_key.keys_file", "required")
			}
		}
		if a.JWT != nil {
			n++
			if a.JWT.JWKSFile == "" {
				p.addf(ak+".jwt.jwks_file", "required")
			}
			for _, claim := range sortedNames(a.JWT.ForwardClaims) {
				if h := a.JWT.ForwardClaims[claim]; !proxy.ValidToken(h) {
					p.addf(ak+".jwt.forward_claims."+claim, "invalid header name %q", h)
				}
			}
		}
		if a.Basic != nil {
			n++
			if a.Basic.UsersFile == "" {
				p.addf(ak+".basic.users_file", "required")
			}
			if strings.ContainsAny(a.Basic.Realm, "\"\\\r\n") {
				p.addf(ak+".basic.realm", "%q must not contain quotes, backslashes or line breaks", a.Basic.Realm)
			}
		}
		if n != 1 {
			p.addf(ak, "set exactly one of api_key, jwt and basic")
		}
	}
	if l := r.RateLimit; l != nil {
		lk := key + ".rate_limit"
		if !(l.Average > 0) {
			p.addf(lk+".average", "must be positive, got %v", l.Average)
		}
		if l.Burst < 1 {
			p.addf(lk+".burst", "must be at least 1, got %d", l.Burst)
		}
		if l.Period <= 0 {
			p.addf(lk+".period", "must be positive, got %s", l.Period)
		}
		switch name, isHeader := strings.CutPrefix(l.Key, "header:"); {
		case l.Key == RateKeyClientIP, l.Key == RateKeyRoute:
		case isHeader && proxy.ValidToken(name):
		default:
			p.addf(lk+".key", "unknown key %q (valid: client_ip, header:NAME, route)", l.Key)
		}
	}
	if c := r.Compress; c != nil {
		p.nonNegative(key+".compress.min_bytes", c.MinBytes)
		if c.Level < 1 || c.Level > 9 {
			p.addf(key+".compress.level", "%d is not a level from 1 to 9", c.Level)
		}
	}
	validateHeaderEdits(p, key+".response_headers", r.ResponseHeaders.Set, r.ResponseHeaders.Remove)
}

// validateHeaderEdits checks a route's header edits under key (its set and
// remove): names, values, and no field the proxy decides.
func validateHeaderEdits(p *problems, key string, set map[string]string, remove []string) {
	validateHeaderMap(p, key+".set", set)
	for _, name := range sortedNames(set) {
		if err := proxy.CheckEditableField(name); proxy.ValidToken(name) && err != nil {
			p.add(key+".set."+name, err)
		}
	}
	for j, h := range remove {
		k := fmt.Sprintf("%s.remove[%d]", key, j)
		if !proxy.ValidToken(h) {
			p.addf(k, "invalid header name %q", h)
		} else if err := proxy.CheckEditableField(h); err != nil {
			p.add(k, err)
		}
	}
}

// checkOrigin checks a CORS origin: "*", or scheme://host[:port] with an
// optional leading "*." label.
func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return fmt.Errorf("%q: want scheme://host[:port] with scheme http or https, or \"*\"", o)
	}
	host := strings.TrimPrefix(rest, "*.")
	if host == "" || strings.ContainsAny(host, "/?#*@ ") || strings.HasSuffix(o, "/") {
		return fmt.Errorf("%q: want scheme://host[:port], without path, and '*' only as a leading \"*.\" label", o)
	}
	return nil
}

func validateMatch(p *problems, key string, m *Match) {
	for j, h := range m.Hosts {
		if err := checkHost(h); err != nil {
			p.add(fmt.Sprintf("%s.hosts[%d]", key, j), err)
		}
	}
	if pp := m.PathPrefix; pp != "" {
		switch {
		case !strings.HasPrefix(pp, "/"):
			p.addf(key+".path_prefix", "%q must start with \"/\"", pp)
		case strings.ContainsAny(pp, "?# \t\r\n"):
			p.addf(key+".path_prefix", "%q must be a plain path (no query, fragment or spaces)", pp)
		}
	}
	if m.Path != "" {
		switch {
		case !strings.HasPrefix(m.Path, "/"):
			p.addf(key+".path", "%q must start with \"/\"", m.Path)
		case strings.ContainsAny(m.Path, "?# \t\r\n"):
			p.addf(key+".path", "%q must be a plain path (no query, fragment or spaces)", m.Path)
		}
	}
	if m.PathRegex != "" {
		if _, err := regexp.Compile(m.PathRegex); err != nil {
			p.addf(key+".path_regex", "%q: %v", m.PathRegex, err)
		}
	}
	for _, name := range sortedNames(m.Query) {
		if name == "" {
			p.addf(key+".query", "empty parameter name")
		}
	}
	for j, meth := range m.Methods {
		if !proxy.ValidToken(meth) {
			p.addf(fmt.Sprintf("%s.methods[%d]", key, j), "invalid method %q", meth)
		}
	}
	validateHeaderMap(p, key+".headers", m.Headers)
}

// validateHeaderMap checks header names and values.
func validateHeaderMap(p *problems, key string, m map[string]string) {
	for _, name := range sortedNames(m) {
		if !proxy.ValidToken(name) {
			p.addf(key, "invalid header name %q", name)
		}
		if strings.ContainsAny(m[name], "\r\n\x00") {
			p.addf(key+"."+name, "header value contains a line break or NUL")
		}
	}
}

func (c *Config) validateServices(p *problems) {
	for _, name := range sortedNames(c.Services) {
		s := c.Services[name]
		key := "services." + name
		if !nameRe.MatchString(name) {
			p.addf(key, "invalid service name %q (letters, digits, '.', '_', '-')", name)
		}
		validateDiscovery(p, key+".discovery", &s.Discovery)
		validateHealthCheck(p, key+".health_check", &s.HealthCheck)
		checkPercent(p, key+".removal_guard.max_percent", s.RemovalGuard.MaxPercent)
		if g := s.RemovalGuard; g.Hold < 0 || g.Hold == 0 && g.MaxPercent > 0 && g.MaxPercent < 100 {
			p.addf(key+".removal_guard.hold", "must be positive, got %s (max_percent: 0 turns the guard off)", g.Hold)
		}
		p.nonNegative(key+".timeouts.dial", int64(s.Timeouts.Dial))
		p.nonNegative(key+".timeouts.response_header", int64(s.Timeouts.ResponseHeader))
		p.nonNegative(key+".timeouts.idle_conn", int64(s.Timeouts.IdleConn))
		p.nonNegative(key+".max_idle_conns_per_host", int64(s.MaxIdleConnsPerHost))
		p.nonNegative(key+".max_body_bytes", s.MaxBodyBytes)
		validateRetries(p, key+".retries", &s.Retries)
		p.nonNegative(key+".slow_start", int64(s.SlowStart))
		validateUpstream(p, key+".upstream", &s.Upstream)
	}
}

func validateUpstream(p *problems, key string, u *Upstream) {
	switch u.Protocol {
	case ProtocolHTTP1, ProtocolH2C:
		if u.Protocol == ProtocolH2C && u.TLS.Enabled {
			p.addf(key+".protocol", "h2c is HTTP/2 without TLS; with tls.enabled use h2")
		}
	case ProtocolH2:
	default:
		p.addf(key+".protocol", "unknown protocol %q (valid: http1, h2c, h2)", u.Protocol)
	}
	if (u.TLS.CertFile == "") != (u.TLS.KeyFile == "") {
		p.addf(key+".tls", "cert_file and key_file go together: set both or neither")
	}
	if t := u.TLS; !u.UsesTLS() && (t.CAFile != "" || t.ServerName != "" || t.InsecureSkipVerify || t.CertFile != "" || t.KeyFile != "") {
		// Settings that would do nothing: the endpoints are reached in
		// plain HTTP, which the operator surely did not mean.
		p.addf(key+".tls.enabled", "TLS settings are given but TLS is off: set enabled: true (or protocol: h2), or remove them")
	}
}

func validateDiscovery(p *problems, key string, d *Discovery) {
	switch {
	case d.ZooKeeper != nil && d.Static != nil:
		p.addf(key, "set exactly one of zookeeper and static, not both")
	case d.ZooKeeper == nil && d.Static == nil:
		p.addf(key, "set one of zookeeper and static")
	case d.ZooKeeper != nil:
		zk := d.ZooKeeper
		if err := checkZnodePath(zk.Path); err != nil {
			p.add(key+".zookeeper.path", err)
		}
		// The file takes a format as discovery names it, exactly; discovery
		// itself is lenient about case and spaces.
		if f, err := discovery.ParseFormat(zk.Format); err != nil || string(f) != zk.Format {
			p.addf(key+".zookeeper.format", "unknown format %q (valid: %s)", zk.Format, strings.Join(discovery.FormatNames(), ", "))
		}
		if f := discovery.Format(zk.Format); zk.EndpointName != "" && f != discovery.FormatServerSet && f != discovery.FormatAuto {
			p.addf(key+".zookeeper.endpoint_name", "only used by formats serverset and auto, not %q", zk.Format)
		}
		for _, k := range sortedNames(zk.Filter) {
			if k == "" {
				p.addf(key+".zookeeper.filter", "empty metadata key")
			} else if _, err := discovery.CompileFilterValue(zk.Filter[k]); err != nil {
				p.add(key+".zookeeper.filter."+k, err)
			}
		}
	default:
		if len(d.Static.Endpoints) == 0 {
			p.addf(key+".static.endpoints", "at least one endpoint is required")
		}
		for i, e := range d.Static.Endpoints {
			if _, err := parseStaticEndpoint(e); err != nil {
				p.add(fmt.Sprintf("%s.static.endpoints[%d]", key, i), err)
			}
		}
	}
}

func validateHealthCheck(p *problems, key string, hc *HealthCheck) {
	a := &hc.Active
	ak := key + ".active"
	switch a.Type {
	case CheckNone, CheckTCP, CheckHTTP:
	default:
		p.addf(ak+".type", "unknown type %q (valid: none, tcp, http)", a.Type)
	}
	if !strings.HasPrefix(a.Path, "/") {
		p.addf(ak+".path", "%q must start with \"/\"", a.Path)
	}
	if a.Host != "" {
		if err := checkHost(strings.ToLower(a.Host)); err != nil && checkHostPort(a.Host, true) != nil {
			p.add(ak+".host", err)
		}
	}
	if a.Interval <= 0 {
		p.addf(ak+".interval", "must be positive, got %s", a.Interval)
	}
	if a.Timeout <= 0 {
		p.addf(ak+".timeout", "must be positive, got %s", a.Timeout)
	} else if a.Interval > 0 && a.Timeout > a.Interval {
		p.addf(ak+".timeout", "%s is longer than the interval %s", a.Timeout, a.Interval)
	}
	if a.HealthyThreshold < 1 {
		p.addf(ak+".healthy_threshold", "must be at least 1, got %d", a.HealthyThreshold)
	}
	if a.UnhealthyThreshold < 1 {
		p.addf(ak+".unhealthy_threshold", "must be at least 1, got %d", a.UnhealthyThreshold)
	}

	ps := &hc.Passive
	pk := key + ".passive"
	p.nonNegative(pk+".max_failures", int64(ps.MaxFailures))
	if ps.Ejection < 0 {
		p.addf(pk+".ejection", "must not be negative")
	} else if ps.MaxFailures > 0 && ps.Ejection == 0 {
		p.addf(pk+".ejection", "must be positive when max_failures is set")
	}
	checkPercent(p, pk+".max_ejection_percent", ps.MaxEjectionPercent)
	checkPercent(p, key+".panic_threshold", hc.PanicThreshold)
	validateChecker(p, key, hc)
}

func validateRetries(p *problems, key string, r *Retries) {
	if r.Attempts < 1 {
		p.addf(key+".attempts", "must be at least 1 (1 = no retries), got %d", r.Attempts)
	}
	for i, on := range r.On {
		switch on {
		case RetryConnectFailure, RetryTimeout, RetryServerError:
			if slices.Index(r.On, on) < i {
				p.addf(fmt.Sprintf("%s.on[%d]", key, i), "%q is listed twice", on)
			}
		default:
			p.addf(fmt.Sprintf("%s.on[%d]", key, i), "unknown condition %q (valid: connect_failure, timeout, server_error)", on)
		}
	}
	p.nonNegative(key+".buffer_body_bytes", r.BufferBodyBytes)
	if r.Budget.Enabled {
		for _, e := range leafErrors(r.Budget.BudgetConfig().Validate()) {
			var fe *proxy.FieldError
			if errors.As(e, &fe) {
				p.add(key+".budget."+fe.Path, fe.Err)
			} else {
				p.add(key+".budget", e)
			}
		}
		if r.Budget.Window == 0 {
			p.addf(key+".budget.window", "must be between %s and %s, got 0s", proxy.MinRetryBudgetWindow, proxy.MaxRetryBudgetWindow)
		}
	}
}

func checkPercent(p *problems, key string, v int) {
	if v < 0 || v > 100 {
		p.addf(key, "must be a percentage between 0 and 100, got %d", v)
	}
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
