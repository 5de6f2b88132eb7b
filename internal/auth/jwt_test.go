package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newJWT(t testing.TB, cfg JWTConfig) *JWT {
	t.Helper()
	j, err := NewJWT(cfg)
	if err != nil {
		t.Fatalf("NewJWT: %v", err)
	}
	return j
}

func stdConfig(t testing.TB) JWTConfig {
	return JWTConfig{JWKSFile: allJWKS(t), Issuer: "https://id.test", Audiences: []string{"other", "api"}}
}

// TestJWTEachAlgorithm: a good token of each algorithm is accepted, by kid
// and, with no kid, as the only key of its algorithm; sub is forwarded.
func TestJWTEachAlgorithm(t *testing.T) {
	k := keys(t)
	j := newJWT(t, stdConfig(t))
	for _, tc := range []struct {
		alg, kid string
		key      any
	}{
		{"RS256", "rsa", k.rsa}, {"ES256", "ec", k.ec}, {"EdDSA", "ed", k.ed}, {"HS256", "hs", k.hmac},
	} {
		for _, withKid := range []bool{true, false} {
			hdr := map[string]any{"alg": tc.alg, "typ": "JWT"}
			if withKid {
				hdr["kid"] = tc.kid
			}
			tok := sign(t, hdr, claims(nil), tc.key)
			c, err := j.Verify([]byte(tok), fixed)
			if err != nil {
				t.Errorf("%s (kid %v): refused: %v (%s)", tc.alg, withKid, err, Reason(err))
				continue
			}
			if sub, ok := c.String("sub"); !ok || sub != "user-42" {
				t.Errorf("%s: sub = %q, %v", tc.alg, sub, ok)
			}
			if iat, ok := c.String("iat"); !ok || iat == "" {
				t.Errorf("%s: iat as string = %q, %v", tc.alg, iat, ok)
			}
			if _, ok := c.String("missing"); ok {
				t.Errorf("%s: a missing claim reported present", tc.alg)
			}
		}
	}
}

// TestJWTRefused: every bad token is refused with ErrUnauthorized and the
// reason that names its fault; the error text is generic.
func TestJWTRefused(t *testing.T) {
	k := keys(t)
	j := newJWT(t, JWTConfig{JWKSFile: allJWKS(t), Issuer: "https://id.test", Audiences: []string{"api"}, CacheSize: -1})
	rs := func(c map[string]any) string { return sign(t, map[string]any{"alg": "RS256", "kid": "rsa"}, c, k.rsa) }
	good := rs(claims(nil))
	parts := strings.Split(good, ".")
	tamperedPayload := parts[0] + "." + b64u([]byte(`{"iss":"https://id.test","aud":"api","sub":"admin","exp":9999999999}`)) + "." + parts[2]
	sig := []byte(parts[2])
	// One base64url letter changed to another (never an invalid one, which
	// would be refused as malformed before the signature is checked).
	if sig[10] == 'A' {
		sig[10] = 'B'
	} else {
		sig[10] = 'A'
	}
	tamperedSig := parts[0] + "." + parts[1] + "." + string(sig)
	// The RSA public key as an attacker would feed it to a naive HMAC
	// verifier: its PEM-free modulus bytes (any encoding would do).
	pubDER := k.rsa.N.Bytes()

	for _, tc := range []struct {
		name, token string
		reason      *Failure
	}{
		{"expired", rs(claims(map[string]any{"exp": fixed.Add(-time.Hour).Unix()})), errExpired},
		{"not yet valid", rs(claims(map[string]any{"nbf": fixed.Add(time.Hour).Unix()})), errNotYetValid},
		{"no exp", rs(claims(map[string]any{"exp": nil})), errNoExp},
		{"exp a string", rs(claims(map[string]any{"exp": "tomorrow"})), errNoExp},
		{"wrong issuer", rs(claims(map[string]any{"iss": "https://evil.test"})), errIssuer},
		{"no issuer", rs(claims(map[string]any{"iss": nil})), errIssuer},
		{"wrong audience", rs(claims(map[string]any{"aud": []string{"web", "mobile"}})), errAudience},
		{"no audience", rs(claims(map[string]any{"aud": nil})), errAudience},
		{"tampered payload", tamperedPayload, errSignature},
		{"tampered signature", tamperedSig, errSignature},
		{"signed by another RSA key", sign(t, map[string]any{"alg": "RS256", "kid": "rsa"}, claims(nil), k.rsa2), errSignature},
		{"alg none, no signature", signingInput(t, map[string]any{"alg": "none"}, claims(nil)) + ".", errMalformed},
		{"alg none, kid of a key", sign(t, map[string]any{"alg": "none", "kid": "rsa"}, claims(nil), []byte("x")), errAlg},
		{"alg none, no kid", sign(t, map[string]any{"alg": "none"}, claims(nil), []byte("x")), errNoKey},
		// Algorithm confusion: the RSA public key used as an HS256 secret.
		{"RS256 public key as HS256 secret, kid", sign(t, map[string]any{"alg": "HS256", "kid": "rsa"}, claims(nil), pubDER), errAlg},
		{"RS256 public key as HS256 secret, HS256 kid", sign(t, map[string]any{"alg": "HS256", "kid": "hs"}, claims(nil), pubDER), errSignature},
		{"header alg differs from the key's", sign(t, map[string]any{"alg": "ES256", "kid": "rsa"}, claims(nil), k.ec), errAlg},
		{"RS384 header", sign(t, map[string]any{"alg": "RS384", "kid": "rsa"}, claims(nil), k.rsa), errAlg},
		{"unknown kid", sign(t, map[string]any{"alg": "RS256", "kid": "gone"}, claims(nil), k.rsa), errUnknownKID},
		{"crit header", sign(t, map[string]any{"alg": "RS256", "kid": "rsa", "crit": []string{"b64"}}, claims(nil), k.rsa), errCrit},
		{"two parts", parts[0] + "." + parts[1], errMalformed},
		{"four parts", good + ".x", errMalformed},
		{"empty", "", errMalformed},
		{"bad base64 header", "!!!." + parts[1] + "." + parts[2], errHeader},
		{"padded base64 signature", good + "=", errMalformed},
		{"header not JSON", b64u([]byte("not json")) + "." + parts[1] + "." + parts[2], errHeader},
		{"payload not JSON", hsRaw(t, `{"alg":"HS256","kid":"hs"}`, `not json`, k.hmac), errPayload},
		{"payload JSON array", hsRaw(t, `{"alg":"HS256","kid":"hs"}`, `[1,2]`, k.hmac), errPayload},
		{"payload trailing data", hsRaw(t, `{"alg":"HS256","kid":"hs"}`, `{"exp":9999999999} {}`, k.hmac), errPayload},
		{"too long", strings.Repeat("a", MaxTokenSize+1), errTooLong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := j.Verify([]byte(tc.token), fixed)
			if err == nil {
				t.Fatalf("accepted, claims %v", c.m)
			}
			if !errors.Is(err, ErrUnauthorized) || err.Error() != "unauthorized" {
				t.Errorf("error %q is not the generic ErrUnauthorized", err)
			}
			if got := Reason(err); got != tc.reason.Reason {
				t.Errorf("reason %q, want %q", got, tc.reason.Reason)
			}
		})
	}
}

// hsRaw signs a raw header and payload with HS256.
func hsRaw(t testing.TB, hdr, payload string, secret []byte) string {
	t.Helper()
	in := b64u([]byte(hdr)) + "." + b64u([]byte(payload))
	return in + "." + b64u(hmacSHA256(secret, []byte(in)))
}

// TestJWTLeeway: exp and nbf are honoured with the leeway, not beyond it.
func TestJWTLeeway(t *testing.T) {
	k := keys(t)
	for _, leeway := range []time.Duration{0, 10 * time.Second} {
		cfg := JWTConfig{JWKSFile: allJWKS(t), Leeway: leeway, CacheSize: -1}
		effective := leeway
		if leeway == 0 {
			effective = DefaultLeeway
		}
		j := newJWT(t, cfg)
		tok := func(c map[string]any) []byte {
			return []byte(sign(t, map[string]any{"alg": "EdDSA", "kid": "ed"}, claims(c), k.ed))
		}
		expiredWithin := tok(map[string]any{"exp": fixed.Add(-effective + time.Second).Unix()})
		expiredBeyond := tok(map[string]any{"exp": fixed.Add(-effective).Unix()})
		earlyWithin := tok(map[string]any{"nbf": fixed.Add(effective).Unix()})
		earlyBeyond := tok(map[string]any{"nbf": fixed.Add(effective + time.Second).Unix()})
		if _, err := j.Verify(expiredWithin, fixed); err != nil {
			t.Errorf("leeway %s: expired within the leeway refused: %s", effective, Reason(err))
		}
		if _, err := j.Verify(expiredBeyond, fixed); Reason(err) != errExpired.Reason {
			t.Errorf("leeway %s: expired by the leeway: %v, want refused as expired", effective, err)
		}
		if _, err := j.Verify(earlyWithin, fixed); err != nil {
			t.Errorf("leeway %s: nbf within the leeway refused: %s", effective, Reason(err))
		}
		if _, err := j.Verify(earlyBeyond, fixed); Reason(err) != errNotYetValid.Reason {
			t.Errorf("leeway %s: nbf beyond the leeway: %v, want refused", effective, err)
		}
	}
	// A negative leeway means none.
	j := newJWT(t, JWTConfig{JWKSFile: allJWKS(t), Leeway: -1, CacheSize: -1})
	tok := sign(t, map[string]any{"alg": "EdDSA", "kid": "ed"}, claims(map[string]any{"exp": fixed.Unix()}), k.ed)
	if _, err := j.Verify([]byte(tok), fixed); err == nil {
		t.Error("no leeway: a token at its exp accepted")
	}
}

// TestJWTCache: a second verify of the same token allocates nothing and
// returns the same claims; a cached token is refused once expired; the
// cache is bounded.
func TestJWTCache(t *testing.T) {
	k := keys(t)
	j := newJWT(t, JWTConfig{JWKSFile: allJWKS(t), Leeway: time.Second, CacheSize: 32})
	tok := []byte(sign(t, map[string]any{"alg": "ES256", "kid": "ec"}, claims(nil), k.ec))
	first, err := j.Verify(tok, fixed)
	if err != nil {
		t.Fatal(Reason(err))
	}
	var again *Claims
	allocs := testing.AllocsPerRun(1000, func() {
		again, err = j.Verify(tok, fixed)
	})
	if err != nil || again != first {
		t.Fatalf("cached verify: %v, claims %p want %p", err, again, first)
	}
	if allocs != 0 {
		t.Errorf("a cached verify allocates %.1f times, want 0", allocs)
	}

	// Expired while cached: refused, and dropped from the cache.
	exp := fixed.Add(time.Hour)
	if _, err := j.Verify(tok, exp); err != nil {
		t.Errorf("within the leeway after exp: %s", Reason(err))
	}
	if _, err := j.Verify(tok, exp.Add(time.Second)); Reason(err) != errExpired.Reason {
		t.Errorf("cached token after exp + leeway: %v (%s), want expired", err, Reason(err))
	}
	if _, err := j.Verify(tok, exp.Add(time.Second)); Reason(err) != errExpired.Reason {
		t.Errorf("expired token verified again: %v (%s), want expired", err, Reason(err))
	}
	// A cached token checked before its nbf (a clock going back) is refused.
	if _, err := j.Verify(tok, fixed); err != nil {
		t.Fatal(Reason(err))
	}
	if _, err := j.Verify(tok, fixed.Add(-2*time.Minute)); Reason(err) != errNotYetValid.Reason {
		t.Errorf("cached token before nbf: %v, want refused", err)
	}

	// Bounded: many distinct tokens leave at most CacheSize (rounded up to
	// the shards) entries.
	for i := range 200 {
		tok := sign(t, map[string]any{"alg": "HS256", "kid": "hs"}, claims(map[string]any{"jti": i}), k.hmac)
		if _, err := j.Verify([]byte(tok), fixed); err != nil {
			t.Fatal(Reason(err))
		}
	}
	if n := j.state.Load().cache.len(); n > 32 {
		t.Errorf("cache holds %d tokens, bound 32", n)
	}
}

// TestJWTReload: a new key is accepted after a reload and a removed one
// refused, cached tokens of the removed key included; a bad JWKS keeps the
// old keys. The watch sees the file renamed into place.
func TestJWTReload(t *testing.T) {
	k := keys(t)
	path := writeJWKS(t, filepath.Join(t.TempDir(), "jwks.json"), jwkRSA("rsa", k.rsa))
	j := newJWT(t, JWTConfig{JWKSFile: path})
	if err := j.Watch(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(j.Wait)
	oldTok := []byte(sign(t, map[string]any{"alg": "RS256", "kid": "rsa"}, claims(nil), k.rsa))
	newTok := []byte(sign(t, map[string]any{"alg": "RS256", "kid": "rsa2"}, claims(nil), k.rsa2))
	if _, err := j.Verify(oldTok, fixed); err != nil {
		t.Fatal(Reason(err))
	}
	if _, err := j.Verify(newTok, fixed); err == nil {
		t.Fatal("a token of a key not yet in the JWKS accepted")
	}

	writeJWKS(t, path, jwkRSA("rsa2", k.rsa2))
	eventually(t, "the new key to be accepted", func() bool { _, err := j.Verify(newTok, fixed); return err == nil })
	if _, err := j.Verify(oldTok, fixed); Reason(err) != errUnknownKID.Reason {
		t.Errorf("token of the removed key (cached before): %v, want refused as unknown kid", err)
	}

	// A bad file: refused, the old keys kept, counted.
	failures := j.ReloadFailures()
	writeFile(t, path, []byte(`{"keys": [{"kty": "RSA", "kid": "weak", "n": "AQAB", "e": "AQAB"}]}`))
	eventually(t, "the bad JWKS to be refused", func() bool { return j.ReloadFailures() > failures })
	if _, err := j.Verify(newTok, fixed); err != nil {
		t.Errorf("after a refused reload: %s, want the old key kept", Reason(err))
	}
	if err := j.Reload(); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `keys[0] (kid "weak")`) {
		t.Errorf("Reload of a bad JWKS = %v, want an error naming %s and keys[0]", err, path)
	}
}

// TestJWKSErrors: a bad JWKS is an error naming the file and key, without
// key material.
func TestJWKSErrors(t *testing.T) {
	k := keys(t)
	dir := t.TempDir()
	rsaJWK := jwkRSA("r", k.rsa)
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"not JSON", `{"keys": [`, "not a JWKS document"},
		{"no keys", `{"keys": []}`, "holds no signature key"},
		{"only encryption keys", `{"keys": [{"kty": "RSA", "use": "enc"}]}`, "holds no signature key"},
		{"unknown kty", `{"keys": [{"kty": "XYZ"}]}`, `keys[0]: kty "XYZ"`},
		{"RS512", `{"keys": [{"kty": "RSA", "alg": "RS512", "n": "` + rsaJWK["n"].(string) + `", "e": "AQAB"}]}`, `alg "RS512"`},
		{"weak RSA", `{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}`, "RSA key of 17 bits"},
		{"short HMAC", `{"keys": [{"kty": "oct", "kid": "s", "k": "c2hvcnQ"}]}`, `keys[0] (kid "s"): HS256 secret of 5 bytes`},
		{"P-384", `{"keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}]}`, `curve "P-384"`},
		{"point off the curve", `{"keys": [{"kty": "EC", "crv": "P-256", "x": "` + b64u(make([]byte, 32)) + `", "y": "` + b64u([]byte("0123456789abcdef0123456789abcdef")) + `"}]}`, "not on the curve"},
		{"padded base64", `{"keys": [{"kty": "oct", "k": "c2hvcnQ="}]}`, "not unpadded base64url"},
		{"duplicate kid", `{"keys": [{"kty": "oct", "kid": "a", "k": "` + b64u(k.hmac) + `"}, {"kty": "oct", "kid": "a", "k": "` + b64u(k.hmac) + `"}]}`, `kid "a" given twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".json")
			if err := os.WriteFile(path, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := NewJWT(JWTConfig{JWKSFile: path})
			if err == nil || !strings.HasPrefix(err.Error(), path+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewJWT = %v, want %s: ...%s...", err, path, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), b64u(k.hmac)) {
				t.Errorf("error %q shows key material", err)
			}
		})
	}
	if _, err := NewJWT(JWTConfig{JWKSFile: filepath.Join(dir, "missing.json")}); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing JWKS: %v", err)
	}
}
