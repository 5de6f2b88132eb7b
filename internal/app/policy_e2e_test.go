package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/testpki"
	"github.com/zkgate/zkgate/internal/zktest"
)

// es256Key is a signing key with its JWKS entry.
type es256Key struct {
	kid string
	key *ecdsa.PrivateKey
}

func newES256(t *testing.T, kid string) es256Key {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return es256Key{kid: kid, key: k}
}

func (k es256Key) jwk() map[string]string {
	b64 := base64.RawURLEncoding.EncodeToString
	pad := func(n *big.Int) []byte { return n.FillBytes(make([]byte, 32)) }
	return map[string]string{"kty": "EC", "crv": "P-256", "kid": k.kid, "alg": "ES256", "use": "sig",
		"x": b64(pad(k.key.X)), "y": b64(pad(k.key.Y))}
}

// sign makes a compact JWS of claims with k.
func (k es256Key) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT", "kid": k.kid})
	p, _ := json.Marshal(claims)
	input := b64(h) + "." + b64(p)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k.key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	return input + "." + b64(sig)
}

func writeJWKS(t *testing.T, path string, keys ...es256Key) {
	t.Helper()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.jwk())
	}
	b, _ := json.Marshal(set)
	testpki.WriteFile(t, path, b)
}

// Route policies through the real gateway with real files: a JWT route
// forwarding a claim and rate limited per client, an API key route; the
// JWKS and keys files rotated while serving; a malformed keys file refused
// at reload with the running configuration kept.
func TestPoliciesThroughGateway(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	dir := t.TempDir()
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user=%q key=%q auth=%q", r.Header.Get("X-User-Id"), r.Header.Get("X-Api-Key"), r.Header.Get("Authorization"))
	}))
	t.Cleanup(be.Close)
	jwks, keys := filepath.Join(dir, "jwks.json"), filepath.Join(dir, "api-keys.txt")
	k1, k2 := newES256(t, "k1"), newES256(t, "k2")
	writeJWKS(t, jwks, k1)
	testpki.WriteFile(t, keys, []byte("# team keys\nkey-one\n\n"))
	routes := fmt.Sprintf(`  - name: jwt
    match: { path_prefix: /jwt }
    service: echo
    auth: { jwt: { jwks_file: %q, issuer: https://id.example, audiences: [api], forward_claims: { sub: X-User-ID } } }
    rate_limit: { average: 1, burst: 5, period: 1m, key: client_ip }
  - name: keys
    match: { path_prefix: /keys }
    service: echo
    auth: { api_key: { keys_file: %q } }`, jwks, keys)
	services := fmt.Sprintf("  echo: { discovery: { static: { endpoints: [%q] } } }", hostPort(be))
	g := startGateway(t, srv.Addr(), routes, services)

	do := func(path string, fields ...string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, g.proxy+path, nil)
		for _, f := range fields {
			name, value, _ := strings.Cut(f, ": ")
			req.Header.Set(name, value)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, string(b)
	}
	now := time.Now()
	claims := map[string]any{"sub": "alice", "iss": "https://id.example", "aud": "api", "exp": now.Add(time.Hour).Unix()}
	token := k1.sign(t, claims)

	if code, h, _ := do("/jwt/x"); code != 401 || h.Get("Www-Authenticate") != "Bearer" {
		t.Fatalf("no token: %d %v", code, h)
	}
	if code, _, body := do("/jwt/x", "Authorization: Bearer "+token, "X-User-ID: mallory"); code != 200 || body != `user="alice" key="" auth=""` {
		t.Fatalf("good token: %d %s", code, body)
	}
	wrongAud := k1.sign(t, map[string]any{"sub": "bob", "iss": "https://id.example", "aud": "other", "exp": now.Add(time.Hour).Unix()})
	if code, _, body := do("/jwt/x", "Authorization: Bearer "+wrongAud); code != 401 || strings.Contains(body, "aud") {
		t.Fatalf("wrong audience: %d %s", code, body)
	}
	// Five tokens per minute per client: the one above and four more, then 429.
	for i := range 4 {
		if code, _, _ := do("/jwt/x", "Authorization: Bearer "+token); code != 200 {
			t.Fatalf("request %d within the burst: %d", i+2, code)
		}
	}
	code, h, _ := do("/jwt/x", "Authorization: Bearer "+token)
	if code != 429 || h.Get("Retry-After") == "" || !strings.Contains(h.Get("Ratelimit-Policy"), `"jwt";q=5`) || !strings.HasPrefix(h.Get("Ratelimit"), `"jwt";r=0`) {
		t.Fatalf("over the limit: %d %v", code, h)
	}
	// Refusals are counted per route and reason.
	_, metrics := get(t, g.admin+"/metrics")
	for _, want := range []string{`zkgate_policy_refusals_total{reason="auth",route="jwt"} 2`, `zkgate_policy_refusals_total{reason="rate_limit",route="jwt"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("/metrics lacks %s:\n%s", want, grepLines(metrics, "policy_refusals"))
		}
	}
	// A reload that leaves the limit as it is keeps the buckets: still 429.
	res, err := http.Post(g.admin+"/api/reload", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/reload: %d", res.StatusCode)
	}
	if code, _, _ := do("/jwt/x", "Authorization: Bearer "+token); code != 429 {
		t.Fatalf("after a reload with the same rate_limit: %d, want the bucket kept (429)", code)
	}

	// API keys, and their file rotated.
	if code, h, _ := do("/keys/x", "X-API-Key: key-two"); code != 401 || !strings.HasPrefix(h.Get("Www-Authenticate"), "APIKey") {
		t.Fatalf("unknown key: %d %v", code, h)
	}
	if code, _, body := do("/keys/x", "X-API-Key: key-one"); code != 200 || body != `user="" key="" auth=""` {
		t.Fatalf("good key: %d %s (the key must not go upstream)", code, body)
	}
	testpki.WriteFile(t, keys, []byte("key-two\n"))
	zktest.WaitFor(t, 10*time.Second, func() bool { c, _, _ := do("/keys/x", "X-API-Key: key-two"); return c == 200 }, "the rotated key accepted")
	if code, _, _ := do("/keys/x", "X-API-Key: key-one"); code != 401 {
		t.Fatalf("a removed key: %d, want 401", code)
	}

	// The JWKS rotated: k2's tokens are accepted, k1's refused.
	writeJWKS(t, jwks, k2)
	token2 := k2.sign(t, claims)
	zktest.WaitFor(t, 10*time.Second, func() bool {
		c, _, _ := do("/jwt/y", "Authorization: Bearer "+token2, "X-Forwarded-For: 192.0.2.9")
		return c == 200 || c == 429
	}, "the rotated JWKS in use")
	if code, _, _ := do("/jwt/y", "Authorization: Bearer "+k1.sign(t, claims)); code != 401 {
		t.Fatalf("a token of the removed key: %d, want 401", code)
	}

	// A malformed keys file named in the configuration: validate refuses
	// it by key path, and a reload keeps the running configuration.
	bad := filepath.Join(dir, "bad-keys.txt")
	testpki.WriteFile(t, bad, []byte("ok-key\nbad\x01key\n"))
	pp, _ := strconv.Atoi(port(strings.TrimPrefix(g.proxy, "http://")))
	ap, _ := strconv.Atoi(port(strings.TrimPrefix(g.admin, "http://")))
	writeConfig(t, g.cfgPath, srv.Addr(), pp, ap, strings.Replace(routes, keys, bad, 1), services)
	zktest.WaitFor(t, 10*time.Second, func() bool {
		return strings.Contains(g.log.String(), "routes[1].auth.api_key.keys_file") && strings.Contains(g.log.String(), "line 2")
	}, "the reload refused, naming the key and line")
	if code, _, _ := do("/keys/x", "X-API-Key: key-two"); code != 200 {
		t.Fatalf("after a refused reload: %d, want the running configuration", code)
	}
}

// A route's compression, configured in YAML: a client that accepts gzip
// gets the body gzipped, and a reload that turns it off is applied live.
func TestCompressionThroughGateway(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	body := strings.Repeat(`{"id":1,"name":"widget"},`, 200)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(be.Close)
	routes := `  - name: api
    service: echo
    compress: { enabled: true, min_bytes: 100, level: 1 }`
	services := fmt.Sprintf("  echo: { discovery: { static: { endpoints: [%q] } } }", hostPort(be))
	g := startGateway(t, srv.Addr(), routes, services)
	get := func() (*http.Response, string) {
		t.Helper()
		res, err := http.Get(g.proxy + "/items") // the client asks for gzip and decodes it
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, string(b)
	}
	if res, got := get(); !res.Uncompressed || got != body {
		t.Fatalf("compressed route: decoded by the client %v, body intact %v", res.Uncompressed, got == body)
	}
	pp, _ := strconv.Atoi(port(strings.TrimPrefix(g.proxy, "http://")))
	ap, _ := strconv.Atoi(port(strings.TrimPrefix(g.admin, "http://")))
	writeConfig(t, g.cfgPath, srv.Addr(), pp, ap, strings.Replace(routes, "enabled: true", "enabled: false", 1), services)
	zktest.WaitFor(t, 10*time.Second, func() bool { res, _ := get(); return !res.Uncompressed }, "the reload that turns compression off")
	if res, got := get(); res.Uncompressed || got != body || res.Header.Get("Vary") != "" {
		t.Fatalf("after the reload: %v %d", res.Header, len(got))
	}
}
