package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/auth"
	"github.com/zkgate/zkgate/internal/ratelimit"
)

// benchPolicies returns policies with the real JWT verifier (an ES256 key
// in a JWKS file) and rate limiter, a CORS origin, and a token for them.
func benchPolicies(tb testing.TB) (*Policies, string) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwk := map[string]string{"kty": "EC", "crv": "P-256", "kid": "k", "alg": "ES256",
		"x": b64(key.X.FillBytes(make([]byte, 32))), "y": b64(key.Y.FillBytes(make([]byte, 32)))}
	set, _ := json.Marshal(map[string]any{"keys": []any{jwk}})
	path := filepath.Join(tb.TempDir(), "jwks.json")
	if err := os.WriteFile(path, set, 0o600); err != nil {
		tb.Fatal(err)
	}
	j, err := auth.NewJWT(auth.JWTConfig{JWKSFile: path})
	if err != nil {
		tb.Fatal(err)
	}
	h, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": "k"})
	p, _ := json.Marshal(map[string]any{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	input := b64(h) + "." + b64(p)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		tb.Fatal(err)
	}
	token := input + "." + b64(append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...))
	lim, err := ratelimit.New(ratelimit.Config{Name: "api", Average: 1e5, Burst: 1e6})
	if err != nil {
		tb.Fatal(err)
	}
	return &Policies{
		CORS:      &CORSPolicy{AllowedOrigins: []string{"https://app.example"}, AllowedHeaders: []string{"Authorization"}},
		Auth:      &AuthPolicy{JWT: &JWTAuth{Verifier: benchVerifier{j}, ForwardClaims: map[string]string{"sub": "X-User-ID"}}},
		RateLimit: &RateLimitPolicy{Limiter: benchLimiter{lim}, Key: "client_ip"},
	}, token
}

// benchVerifier and benchLimiter adapt the real checkers as internal/app
// does.
type benchVerifier struct{ j *auth.JWT }

func (v benchVerifier) Verify(token []byte, now time.Time) (Claims, error) {
	c, err := v.j.Verify(token, now)
	if err != nil {
		return nil, err
	}
	return c, nil
}

type benchLimiter struct{ l *ratelimit.Limiter }

func (r benchLimiter) Allow(key string, now time.Time) RateDecision {
	d := r.l.Allow(key, now)
	return RateDecision{Allowed: d.Allowed, Remaining: d.Remaining, RetryAfter: d.RetryAfter, Reset: d.Reset}
}

func (r benchLimiter) AppendPolicy(b []byte) []byte { return r.l.AppendPolicy(b) }

func (r benchLimiter) AppendRateLimit(b []byte, d RateDecision) []byte {
	return r.l.AppendRateLimit(b, ratelimit.Decision{Allowed: d.Allowed, Remaining: d.Remaining, RetryAfter: d.RetryAfter, Reset: d.Reset})
}

// Admitting a request of a route with CORS, a cached JWT and a rate limit
// allocates nothing (the fast path's promise for policy routes).
func TestAdmitAllocatesNothing(t *testing.T) {
	pol, token := benchPolicies(t)
	pol.IPAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	r := testRoute(t, "api", "round_robin", testUpstream(t, "svc"), "127.0.0.1:1")
	r.Policies = pol
	rt := mustRouter(t, r)
	e := rt.entries[0]
	h := headerMap(http.Header{"Origin": {"https://app.example"}, "Authorization": {"Bearer " + token}})
	var w bufferedResponse
	ex := &exchange{e: e, clientIP: "127.0.0.1"}
	now := time.Now()
	if e.admit(ex, http.MethodGet, h, &w, now) {
		t.Fatalf("refused: %d %s", w.status, w.body)
	}
	if n := testing.AllocsPerRun(1000, func() {
		ex.origin, ex.claims = "", nil
		if e.admit(ex, http.MethodGet, h, &w, now) {
			t.Fatal("refused")
		}
	}); n != 0 {
		t.Fatalf("admit allocates %v times per request, want 0", n)
	}
	if ex.origin != "https://app.example" || ex.claims == nil {
		t.Fatalf("origin %q claims %v", ex.origin, ex.claims)
	}
}
