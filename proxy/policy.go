package proxy

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A route's policies admit or refuse requests before anything is sent
// upstream, and edit the answer on its way back. They are decided here, for
// both paths, in a fixed order:
//
//  1. IP rules (IPAllow, then IPDeny) on the client address trusted proxies
//     yield: 403.
//  2. CORS: a preflight (OPTIONS with Origin and
//     Access-Control-Request-Method) is answered by the gateway, 204 when
//     the origin, method and headers are allowed, 403 otherwise; it is not
//     authenticated or counted against the rate limit, as browsers send
//     preflights without credentials.
//  3. Authentication: 401 with a WWW-Authenticate challenge and no detail.
//     The credential is removed before the request goes upstream (unless
//     ForwardCredentials), and so are the headers claims are forwarded in,
//     whatever the client sent in them.
//  4. The rate limit: 429 with Retry-After, RateLimit-Policy and RateLimit.
//
// Then the request is proxied; response headers are edited (removals, then
// settings) and, for a request from an allowed origin, the CORS headers
// added; last, an eligible answer is compressed (compress.go). A route
// without policies pays one nil check.

// Policies are a route's admission rules and response edits; the zero
// value has none.
type Policies struct {
	// IPAllow admits only clients in these prefixes (empty: every client);
	// IPDeny refuses clients in these.
	IPAllow, IPDeny []netip.Prefix
	// CORS answers preflights and adds the CORS headers to answers.
	CORS *CORSPolicy
	// Auth requires a credential.
	Auth *AuthPolicy
	// RateLimit limits requests per key.
	RateLimit *RateLimitPolicy
	// SetResponseHeaders are set on the answer (replacing any value);
	// RemoveResponseHeaders removed from it, before the settings.
	SetResponseHeaders    map[string]string
	RemoveResponseHeaders []string
	// Compress compresses eligible answers (compress.go).
	Compress *CompressPolicy
}

// CORSPolicy is a route's CORS configuration.
type CORSPolicy struct {
	// AllowedOrigins: "https://app.example", "https://*.example.com" (any
	// subdomain, at any depth), or "*".
	AllowedOrigins   []string
	AllowedMethods   []string
	AllowedHeaders   []string
	ExposedHeaders   []string
	AllowCredentials bool
	MaxAge           time.Duration
}

// AuthPolicy is a route's authentication: exactly one of APIKey, JWT and
// Basic.
type AuthPolicy struct {
	APIKey *APIKeyAuth
	JWT    *JWTAuth
	Basic  *BasicAuth
	// ForwardCredentials sends the credential upstream.
	ForwardCredentials bool
}

// APIKeyAuth checks a key sent in Header.
type APIKeyAuth struct {
	Header string
	Keys   KeyChecker
}

// JWTAuth verifies "Authorization: Bearer" tokens; ForwardClaims maps a
// claim name to the header its value goes upstream in.
type JWTAuth struct {
	Verifier      TokenVerifier
	ForwardClaims map[string]string
}

// BasicAuth checks HTTP basic credentials.
type BasicAuth struct {
	Realm string
	Users PasswordChecker
}

// KeyChecker says whether an API key is valid. Valid must not keep key.
type KeyChecker interface{ Valid(key []byte) bool }

// PasswordChecker says whether basic credentials are valid. Valid must not
// keep user or pass.
type PasswordChecker interface{ Valid(user, pass []byte) bool }

// TokenVerifier verifies a bearer token at now and returns its claims.
// Verify must not keep token.
type TokenVerifier interface {
	Verify(token []byte, now time.Time) (Claims, error)
}

// Claims gives a verified token's claims as strings.
type Claims interface {
	String(name string) (string, bool)
}

// RateLimitPolicy is a route's rate limit: Key is "client_ip", "route" or
// "header:NAME".
type RateLimitPolicy struct {
	Limiter RateLimiter
	Key     string
}

// RateLimiter takes a token for a key. Allow must not keep key.
type RateLimiter interface {
	Allow(key string, now time.Time) RateDecision
	// AppendPolicy appends the RateLimit-Policy field value;
	// AppendRateLimit the RateLimit field value for d.
	AppendPolicy(b []byte) []byte
	AppendRateLimit(b []byte, d RateDecision) []byte
}

// RateDecision is a rate limiter's answer for one request.
type RateDecision struct {
	Allowed    bool
	Remaining  int
	RetryAfter time.Duration
	Reset      time.Duration
}

// policies is the compiled form of a route's Policies.
type policies struct {
	allow, deny []netip.Prefix
	cors        *corsPolicy
	auth        *AuthPolicy
	authHeader  string      // the canonical header the credential comes in
	claims      [][2]string // claim name, header (canonical), sorted by claim
	limit       *RateLimitPolicy
	limitHeader string      // canonical, for key "header:NAME"
	setResp     [][2]string // canonical name, value
	removeResp  []string
	compress    *compressPolicy
}

type corsPolicy struct {
	any         bool
	origins     []string // exact, lower case
	suffixes    []origSuffix
	credentials bool
	methods     string // the Access-Control-Allow-Methods value
	methodList  []string
	headers     []string // canonical
	headersText string   // the Access-Control-Allow-Headers value
	exposed     string
	maxAge      string
}

// origSuffix is "https://*.example.com": scheme "https://", suffix
// ".example.com" (and any port after it).
type origSuffix struct{ scheme, suffix string }

// compilePolicies checks p and precomputes what requests need.
func compilePolicies(p *Policies) (*policies, error) {
	if p == nil {
		return nil, nil
	}
	c := &policies{allow: p.IPAllow, deny: p.IPDeny, limit: p.RateLimit}
	var errs []error
	if cp := p.CORS; cp != nil {
		cc, err := compileCORS(cp)
		if err != nil {
			errs = append(errs, err)
		}
		c.cors = cc
	}
	if a := p.Auth; a != nil {
		c.auth = a
		n := 0
		if a.APIKey != nil {
			n++
			if a.APIKey.Keys == nil || !isToken(a.APIKey.Header) {
				errs = append(errs, errors.New("auth: api key needs a header name and keys"))
			}
			c.authHeader = textproto.CanonicalMIMEHeaderKey(a.APIKey.Header)
		}
		if a.JWT != nil {
			n++
			if a.JWT.Verifier == nil {
				errs = append(errs, errors.New("auth: jwt needs a verifier"))
			}
			c.authHeader = "Authorization"
			for _, claim := range sortedKeys(a.JWT.ForwardClaims) {
				h := a.JWT.ForwardClaims[claim]
				if !isToken(h) {
					errs = append(errs, fmt.Errorf("auth: claim %q forwarded in an invalid header %q", claim, h))
					continue
				}
				c.claims = append(c.claims, [2]string{claim, textproto.CanonicalMIMEHeaderKey(h)})
			}
		}
		if a.Basic != nil {
			n++
			if a.Basic.Users == nil {
				errs = append(errs, errors.New("auth: basic needs users"))
			}
			c.authHeader = "Authorization"
		}
		if n != 1 {
			errs = append(errs, errors.New("auth: exactly one of api key, jwt and basic"))
		}
	}
	if l := p.RateLimit; l != nil {
		switch name, isHeader := strings.CutPrefix(l.Key, "header:"); {
		case l.Limiter == nil:
			errs = append(errs, errors.New("rate limit: no limiter"))
		case l.Key == "client_ip", l.Key == "route":
		case isHeader && isToken(name):
			c.limitHeader = textproto.CanonicalMIMEHeaderKey(name)
		default:
			errs = append(errs, fmt.Errorf("rate limit: unknown key %q", l.Key))
		}
	}
	setAs := make(map[string]string, len(p.SetResponseHeaders)) // canonical name → the spelling set
	for _, name := range sortedKeys(p.SetResponseHeaders) {
		if !isToken(name) || strings.ContainsAny(p.SetResponseHeaders[name], "\r\n\x00") {
			errs = append(errs, fmt.Errorf("response header %q: invalid name or value", name))
			continue
		}
		canon := textproto.CanonicalMIMEHeaderKey(name)
		if reservedField(canon) {
			errs = append(errs, fmt.Errorf("set response header %q: a hop-by-hop or framing field is the proxy's to decide", name))
			continue
		}
		if prev, ok := setAs[canon]; ok {
			// Field names are case-insensitive: which value to send
			// would be a guess (net/http's side and the fast path would
			// not even guess alike).
			errs = append(errs, fmt.Errorf("set response header %q: %q names the same field", name, prev))
			continue
		}
		setAs[canon] = name
		c.setResp = append(c.setResp, [2]string{canon, p.SetResponseHeaders[name]})
	}
	if p.Compress != nil {
		z, err := compileCompress(p.Compress)
		if err != nil {
			errs = append(errs, err)
		}
		c.compress = z
	}
	for _, name := range p.RemoveResponseHeaders {
		if !isToken(name) {
			errs = append(errs, fmt.Errorf("response header %q: invalid name", name))
			continue
		}
		if reservedField(textproto.CanonicalMIMEHeaderKey(name)) {
			// Removing Content-Length would leave the fast path's
			// answer without its framing on a kept connection.
			errs = append(errs, fmt.Errorf("remove response header %q: a hop-by-hop or framing field is the proxy's to decide", name))
			continue
		}
		c.removeResp = append(c.removeResp, textproto.CanonicalMIMEHeaderKey(name))
	}
	return c, errors.Join(errs...)
}

func compileCORS(p *CORSPolicy) (*corsPolicy, error) {
	c := &corsPolicy{credentials: p.AllowCredentials}
	for _, o := range p.AllowedOrigins {
		o = strings.ToLower(o)
		switch scheme, rest, _ := strings.Cut(o, "://"); {
		case o == "*":
			if p.AllowCredentials {
				return nil, errors.New(`cors: origin "*" with credentials`)
			}
			c.any = true
		case strings.HasPrefix(rest, "*."):
			c.suffixes = append(c.suffixes, origSuffix{scheme: scheme + "://", suffix: rest[1:]})
		default:
			c.origins = append(c.origins, o)
		}
	}
	methods := p.AllowedMethods
	if len(methods) == 0 {
		methods = []string{http.MethodGet, http.MethodHead, http.MethodPost}
	}
	c.methodList = methods
	c.methods = strings.Join(methods, ", ")
	for _, h := range p.AllowedHeaders {
		c.headers = append(c.headers, textproto.CanonicalMIMEHeaderKey(h))
	}
	c.headersText = strings.Join(c.headers, ", ")
	exposed := make([]string, len(p.ExposedHeaders))
	for i, h := range p.ExposedHeaders {
		exposed[i] = textproto.CanonicalMIMEHeaderKey(h)
	}
	c.exposed = strings.Join(exposed, ", ")
	if p.MaxAge > 0 {
		c.maxAge = strconv.FormatInt(int64(p.MaxAge/time.Second), 10)
	}
	return c, nil
}

// allowOrigin reports whether origin (as the browser sent it) is allowed.
func (c *corsPolicy) allowOrigin(origin string) bool {
	if origin == "" || origin == "null" {
		return c.any && origin != ""
	}
	if c.any {
		return true
	}
	for _, o := range c.origins {
		if strings.EqualFold(origin, o) {
			return true
		}
	}
	for _, s := range c.suffixes {
		if len(origin) <= len(s.scheme) || !strings.EqualFold(origin[:len(s.scheme)], s.scheme) {
			continue
		}
		host := origin[len(s.scheme):]
		if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.IndexByte(host[i:], ']') < 0 {
			host = host[:i]
		}
		if len(host) > len(s.suffix) && strings.EqualFold(host[len(host)-len(s.suffix):], s.suffix) {
			return true
		}
	}
	return false
}

// allowHeaders reports whether every header named in the comma-separated
// Access-Control-Request-Headers value is allowed (the CORS-safelisted
// ones always are).
func (c *corsPolicy) allowHeaders(list string) bool {
	for list != "" {
		var name string
		name, list, _ = strings.Cut(list, ",")
		name = strings.TrimSpace(name)
		if name == "" || corsSafelisted(name) {
			continue
		}
		ok := false
		for _, h := range c.headers {
			if strings.EqualFold(h, name) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// corsSafelisted reports whether a request header needs no permission
// (the Fetch standard's CORS-safelisted request headers, by name).
func corsSafelisted(name string) bool {
	for _, s := range [...]string{"Accept", "Accept-Language", "Content-Language", "Content-Type"} {
		if strings.EqualFold(name, s) {
			return true
		}
	}
	return false
}

// verdict is the answer policies give a refused request: a status with
// its headers, or 0 for an admitted one.
type verdict struct {
	status int
	msg    string
}

// admit applies e's request policies to the request (method, headers h,
// client ex.clientIP) at now. A refused request or a preflight is answered
// on w, which admit reports by true; an admitted one has its CORS origin
// and forwarded claims recorded in ex.
func (e *entry) admit(ex *exchange, method string, h headerSource, w http.ResponseWriter, now time.Time) bool {
	p := e.pol
	if len(p.allow) > 0 || len(p.deny) > 0 {
		if !p.ipAdmitted(ex.clientIP) {
			ex.refused(e, "ip")
			ex.writeError(w, http.StatusForbidden, "forbidden", e.route.Name, e.service)
			return true
		}
	}
	if c := p.cors; c != nil {
		origin, _ := h.value("Origin", 0)
		reqMethod, preflight := h.value("Access-Control-Request-Method", 0)
		if method == http.MethodOptions && origin != "" && preflight {
			c.preflight(ex, w, h, origin, reqMethod)
			return true
		}
		if c.allowOrigin(origin) {
			ex.origin = origin
		}
	}
	if p.auth != nil && !p.authenticate(ex, h, w, now) {
		ex.refused(e, "auth")
		ex.writeErrorHeaders(w, http.StatusUnauthorized, "unauthorized", e)
		return true
	}
	if l := p.limit; l != nil {
		key := e.route.Name
		switch l.Key {
		case "client_ip":
			key = ex.clientIP
		case "route":
		default:
			key, _ = h.value(p.limitHeader, 0)
		}
		d := l.Limiter.Allow(key, now)
		if !d.Allowed {
			hdr := w.Header()
			secs := (d.RetryAfter + time.Second - 1) / time.Second
			hdr.Set("Retry-After", strconv.FormatInt(int64(max(secs, 1)), 10))
			hdr.Set("Ratelimit-Policy", string(l.Limiter.AppendPolicy(nil)))
			hdr.Set("Ratelimit", string(l.Limiter.AppendRateLimit(nil, d)))
			ex.refused(e, "rate_limit")
			ex.writeErrorHeaders(w, http.StatusTooManyRequests, "too many requests", e)
			return true
		}
	}
	if p.compress != nil {
		ex.enc = acceptedEncoding(h)
	}
	return false
}

// refused counts a request of route e that its policies refused for
// reason, when the Handler's observer counts refusals.
func (ex *exchange) refused(e *entry, reason string) {
	if ex.h == nil {
		return
	}
	if o, ok := ex.h.metrics.(RefusalObserver); ok {
		o.ObserveRefusal(e.route, reason)
	}
}

// writeErrorHeaders writes an error answer with the headers already set
// on w, and the CORS headers of an allowed origin, so that a script can
// read why it was refused.
func (ex *exchange) writeErrorHeaders(w http.ResponseWriter, status int, msg string, e *entry) {
	if c := e.pol.cors; c != nil && ex.origin != "" {
		c.addActual(w.Header(), ex.origin)
	}
	ex.writeError(w, status, msg, e.route.Name, e.service)
}

// ipAdmitted applies the IP rules to the client address ip.
func (p *policies) ipAdmitted(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false // not an address: refused when there are rules
	}
	a = a.Unmap()
	if len(p.allow) > 0 && !containsAddr(p.allow, a) {
		return false
	}
	return !containsAddr(p.deny, a)
}

func containsAddr(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// preflight answers a CORS preflight for origin asking for reqMethod.
func (c *corsPolicy) preflight(ex *exchange, w http.ResponseWriter, h headerSource, origin, reqMethod string) {
	hdr := w.Header()
	hdr["Vary"] = varyPreflight
	reqHeaders, _ := h.value("Access-Control-Request-Headers", 0)
	if !c.allowOrigin(origin) || !slices.Contains(c.methodList, reqMethod) && !corsSafeMethod(reqMethod) || !c.allowHeaders(reqHeaders) {
		ex.refused(ex.e, "cors")
		hdr.Set("Content-Length", "0")
		w.WriteHeader(http.StatusForbidden)
		ex.sw.status = http.StatusForbidden
		return
	}
	c.addOrigin(hdr, origin)
	hdr.Set("Access-Control-Allow-Methods", c.methods)
	if c.headersText != "" {
		hdr.Set("Access-Control-Allow-Headers", c.headersText)
	}
	if c.maxAge != "" {
		hdr.Set("Access-Control-Max-Age", c.maxAge)
	}
	hdr.Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	ex.sw.status = http.StatusNoContent
}

var varyPreflight = []string{"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}

func corsSafeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodPost
}

// addOrigin sets the origin (or "*") and credentials fields.
func (c *corsPolicy) addOrigin(hdr http.Header, origin string) {
	if c.any && !c.credentials {
		hdr.Set("Access-Control-Allow-Origin", "*")
	} else {
		hdr.Set("Access-Control-Allow-Origin", origin)
	}
	if c.credentials {
		hdr.Set("Access-Control-Allow-Credentials", "true")
	}
}

// addActual adds the CORS fields of an actual response to origin.
func (c *corsPolicy) addActual(hdr http.Header, origin string) {
	c.addOrigin(hdr, origin)
	if c.exposed != "" {
		hdr.Set("Access-Control-Expose-Headers", c.exposed)
	}
}

// authenticate checks the request's credential; a failure's challenge is
// set on w. Forwarded claims are recorded in ex.
func (p *policies) authenticate(ex *exchange, h headerSource, w http.ResponseWriter, now time.Time) bool {
	a := p.auth
	switch {
	case a.APIKey != nil:
		key, ok := h.value(p.authHeader, 0)
		if _, dup := h.value(p.authHeader, 1); ok && !dup && key != "" && a.APIKey.Keys.Valid(sbytes(key)) {
			return true
		}
		w.Header().Set("Www-Authenticate", `APIKey header="`+a.APIKey.Header+`"`)
	case a.JWT != nil:
		if token, ok := bearer(h); ok {
			if claims, err := a.JWT.Verifier.Verify(sbytes(token), now); err == nil {
				ex.claims = claims
				return true
			}
			w.Header().Set("Www-Authenticate", `Bearer error="invalid_token"`)
		} else {
			w.Header().Set("Www-Authenticate", "Bearer")
		}
	case a.Basic != nil:
		if user, pass, ok := basicCredentials(h); ok && a.Basic.Users.Valid(user, pass) {
			return true
		}
		w.Header().Set("Www-Authenticate", `Basic realm="`+a.Basic.Realm+`", charset="UTF-8"`)
	}
	return false
}

// bearer returns the token of the one "Authorization: Bearer" field.
func bearer(h headerSource) (string, bool) {
	v, ok := h.value("Authorization", 0)
	if _, dup := h.value("Authorization", 1); !ok || dup || len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return "", false
	}
	token := strings.TrimSpace(v[7:])
	return token, token != ""
}

// basicCredentials decodes the one "Authorization: Basic" field.
func basicCredentials(h headerSource) (user, pass []byte, ok bool) {
	v, ok := h.value("Authorization", 0)
	if _, dup := h.value("Authorization", 1); !ok || dup || len(v) < 6 || !strings.EqualFold(v[:6], "basic ") {
		return nil, nil, false
	}
	var buf [256]byte
	enc := strings.TrimSpace(v[6:])
	if base64.StdEncoding.DecodedLen(len(enc)) > len(buf) {
		return nil, nil, false
	}
	n, err := base64.StdEncoding.Decode(buf[:], sbytes(enc))
	if err != nil {
		return nil, nil, false
	}
	u, pw, found := strings.Cut(string(buf[:n]), ":")
	if !found || u == "" {
		return nil, nil, false
	}
	return []byte(u), []byte(pw), true
}

// editsAnswers reports whether the policies change the endpoint's
// answers (forward.modifyResponse): response fields set or removed, CORS
// fields, compression. Those that only judge or shape requests (IP rules,
// authentication and its forwarded claims, the rate limit, whose fields go
// on its own refusals only) leave answers as the endpoint sent them.
func (p *policies) editsAnswers() bool {
	return p.cors != nil || len(p.setResp) > 0 || len(p.removeResp) > 0 || p.compress != nil
}

// editResponse applies the route's response edits to an answer's header
// hdr: removals, settings, then the CORS fields for an allowed origin
// (with Vary: Origin whenever CORS is configured, as the answer depends on
// it).
func (p *policies) editResponse(hdr http.Header, origin string) {
	for _, name := range p.removeResp {
		delete(hdr, name)
	}
	for _, s := range p.setResp {
		hdr[s[0]] = []string{s[1]}
	}
	if c := p.cors; c != nil {
		hdr.Add("Vary", "Origin")
		if origin != "" {
			c.addActual(hdr, origin)
		}
	}
}

// setsResponseField reports whether the route sets the response field
// name (canonical).
func (p *policies) setsResponseField(name string) bool {
	for _, s := range p.setResp {
		if s[0] == name {
			return true
		}
	}
	return false
}

// editsResponseField reports whether the fast path drops a response field
// called name (its bytes, any case): the route removes or sets it.
func (p *policies) editsResponseField(name []byte) bool {
	for _, r := range p.removeResp {
		if sameName(name, r) {
			return true
		}
	}
	for _, s := range p.setResp {
		if sameName(name, s[0]) {
			return true
		}
	}
	return false
}

// writeResponseFields writes the route's response settings and CORS
// fields on the fast path, as editResponse sets them on net/http's; those
// of a compressed (coded) answer edited as the endpoint's are.
func (p *policies) writeResponseFields(w *clientWriter, origin string, coded bool) {
	for _, s := range p.setResp {
		if coded && writeCodedField(w, sbytes(s[0]), sbytes(s[1])) {
			continue
		}
		w.field(s[0], s[1])
	}
	if c := p.cors; c != nil {
		w.field("Vary", "Origin")
		if origin != "" {
			if c.any && !c.credentials {
				w.field("Access-Control-Allow-Origin", "*")
			} else {
				w.field("Access-Control-Allow-Origin", origin)
			}
			if c.credentials {
				w.field("Access-Control-Allow-Credentials", "true")
			}
			if c.exposed != "" {
				w.field("Access-Control-Expose-Headers", c.exposed)
			}
		}
	}
}
