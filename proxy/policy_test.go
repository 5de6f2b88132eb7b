package proxy

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fakes of the credential checkers and the rate limiter; internal/auth and
// internal/ratelimit are tested on their own, and with the gateway in
// internal/app.
type fakeKeys map[string]bool

func (k fakeKeys) Valid(key []byte) bool { return k[string(key)] }

type fakeUsers map[string]string

func (u fakeUsers) Valid(user, pass []byte) bool {
	p, ok := u[string(user)]
	return ok && p == string(pass)
}

type fakeClaims map[string]string

func (c fakeClaims) String(name string) (string, bool) { v, ok := c[name]; return v, ok }

type fakeVerifier map[string]fakeClaims // token → claims

func (v fakeVerifier) Verify(token []byte, _ time.Time) (Claims, error) {
	if c, ok := v[string(token)]; ok {
		return c, nil
	}
	return nil, errors.New("bad token")
}

// countLimiter admits the first n requests of each key.
type countLimiter struct {
	mu   sync.Mutex
	n    int
	seen map[string]int
}

func (l *countLimiter) Allow(key string, _ time.Time) RateDecision {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]int{}
	}
	l.seen[key]++
	if l.seen[key] > l.n {
		return RateDecision{RetryAfter: 1500 * time.Millisecond, Reset: 3 * time.Second}
	}
	return RateDecision{Allowed: true, Remaining: l.n - l.seen[key]}
}

func (l *countLimiter) AppendPolicy(b []byte) []byte {
	return append(b, `"r";q=`+strconv.Itoa(l.n)+`;w=1`...)
}

func (l *countLimiter) AppendRateLimit(b []byte, d RateDecision) []byte {
	return append(b, `"r";r=`+strconv.Itoa(d.Remaining)+`;t=`+strconv.Itoa(int(d.Reset/time.Second))...)
}

func (l *countLimiter) count(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[key]
}

// policyFrontend serves one route with pol to an echo backend, trusting
// the loopback peer's X-Forwarded-For, on the fast path or on net/http's
// side (the test's subtest name says which).
func policyFrontend(t *testing.T, pol *Policies) (addr string) {
	t.Helper()
	b := newBackend(t, "b", nil)
	r := testRoute(t, "api", "round_robin", testUpstream(t, "svc"), b.addr())
	r.Policies = pol
	_, h := newFrontend(t, Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, r)
	return pathFrontend(t, h)
}

// pathFrontend serves h on the fast path or on net/http's side (the
// test's subtest name says which) and returns its address.
func pathFrontend(t *testing.T, h *Handler) (addr string) {
	t.Helper()
	fe := startFrontend(t, h, ServerConfig{DisableFastPath: strings.HasSuffix(t.Name(), "/nethttp")})
	return strings.TrimPrefix(fe.URL, "http://")
}

// bothPaths runs f on the fast path and on net/http's side.
func bothPaths(t *testing.T, f func(t *testing.T)) {
	t.Run("fast", f)
	t.Run("nethttp", f)
}

func send(t *testing.T, addr, method, target string, fields ...string) (*http.Response, string) {
	t.Helper()
	req := method + " " + target + " HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n"
	for _, f := range fields {
		req += f + "\r\n"
	}
	res, body := rawRequest(t, addr, req+"\r\n")
	return res, string(body)
}

func TestPolicyIPRules(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		addr := policyFrontend(t, &Policies{
			IPAllow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			IPDeny:  []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")},
		})
		for _, tt := range []struct {
			xff  string
			want int
		}{
			{"10.1.2.3", 200},
			{"10.9.1.1", 403},
			{"192.0.2.1", 403},
			{"", 403},          // the peer, 127.0.0.1, is not allowed
			{"not-an-ip", 403}, // the trusted peer's own address then
		} {
			var fields []string
			if tt.xff != "" {
				fields = append(fields, "X-Forwarded-For: "+tt.xff)
			}
			if res, body := send(t, addr, "GET", "/x", fields...); res.StatusCode != tt.want {
				t.Errorf("client %q: %d %s, want %d", tt.xff, res.StatusCode, body, tt.want)
			}
		}
	})
}

// An X-Forwarded-For from a peer that is not a trusted proxy is not the
// client address: the rules see the peer.
func TestPolicyIPRulesIgnoreUntrustedForwardedFor(t *testing.T) {
	b := newBackend(t, "b", nil)
	r := testRoute(t, "api", "round_robin", testUpstream(t, "svc"), b.addr())
	r.Policies = &Policies{IPAllow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	fe, _ := newFrontend(t, Options{}, r) // trusts no one
	if res, _ := send(t, strings.TrimPrefix(fe.URL, "http://"), "GET", "/x", "X-Forwarded-For: 10.1.1.1"); res.StatusCode != 403 {
		t.Fatalf("a spoofed X-Forwarded-For was believed: %d", res.StatusCode)
	}
}

func TestPolicyCORS(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		addr := policyFrontend(t, &Policies{CORS: &CORSPolicy{
			AllowedOrigins:   []string{"https://app.example", "https://*.example.com"},
			AllowedMethods:   []string{"GET", "PUT"},
			AllowedHeaders:   []string{"Authorization"},
			ExposedHeaders:   []string{"X-Request-Id"},
			AllowCredentials: true,
			MaxAge:           10 * time.Minute,
		}})
		// Preflights.
		for _, tt := range []struct {
			origin, method, headers string
			want                    int
		}{
			{"https://app.example", "PUT", "authorization, content-type", 204},
			{"https://a.b.example.com", "GET", "", 204},
			{"https://example.com", "GET", "", 403},
			{"http://app.example", "GET", "", 403},
			{"https://evil.example", "GET", "", 403},
			{"https://app.example", "DELETE", "", 403},
			{"https://app.example", "PUT", "X-Secret", 403},
		} {
			fields := []string{"Origin: " + tt.origin, "Access-Control-Request-Method: " + tt.method}
			if tt.headers != "" {
				fields = append(fields, "Access-Control-Request-Headers: "+tt.headers)
			}
			res, _ := send(t, addr, "OPTIONS", "/x", fields...)
			if res.StatusCode != tt.want {
				t.Errorf("preflight %s %s %q: %d, want %d", tt.origin, tt.method, tt.headers, res.StatusCode, tt.want)
				continue
			}
			if tt.want == 204 {
				h := res.Header
				if h.Get("Access-Control-Allow-Origin") != tt.origin || h.Get("Access-Control-Allow-Credentials") != "true" ||
					h.Get("Access-Control-Allow-Methods") != "GET, PUT" || h.Get("Access-Control-Allow-Headers") != "Authorization" ||
					h.Get("Access-Control-Max-Age") != "600" || !strings.Contains(h.Get("Vary"), "Origin") {
					t.Errorf("preflight %s: headers %v", tt.origin, h)
				}
			} else if res.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("refused preflight %s carries Access-Control-Allow-Origin", tt.origin)
			}
		}
		// Actual requests.
		res, _ := send(t, addr, "GET", "/x", "Origin: https://app.example")
		if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
			res.Header.Get("Access-Control-Expose-Headers") != "X-Request-Id" || !strings.Contains(strings.Join(res.Header.Values("Vary"), ","), "Origin") {
			t.Fatalf("actual request from an allowed origin: %d %v", res.StatusCode, res.Header)
		}
		res, _ = send(t, addr, "GET", "/x", "Origin: https://evil.example")
		if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "" || !strings.Contains(strings.Join(res.Header.Values("Vary"), ","), "Origin") {
			t.Fatalf("actual request from another origin: %d %v", res.StatusCode, res.Header)
		}
	})
}

func TestPolicyAuth(t *testing.T) {
	basic := func(u, p string) string {
		return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p))
	}
	for _, tt := range []struct {
		name      string
		auth      *AuthPolicy
		fields    []string
		want      int
		challenge string
		upstream  map[string]string // header → value the backend must see ("" = absent)
	}{
		{"api key missing", &AuthPolicy{APIKey: &APIKeyAuth{Header: "X-API-Key", Keys: fakeKeys{"k1": true}}}, nil, 401, `APIKey header="X-API-Key"`, nil},
		{"api key wrong", &AuthPolicy{APIKey: &APIKeyAuth{Header: "X-API-Key", Keys: fakeKeys{"k1": true}}}, []string{"X-API-Key: k2"}, 401, `APIKey`, nil},
		{"api key twice", &AuthPolicy{APIKey: &APIKeyAuth{Header: "X-API-Key", Keys: fakeKeys{"k1": true}}}, []string{"X-API-Key: k1", "X-API-Key: k1"}, 401, `APIKey`, nil},
		{"api key good", &AuthPolicy{APIKey: &APIKeyAuth{Header: "X-API-Key", Keys: fakeKeys{"k1": true}}}, []string{"X-API-Key: k1"}, 200, "", map[string]string{"X-Api-Key": ""}},
		{"api key forwarded", &AuthPolicy{APIKey: &APIKeyAuth{Header: "X-API-Key", Keys: fakeKeys{"k1": true}}, ForwardCredentials: true}, []string{"X-API-Key: k1"}, 200, "", map[string]string{"X-Api-Key": "k1"}},
		{"jwt missing", &AuthPolicy{JWT: &JWTAuth{Verifier: fakeVerifier{}}}, nil, 401, "Bearer", nil},
		{"jwt bad", &AuthPolicy{JWT: &JWTAuth{Verifier: fakeVerifier{"t1": {}}}}, []string{"Authorization: Bearer t2"}, 401, `Bearer error="invalid_token"`, nil},
		{"jwt good, claims forwarded, spoofed header replaced", &AuthPolicy{JWT: &JWTAuth{
			Verifier: fakeVerifier{"t1": {"sub": "alice"}}, ForwardClaims: map[string]string{"sub": "X-User-ID", "tenant": "X-Tenant"},
		}}, []string{"Authorization: Bearer t1", "X-User-ID: mallory", "X-Tenant: evil"}, 200, "",
			map[string]string{"Authorization": "", "X-User-Id": "alice", "X-Tenant": ""}},
		{"basic missing", &AuthPolicy{Basic: &BasicAuth{Realm: "api", Users: fakeUsers{"u": "p"}}}, nil, 401, `Basic realm="api", charset="UTF-8"`, nil},
		{"basic wrong", &AuthPolicy{Basic: &BasicAuth{Realm: "api", Users: fakeUsers{"u": "p"}}}, []string{basic("u", "x")}, 401, "Basic", nil},
		{"basic malformed", &AuthPolicy{Basic: &BasicAuth{Realm: "api", Users: fakeUsers{"u": "p"}}}, []string{"Authorization: Basic !!!"}, 401, "Basic", nil},
		{"basic good", &AuthPolicy{Basic: &BasicAuth{Realm: "api", Users: fakeUsers{"u": "p:q"}}}, []string{basic("u", "p:q")}, 200, "", map[string]string{"Authorization": ""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bothPaths(t, func(t *testing.T) {
				addr := policyFrontend(t, &Policies{Auth: tt.auth})
				res, body := send(t, addr, "GET", "/x", tt.fields...)
				if res.StatusCode != tt.want {
					t.Fatalf("%d %s, want %d", res.StatusCode, body, tt.want)
				}
				if tt.want == 401 {
					if got := res.Header.Get("Www-Authenticate"); !strings.HasPrefix(got, tt.challenge) {
						t.Fatalf("WWW-Authenticate %q, want %q", got, tt.challenge)
					}
					if !strings.Contains(body, `"error":"unauthorized"`) || strings.Contains(body, "token") {
						t.Fatalf("401 body %s: want the generic error only", body)
					}
					return
				}
				e := decodeEcho(t, []byte(body))
				for name, want := range tt.upstream {
					got := strings.Join(e.Header[name], ",")
					if got != want {
						t.Errorf("upstream %s = %q, want %q", name, got, want)
					}
				}
			})
		})
	}
}

func TestPolicyRateLimit(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		lim := &countLimiter{n: 2}
		addr := policyFrontend(t, &Policies{RateLimit: &RateLimitPolicy{Limiter: lim, Key: "header:X-Tenant"}})
		for i := range 3 {
			res, body := send(t, addr, "GET", "/x", "X-Tenant: acme")
			if i < 2 && res.StatusCode != 200 {
				t.Fatalf("request %d: %d %s", i, res.StatusCode, body)
			}
			if i == 2 {
				if res.StatusCode != 429 || res.Header.Get("Retry-After") != "2" || res.Header.Get("Ratelimit-Policy") != `"r";q=2;w=1` ||
					res.Header.Get("Ratelimit") != `"r";r=0;t=3` || !strings.Contains(body, "too many requests") {
					t.Fatalf("over the limit: %d %v %s", res.StatusCode, res.Header, body)
				}
			}
		}
		if res, _ := send(t, addr, "GET", "/x", "X-Tenant: other"); res.StatusCode != 200 {
			t.Fatalf("another key: %d, want its own bucket", res.StatusCode)
		}
	})
}

// The policies apply in their documented order: IP rules, the CORS
// preflight, authentication, the rate limit — so a preflight needs no
// credential, and refused requests take no rate-limit token.
func TestPolicyOrder(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		lim := &countLimiter{n: 100}
		addr := policyFrontend(t, &Policies{
			IPDeny:    []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")},
			CORS:      &CORSPolicy{AllowedOrigins: []string{"https://app.example"}, AllowedHeaders: []string{"X-API-Key"}},
			Auth:      &AuthPolicy{APIKey: &APIKeyAuth{Header: "X-API-Key", Keys: fakeKeys{"k": true}}},
			RateLimit: &RateLimitPolicy{Limiter: lim, Key: "client_ip"},
		})
		if res, _ := send(t, addr, "OPTIONS", "/x", "X-Forwarded-For: 10.9.0.1", "Origin: https://app.example", "Access-Control-Request-Method: GET"); res.StatusCode != 403 {
			t.Errorf("denied IP preflight: %d, want 403 (IP rules first)", res.StatusCode)
		}
		if res, _ := send(t, addr, "OPTIONS", "/x", "X-Forwarded-For: 10.1.0.1", "Origin: https://app.example", "Access-Control-Request-Method: GET", "Access-Control-Request-Headers: x-api-key"); res.StatusCode != 204 {
			t.Errorf("preflight without a key: %d, want 204 (before authentication)", res.StatusCode)
		}
		if res, _ := send(t, addr, "GET", "/x", "X-Forwarded-For: 10.1.0.1", "Origin: https://app.example"); res.StatusCode != 401 || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
			t.Errorf("no key: %d %v, want 401 a script can read", res.StatusCode, res.Header)
		}
		if n := lim.count("10.1.0.1"); n != 0 {
			t.Errorf("the rate limiter counted %d requests that were not admitted", n)
		}
		if res, _ := send(t, addr, "GET", "/x", "X-Forwarded-For: 10.1.0.1", "X-API-Key: k"); res.StatusCode != 200 || lim.count("10.1.0.1") != 1 {
			t.Errorf("admitted: %d, counted %d", res.StatusCode, lim.count("10.1.0.1"))
		}
	})
}

func TestPolicyResponseHeaders(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "backend/1.0")
		w.Header().Set("X-Powered-By", "php")
		_, _ = w.Write([]byte("ok"))
	})
	r := testRoute(t, "api", "round_robin", testUpstream(t, "svc"), b.addr())
	r.Policies = &Policies{
		SetResponseHeaders:    map[string]string{"x-frame-options": "DENY", "X-Powered-By": "zkgate"},
		RemoveResponseHeaders: []string{"server"},
	}
	_, h := newFrontend(t, Options{}, r)
	for _, fast := range []bool{true, false} {
		fe := startFrontend(t, h, ServerConfig{DisableFastPath: !fast})
		res, body := send(t, strings.TrimPrefix(fe.URL, "http://"), "GET", "/x")
		if res.StatusCode != 200 || body != "ok" || res.Header.Get("Server") != "" || res.Header.Get("X-Frame-Options") != "DENY" || res.Header.Values("X-Powered-By")[0] != "zkgate" || len(res.Header.Values("X-Powered-By")) != 1 {
			t.Fatalf("fast=%v: %d %q %v", fast, res.StatusCode, body, res.Header)
		}
	}
}

// On the fast path a refused request is answered on the connection, which
// stays open for the next request (no hand-off to net/http).
func TestPolicyRefusalKeepsConnection(t *testing.T) {
	addr := policyFrontend(t, &Policies{Auth: &AuthPolicy{APIKey: &APIKeyAuth{Header: "X-API-Key", Keys: fakeKeys{"k": true}}}})
	c := dialServer(t, addr)
	c.send(t, "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc")
	if m := c.response(t, "POST"); m.statusCode() != 401 {
		t.Fatalf("no key: %s", m.start)
	}
	c.send(t, "GET /x HTTP/1.1\r\nHost: h\r\nX-API-Key: k\r\n\r\n")
	if m := c.response(t, "GET"); m.statusCode() != 200 {
		t.Fatalf("with the key, on the same connection: %s", m.start)
	}
}
