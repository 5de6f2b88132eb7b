package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
)

// Log formats of Log.Format.
const (
	LogFormatAuto = "auto"
	LogFormatText = "text"
	LogFormatJSON = "json"
)

// nameRe is the syntax of entry point, route and service names: they appear
// in metrics labels, log fields and admin URLs.
var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// entryPointNameRe is nameRe without '.', which would make key paths such as
// entry_points.a.b ambiguous.
var entryPointNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// Validate checks the whole configuration and returns every problem found,
// joined with errors.Join; each is a *FieldError naming its key path. It
// expects a configuration as Parse returns it (defaults applied, names
// normalized).
func (c *Config) Validate() error {
	p := &problems{source: c.Source}
	c.validateEntryPoints(p)
	c.validateAdmin(p)
	c.validateLog(p)
	for i, s := range c.TrustedProxies {
		if _, err := parsePrefix(s); err != nil {
			p.addf(fmt.Sprintf("trusted_proxies[%d]", i), "%q is not a CIDR or IP address", s)
		}
	}
	p.nonNegative("shutdown.drain_delay", int64(c.Shutdown.DrainDelay))
	p.nonNegative("shutdown.grace_timeout", int64(c.Shutdown.GraceTimeout))
	c.validateZooKeeper(p)
	if c.validateFleet(p) { // else the file's routes are refused as a whole
		c.validateRoutes(p)
		c.validateServices(p)
	}
	p.annotateEnv(c.fromEnv)
	return p.err()
}

func (c *Config) validateEntryPoints(p *problems) {
	if len(c.EntryPoints) == 0 {
		p.addf("entry_points", "at least one entry point is required")
		return
	}
	byAddr := map[string]string{}
	for _, name := range sortedNames(c.EntryPoints) {
		ep := c.EntryPoints[name]
		key := "entry_points." + name
		if !entryPointNameRe.MatchString(name) {
			p.addf(key, "invalid entry point name %q (letters, digits, '_', '-')", name)
		}
		if err := checkHostPort(ep.Address, false); err != nil {
			p.addf(key+".address", "%q: %v", ep.Address, err)
		} else if other, dup := byAddr[ep.Address]; dup {
			p.addf(key+".address", "%q is also the address of entry point %q", ep.Address, other)
		} else if !strings.HasSuffix(ep.Address, ":0") { // port 0: a free port each
			byAddr[ep.Address] = name
		}
		if _, err := LoopCount(ep.Loops); err != nil {
			p.addf(key+".loops", "%v", err)
		}
		p.nonNegative(key+".read_header_timeout", int64(ep.ReadHeaderTimeout))
		p.nonNegative(key+".read_timeout", int64(ep.ReadTimeout))
		p.nonNegative(key+".write_timeout", int64(ep.WriteTimeout))
		p.nonNegative(key+".idle_timeout", int64(ep.IdleTimeout))
		p.nonNegative(key+".max_header_bytes", int64(ep.MaxHeaderBytes))
		p.nonNegative(key+".max_header_count", int64(ep.MaxHeaderCount))
		p.nonNegative(key+".max_target_bytes", int64(ep.MaxTargetBytes))
		p.nonNegative(key+".max_body_bytes", ep.MaxBodyBytes)
		p.nonNegative(key+".body_timeout", int64(ep.BodyTimeout))
		p.nonNegative(key+".min_body_rate", ep.MinBodyRate)
		c.validateEntryPointTLS(p, key, &ep)
	}
}

// validateEntryPointTLS checks an entry point's TLS, HTTP/2 and redirect
// keys. Whether the files load is checked where they are loaded (the
// certificate store), by zkgate validate as by serve.
func (c *Config) validateEntryPointTLS(p *problems, key string, ep *EntryPoint) {
	switch ep.HTTP2 {
	case HTTP2Auto, HTTP2Off:
	case HTTP2H2C:
		if ep.TLS != nil {
			p.addf(key+".http2", "h2c is HTTP/2 without TLS; a TLS entry point offers HTTP/2 by ALPN (auto)")
		}
	default:
		p.addf(key+".http2", "unknown mode %q (valid: auto, off, h2c)", ep.HTTP2)
	}
	switch ep.HTTP2Server {
	case "", HTTP2ServerGo, HTTP2ServerZkgate:
	default:
		p.addf(key+".http2_server", "unknown server %q (valid: go, zkgate)", ep.HTTP2Server)
	}
	if t := ep.TLS; t != nil {
		if len(t.Certificates) == 0 {
			p.addf(key+".tls.certificates", "at least one certificate is required")
		}
		for i, crt := range t.Certificates {
			ck := fmt.Sprintf("%s.tls.certificates[%d]", key, i)
			if crt.CertFile == "" {
				p.addf(ck+".cert_file", "required")
			}
			if crt.KeyFile == "" {
				p.addf(ck+".key_file", "required")
			}
		}
		switch t.MinVersion {
		case TLSVersion12, TLSVersion13:
		default:
			p.addf(key+".tls.min_version", "unknown version %q (valid: 1.2, 1.3)", t.MinVersion)
		}
		if t.ClientAuth != nil && t.ClientAuth.CAFile == "" {
			p.addf(key+".tls.client_auth.ca_file", "required")
		}
	}
	if ep.RedirectTo != "" {
		to, ok := c.EntryPoints[ep.RedirectTo]
		switch {
		case !ok:
			p.addf(key+".redirect_to", "no entry point %q (entry points: %s)", ep.RedirectTo, strings.Join(sortedNames(c.EntryPoints), ", "))
		case to.TLS == nil:
			p.addf(key+".redirect_to", "entry point %q has no tls", ep.RedirectTo)
		case ep.TLS != nil:
			p.addf(key+".redirect_to", "a TLS entry point does not redirect to another")
		}
	}
}

func (c *Config) validateAdmin(p *problems) {
	addr := c.Admin.Address
	if addr == "" {
		return // disabled
	}
	if err := checkHostPort(addr, false); err != nil {
		p.addf("admin.address", "%q: %v", addr, err)
		return
	}
	for _, name := range sortedNames(c.EntryPoints) {
		if c.EntryPoints[name].Address == addr && !strings.HasSuffix(addr, ":0") {
			p.addf("admin.address", "%q is also the address of entry point %q", addr, name)
		}
	}
}

func (c *Config) validateLog(p *problems) {
	if _, err := logrus.ParseLevel(c.Log.Level); err != nil {
		p.addf("log.level", "unknown level %q (valid: trace, debug, info, warn, error, fatal, panic)", c.Log.Level)
	}
	switch c.Log.Format {
	case LogFormatAuto, LogFormatText, LogFormatJSON:
	default:
		p.addf("log.format", "unknown format %q (valid: auto, text, json)", c.Log.Format)
	}
}

func (c *Config) validateZooKeeper(p *problems) {
	zk := &c.ZooKeeper
	if len(zk.Servers) == 0 {
		p.addf("zookeeper.servers", "at least one server is required")
	}
	for i, s := range zk.Servers {
		key := fmt.Sprintf("zookeeper.servers[%d]", i)
		switch {
		case s == "":
			p.addf(key, "empty server address")
		case strings.Contains(s, "/"):
			p.addf(key, "%q: chroot suffixes are not supported; use zookeeper.base_path", s)
		default:
			if err := checkHostPort(s, true); err != nil {
				p.addf(key, "%q: %v", s, err)
			}
		}
	}
	if zk.SessionTimeout <= 0 {
		p.addf("zookeeper.session_timeout", "must be positive, got %s", zk.SessionTimeout)
	}
	p.nonNegative("zookeeper.resync_interval", int64(zk.ResyncInterval))
	if f := zk.SnapshotFile; f != "" {
		switch {
		case strings.TrimSpace(f) != f:
			p.addf("zookeeper.snapshot_file", "%q has leading or trailing spaces", f)
		case strings.ContainsRune(f, 0):
			p.addf("zookeeper.snapshot_file", "%q contains a NUL byte", f)
		case strings.HasSuffix(f, "/") || filepath.Base(f) == "." || filepath.Base(f) == "..":
			p.addf("zookeeper.snapshot_file", "%q names a directory; give a file path such as /var/lib/zkgate/membership.json", f)
		}
	}
	if err := checkZnodePath(zk.BasePath); err != nil {
		p.add("zookeeper.base_path", err)
	}
	if zk.Auth.Scheme != "digest" {
		p.addf("zookeeper.auth.scheme", "unsupported scheme %q (valid: digest)", zk.Auth.Scheme)
	}
	if cr := zk.Auth.Credentials; cr != "" {
		if user, _, ok := strings.Cut(cr, ":"); !ok || user == "" {
			p.addf("zookeeper.auth.credentials", "digest credentials must be \"user:password\"")
		}
	}
}

// checkZnodePath checks an absolute ZooKeeper path.
func checkZnodePath(path string) error {
	switch {
	case path == "":
		return fmt.Errorf("must not be empty")
	case !strings.HasPrefix(path, "/"):
		return fmt.Errorf("%q must start with \"/\"", path)
	case path == "/":
		return nil
	case strings.HasSuffix(path, "/"):
		return fmt.Errorf("%q must not end with \"/\"", path)
	}
	for seg := range strings.SplitSeq(path[1:], "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%q has an empty segment", path)
		case seg == "." || seg == "..":
			return fmt.Errorf("%q has a relative segment %q", path, seg)
		case strings.ContainsFunc(seg, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			return fmt.Errorf("%q has a control character", path)
		}
	}
	return nil
}

// nonNegative reports a negative value at key.
func (p *problems) nonNegative(key string, v int64) {
	if v < 0 {
		p.addf(key, "must not be negative")
	}
}

// checkHost checks a host name or IP literal (for Host headers), without
// a port.
func checkHost(h string) error {
	if h == "" {
		return fmt.Errorf("empty host")
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		if _, err := netip.ParseAddr(h[1 : len(h)-1]); err != nil {
			return fmt.Errorf("%q is not an IPv6 literal", h)
		}
		return nil
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	if !hostRe.MatchString(h) {
		return fmt.Errorf("%q is not a host name (no scheme, port or path)", h)
	}
	return nil
}

var hostRe = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$`)

// sortedNames returns the keys of a map in order, for reproducible errors.
func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// Values of EntryPoint.Loops besides a number.
const (
	LoopsAuto = "auto"
	LoopsOff  = "off"
)

// maxLoops bounds entry_points.<name>.loops: a loop is a thread, and more
// of them than processors only take turns.
const maxLoops = 256

// LoopCount is how many loops v (EntryPoint.Loops) asks for: "auto" (or
// empty) half of GOMAXPROCS, at least 1; "off" or "0" none; else the
// number, 1 to 256.
func LoopCount(v string) (int, error) {
	switch strings.TrimSpace(v) {
	case "", LoopsAuto:
		return max(1, runtime.GOMAXPROCS(0)/2), nil
	case LoopsOff, "0":
		return 0, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 || n > maxLoops {
		return 0, fmt.Errorf("%q: want auto, off, or a number of loops from 1 to %d", v, maxLoops)
	}
	return n, nil
}
