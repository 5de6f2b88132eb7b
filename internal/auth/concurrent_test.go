package auth

import (
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// TestConcurrentUse: checks run in parallel with reloads (under -race);
// every answer is one of the two files', never a mix or a crash.
func TestConcurrentUse(t *testing.T) {
	k := keys(t)
	dir := t.TempDir()
	keysPath := filepath.Join(dir, "keys.txt")
	writeFile(t, keysPath, []byte("a\n"))
	usersPath := filepath.Join(dir, "htpasswd")
	writeFile(t, usersPath, []byte(htpasswdLine(t, "alice", "pw")))
	jwksPath := writeJWKS(t, filepath.Join(dir, "jwks.json"), jwkEd("ed", k.ed), jwkOct("hs", k.hmac))

	a, err := NewAPIKeys(keysPath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBasicUsers(usersPath)
	if err != nil {
		t.Fatal(err)
	}
	j := newJWT(t, JWTConfig{JWKSFile: jwksPath, CacheSize: 8})
	tok := []byte(sign(t, map[string]any{"alg": "EdDSA", "kid": "ed"}, claims(nil), k.ed))
	hs := []byte(sign(t, map[string]any{"alg": "HS256", "kid": "hs"}, claims(nil), k.hmac))

	var stop atomic.Bool
	var bad atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				if !a.Valid([]byte("a")) || a.Valid([]byte("b")) {
					bad.Add(1)
				}
				if !b.Valid([]byte("alice"), []byte("pw")) {
					bad.Add(1)
				}
				if _, err := j.Verify(tok, fixed); err != nil {
					bad.Add(1)
				}
				if _, err := j.Verify(hs, fixed); err != nil {
					bad.Add(1)
				}
			}
		})
	}
	for range 20 {
		if err := a.Reload(); err != nil {
			t.Error(err)
		}
		if err := b.Reload(); err != nil {
			t.Error(err)
		}
		if err := j.Reload(); err != nil {
			t.Error(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Errorf("%d wrong answers during reloads", n)
	}
}

// TestJWTKeyWithoutKid: a token without kid uses the only key of its
// algorithm; with two such keys it is refused rather than guessed.
func TestJWTKeyWithoutKid(t *testing.T) {
	k := keys(t)
	dir := t.TempDir()
	one := writeJWKS(t, filepath.Join(dir, "one.json"), jwkRSA("", k.rsa))
	two := writeJWKS(t, filepath.Join(dir, "two.json"), jwkRSA("", k.rsa), jwkRSA("", k.rsa2))
	tok := []byte(sign(t, map[string]any{"alg": "RS256"}, claims(nil), k.rsa))
	if _, err := newJWT(t, JWTConfig{JWKSFile: one}).Verify(tok, fixed); err != nil {
		t.Errorf("the only RSA key: %s", Reason(err))
	}
	if _, err := newJWT(t, JWTConfig{JWKSFile: two}).Verify(tok, fixed); Reason(err) != errNoKey.Reason {
		t.Errorf("two RSA keys, no kid: %v (%s), want refused", err, Reason(err))
	}
	// Algorithm confusion with no kid: an RSA-only JWKS has no HS256 key.
	conf := []byte(sign(t, map[string]any{"alg": "HS256"}, claims(nil), k.rsa.N.Bytes()))
	if _, err := newJWT(t, JWTConfig{JWKSFile: one}).Verify(conf, fixed); Reason(err) != errNoKey.Reason {
		t.Errorf("HS256 token against an RSA-only JWKS: %v (%s), want refused", err, Reason(err))
	}
}
