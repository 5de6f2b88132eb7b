package proxy

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"regexp"
	"slices"
	"strings"

	"github.com/zkgate/zkgate/balancer"
)

// Router is an immutable table of routes, ordered for matching and
// precomputed once: lower-cased hosts, segment-aware prefixes, canonical
// header names, the parsed hash key, and one ReverseProxy per route. Build a
// new Router to change routes and swap it in with Handler.SetRouter. A Router
// is safe for concurrent use.
type Router struct {
	entries []*entry
}

// entry is one compiled route: its match data, its request edits and the
// ReverseProxy that serves it.
type entry struct {
	route   *Route
	service string

	anyHost  bool
	hosts    []string // exact names, lower case
	suffixes []string // ".example.com" for "*.example.com", lower case
	prefix   string   // "" matches every path
	exact    string   // a path matched exactly, "" for none
	regex    *regexp.Regexp
	query    []headerMatch // query parameters: name, value ("" presence)
	methods  []string
	headers  []headerMatch

	plan   headerPlan
	hash   hashSpec
	track  balancer.Tracker // the balancer, if it tracks requests in flight
	record bool             // keep request bodies for replay (see RetryPolicy)
	fast   bool             // the fast path may serve the route (fastRoute)
	pol    *policies        // nil: none
}

type headerMatch struct {
	name  string // canonical
	value string // "" requires presence only
}

// NewRouter validates and compiles routes into a Router. Every problem is
// reported, each naming its route; routes is not kept, but the *Route values
// are, and must not be modified afterwards.
func NewRouter(routes []*Route) (*Router, error) {
	rt := &Router{entries: make([]*entry, 0, len(routes))}
	var errs []error
	seen := make(map[string]bool, len(routes))
	for i, r := range routes {
		if r == nil {
			errs = append(errs, fmt.Errorf("proxy: route #%d is nil", i))
			continue
		}
		e, err := compile(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("proxy: route %q: %w", r.Name, err))
			continue
		}
		if seen[r.Name] {
			errs = append(errs, fmt.Errorf("proxy: route %q: duplicate name", r.Name))
			continue
		}
		seen[r.Name] = true
		rt.entries = append(rt.entries, e)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortStableFunc(rt.entries, func(a, b *entry) int {
		if c := cmp.Compare(b.route.Priority, a.route.Priority); c != 0 {
			return c
		}
		if c := cmp.Compare(b.specificity(), a.specificity()); c != 0 {
			return c
		}
		switch {
		case a.anyHost == b.anyHost:
			return 0
		case b.anyHost:
			return -1
		default:
			return 1
		}
	})
	return rt, nil
}

// specificity orders routes of equal priority: the longer path wins, an
// exact path over a prefix of the same length, then a route with a
// regular expression or query conditions over one without.
func (e *entry) specificity() int {
	n := 4 * len(e.prefix)
	if e.exact != "" {
		n = 4*len(e.exact) + 2
	}
	if e.regex != nil || len(e.query) > 0 {
		n++
	}
	return n
}

// Routes returns the routes in matching order. The caller must not modify
// the slice or the routes.
func (rt *Router) Routes() []*Route {
	out := make([]*Route, len(rt.entries))
	for i, e := range rt.entries {
		out[i] = e.route
	}
	return out
}

// Match returns the first route, in priority order, that matches r's host,
// path, method and headers, or nil. It matches r.URL.Path as it is: the
// Handler cleans the path first. Match allocates nothing.
func (rt *Router) Match(r *http.Request) *Route {
	if e := rt.match(r, r.URL.Path); e != nil {
		return e.route
	}
	return nil
}

// match is Match with the path given separately (the Handler's cleaned one).
func (rt *Router) match(r *http.Request, path string) *entry {
	return rt.find(hostOnly(r.Host), r.Method, path, r.URL.RawQuery, headerMap(r.Header))
}

// headerSource is a request's header fields as both paths read them for
// route matching, the hash key and the client address: an http.Header
// (headerMap) on the net/http side, the parsed head (*fastRequest) on the
// fast path. has reports whether a field called name (canonical) has
// value, or is present at all when value is ""; value returns the i-th
// value (from 0) of the fields called name. The strings a *fastRequest
// returns point into the connection's read buffer: they must not outlive
// the request (see balancer.Balancer.Pick).
type headerSource interface {
	has(name, value string) bool
	value(name string, i int) (string, bool)
}

// headerMap is an http.Header as a headerSource.
type headerMap http.Header

func (h headerMap) has(name, value string) bool {
	vals, ok := h[name]
	return ok && (value == "" || slices.Contains(vals, value))
}

func (h headerMap) value(name string, i int) (string, bool) {
	if vals := h[name]; i < len(vals) {
		return vals[i], true
	}
	return "", false
}

// find returns the first entry matching host, method, path, the raw query
// and headers h (both headerSources are pointer-shaped: passing them
// allocates nothing).
func (rt *Router) find(host, method, path, query string, h headerSource) *entry {
	if path == "" {
		path = "/"
	}
	for _, e := range rt.entries {
		if e.matches(host, method, path, query, h) {
			return e
		}
	}
	return nil
}

func (e *entry) matches(host, method, path, query string, h headerSource) bool {
	if !hasPathPrefix(path, e.prefix) || !e.matchesHost(host) {
		return false
	}
	if e.exact != "" && path != e.exact {
		return false
	}
	if e.regex != nil && !e.regex.MatchString(path) {
		return false
	}
	for _, q := range e.query {
		if !queryHas(query, q.name, q.value) {
			return false
		}
	}
	if len(e.methods) > 0 && !slices.Contains(e.methods, method) {
		return false
	}
	for _, m := range e.headers {
		if !h.has(m.name, m.value) {
			return false
		}
	}
	return true
}

func (e *entry) matchesHost(host string) bool {
	if e.anyHost {
		return true
	}
	for _, h := range e.hosts {
		if strings.EqualFold(host, h) {
			return true
		}
	}
	for _, s := range e.suffixes {
		if len(host) > len(s) && strings.EqualFold(host[len(host)-len(s):], s) {
			return true
		}
	}
	return false
}

// hasPathPrefix reports whether path starts with the segments of prefix:
// "/api" is a prefix of "/api" and "/api/x", not of "/apis".
func hasPathPrefix(path, prefix string) bool {
	if prefix == "" {
		return true
	}
	return strings.HasPrefix(path, prefix) && (len(path) == len(prefix) || path[len(prefix)] == '/')
}

// hostOnly returns the host of a Host header value without its port,
// brackets or trailing dot.
func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h[i:], ']') < 0 {
		h = h[:i]
	}
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	return strings.TrimSuffix(h, ".")
}

// compile validates r and precomputes its match data and ReverseProxy.
func compile(r *Route) (*entry, error) {
	var errs []error
	if r.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if r.Balancer == nil {
		errs = append(errs, errors.New("balancer is nil"))
	}
	e := &entry{route: r, service: r.Service}
	if r.Upstream == nil {
		errs = append(errs, errors.New("upstream is nil"))
	} else {
		if r.Upstream.Transport == nil {
			errs = append(errs, fmt.Errorf("upstream %q: transport is nil", r.Upstream.Name))
		}
		if r.Upstream.MaxBodyBytes < 0 {
			errs = append(errs, fmt.Errorf("upstream %q: max body bytes %d is negative", r.Upstream.Name, r.Upstream.MaxBodyBytes))
		}
		if e.service == "" {
			e.service = r.Upstream.Name
		}
		pol := r.Upstream.Retry
		e.record = pol.Attempts > 1 && (pol.OnTimeout || pol.OnServerError || pol.OnBrokenConnection) && pol.BufferBodyBytes > 0
	}
	if r.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %v is negative", r.Timeout))
	}
	e.anyHost = len(r.Hosts) == 0
	for _, h := range r.Hosts {
		if err := e.addHost(h); err != nil {
			errs = append(errs, err)
		}
	}
	prefix, err := compilePrefix(r.PathPrefix)
	if err != nil {
		errs = append(errs, err)
	}
	e.prefix = prefix
	if r.Path != "" {
		if r.Path[0] != '/' || cleanPath(r.Path) != r.Path && cleanPath(r.Path)+"/" != r.Path {
			errs = append(errs, fmt.Errorf("path %q must be a clean path starting with '/'", r.Path))
		}
		e.exact = r.Path
	}
	if r.PathRegex != "" {
		re, err := regexp.Compile(r.PathRegex)
		if err != nil {
			errs = append(errs, fmt.Errorf("path regex %q: %w", r.PathRegex, err))
		}
		e.regex = re
	}
	for _, name := range sortedKeys(r.Query) {
		if name == "" {
			errs = append(errs, errors.New("query match with an empty parameter name"))
			continue
		}
		e.query = append(e.query, headerMatch{name: name, value: r.Query[name]})
	}
	for _, m := range r.Methods {
		if !isToken(m) {
			errs = append(errs, fmt.Errorf("method %q is not a valid method", m))
			continue
		}
		if m == http.MethodConnect {
			errs = append(errs, errors.New("method CONNECT is never proxied"))
			continue
		}
		e.methods = append(e.methods, m)
	}
	for _, name := range sortedKeys(r.Headers) {
		if !isToken(name) {
			errs = append(errs, fmt.Errorf("header match %q is not a valid header name", name))
			continue
		}
		e.headers = append(e.headers, headerMatch{name: textproto.CanonicalMIMEHeaderKey(name), value: r.Headers[name]})
	}
	pol, err := compilePolicies(r.Policies)
	if err != nil {
		errs = append(errs, err)
	}
	e.pol = pol
	plan, planErrs := compileHeaderPlan(r, prefix, pol)
	e.plan = plan
	errs = append(errs, planErrs...)
	if e.hash, err = parseHashOn(r.HashOn); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	e.track, _ = r.Balancer.(balancer.Tracker)
	e.fast = fastRoute(r)
	return e, nil
}

func (e *entry) addHost(h string) error {
	lower := strings.ToLower(h)
	if len(lower) > 1 && lower[0] == '[' && lower[len(lower)-1] == ']' {
		lower = lower[1 : len(lower)-1]
	}
	lower = strings.TrimSuffix(lower, ".")
	name, wildcard := strings.CutPrefix(lower, "*.")
	switch {
	case name == "":
		return fmt.Errorf("host %q is empty", h)
	case strings.ContainsAny(name, "*"):
		return fmt.Errorf("host %q: '*' is allowed only as a leading \"*.\" label", h)
	case strings.ContainsAny(name, "/ \t?#@") || (strings.Contains(name, ":") && !isIPv6(name)):
		return fmt.Errorf("host %q must be a host name without port, path or spaces", h)
	case wildcard:
		e.suffixes = append(e.suffixes, "."+name)
	default:
		e.hosts = append(e.hosts, name)
	}
	return nil
}

func isIPv6(s string) bool {
	for _, c := range s {
		if c != ':' && c != '.' && !('0' <= c && c <= '9') && !('a' <= c && c <= 'f') {
			return false
		}
	}
	return strings.Count(s, ":") >= 2
}

// compilePrefix validates a path prefix and returns its match form: ""
// for every path, otherwise a clean path without trailing slash.
func compilePrefix(p string) (string, error) {
	if p == "" || p == "/" {
		return "", nil
	}
	if p[0] != '/' {
		return "", fmt.Errorf("path prefix %q must start with '/'", p)
	}
	trimmed := strings.TrimSuffix(p, "/")
	if cleanPath(trimmed) != trimmed {
		return "", fmt.Errorf("path prefix %q must be a clean path (no '//', '.' or '..' segments)", p)
	}
	if strings.ContainsAny(trimmed, "?#") {
		return "", fmt.Errorf("path prefix %q must not contain '?' or '#'", p)
	}
	return trimmed, nil
}

// isToken reports whether s is a non-empty RFC 9110 token (method and
// header names).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// queryHas reports whether the raw query has a parameter called name with
// value (both compared decoded: %XX escapes and '+' for a space), or at all
// when value is "". It allocates nothing.
func queryHas(raw, name, value string) bool {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		k, v, hasValue := strings.Cut(pair, "=")
		if !decodedEqual(k, name) {
			continue
		}
		if value == "" || hasValue && decodedEqual(v, value) {
			return true
		}
	}
	return false
}

// decodedEqual reports whether the query component s, decoded, equals
// want. A malformed escape never matches.
func decodedEqual(s, want string) bool {
	j := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '+':
			c = ' '
		case '%':
			if i+2 >= len(s) {
				return false
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return false
			}
			c = hi<<4 | lo
			i += 2
		}
		if j >= len(want) || want[j] != c {
			return false
		}
		j++
	}
	return j == len(want)
}
