package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// waitLimit bounds every awaited condition.
const waitLimit = 10 * time.Second

// eventually polls cond until it holds, failing the test with what after
// waitLimit.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitLimit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// writeFile writes data to path atomically (a temporary file renamed into
// place), as a deployment tool would.
func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// testKeys are one key of each kind, generated once per test binary (RSA
// 2048 generation is slow under -race).
type testKeys struct {
	rsa  *rsa.PrivateKey
	ec   *ecdsa.PrivateKey
	ed   ed25519.PrivateKey
	hmac []byte
	rsa2 *rsa.PrivateKey // a second RSA key, not in the JWKS unless added
}

var (
	keysOnce sync.Once
	theKeys  testKeys
)

func keys(t testing.TB) *testKeys {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if theKeys.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if theKeys.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if theKeys.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if _, theKeys.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
		theKeys.hmac = make([]byte, 32)
		rand.Read(theKeys.hmac)
	})
	return &theKeys
}

// jwkRSA and friends are the public JWKs of the test keys.
func jwkRSA(kid string, k *rsa.PrivateKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": b64u(k.N.Bytes()), "e": b64u([]byte{1, 0, 1})}
}

func jwkEC(kid string, k *ecdsa.PrivateKey) map[string]any {
	pt, err := k.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		panic(err)
	}
	return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64u(pt[1:33]), "y": b64u(pt[33:])}
}

func jwkEd(kid string, k ed25519.PrivateKey) map[string]any {
	return map[string]any{"kty": "OKP", "kid": kid, "crv": "Ed25519", "alg": "EdDSA", "x": b64u(k.Public().(ed25519.PublicKey))}
}

func jwkOct(kid string, secret []byte) map[string]any {
	return map[string]any{"kty": "oct", "kid": kid, "alg": "HS256", "k": b64u(secret)}
}

// writeJWKS writes a JWKS of the given keys and returns its path.
func writeJWKS(t testing.TB, path string, ks ...map[string]any) string {
	t.Helper()
	data, err := json.Marshal(map[string]any{"keys": ks})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, data)
	return path
}

// allJWKS writes the JWKS of the four test keys, kids "rsa", "ec", "ed",
// "hs", into a new directory.
func allJWKS(t testing.TB) string {
	k := keys(t)
	return writeJWKS(t, filepath.Join(t.TempDir(), "jwks.json"),
		jwkRSA("rsa", k.rsa), jwkEC("ec", k.ec), jwkEd("ed", k.ed), jwkOct("hs", k.hmac))
}

// signingInput is base64url(header) "." base64url(claims).
func signingInput(t testing.TB, hdr, claims map[string]any) string {
	t.Helper()
	h, err := json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return b64u(h) + "." + b64u(c)
}

// sign makes a compact JWS with the header's alg and the given private key
// (or HMAC secret), whatever the key's kind: tests of refusals need tokens
// signed in the wrong way.
func sign(t testing.TB, hdr, claims map[string]any, key any) string {
	t.Helper()
	in := signingInput(t, hdr, claims)
	d := sha256.Sum256([]byte(in))
	var sig []byte
	var err error
	switch k := key.(type) {
	case []byte:
		m := hmac.New(sha256.New, k)
		m.Write([]byte(in))
		sig = m.Sum(nil)
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
	case *ecdsa.PrivateKey:
		r, s, e := ecdsa.Sign(rand.Reader, k, d[:])
		err = e
		sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, []byte(in))
	case nil:
		sig = nil
	default:
		t.Fatalf("sign: key of type %T", key)
	}
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64u(sig)
}

// fixed is the time tokens are verified at.
var fixed = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

// claims are valid claims at fixed, for issuer "https://id.test" and
// audience "api", plus the given overrides (a nil value deletes).
func claims(over map[string]any) map[string]any {
	c := map[string]any{
		"iss": "https://id.test",
		"aud": "api",
		"sub": "user-42",
		"iat": fixed.Add(-time.Minute).Unix(),
		"nbf": fixed.Add(-time.Minute).Unix(),
		"exp": fixed.Add(time.Hour).Unix(),
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func hmacSHA256(secret, data []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(data)
	return m.Sum(nil)
}
