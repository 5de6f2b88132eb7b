package auth

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkJWTVerifyCold: a full verify (no cache) per algorithm.
func BenchmarkJWTVerifyCold(b *testing.B) {
	k := keys(b)
	j := newJWT(b, JWTConfig{JWKSFile: allJWKS(b), Issuer: "https://id.test", Audiences: []string{"api"}, CacheSize: -1})
	for _, tc := range []struct {
		alg, kid string
		key      any
	}{
		{"RS256", "rsa", k.rsa}, {"ES256", "ec", k.ec}, {"EdDSA", "ed", k.ed}, {"HS256", "hs", k.hmac},
	} {
		tok := []byte(sign(b, map[string]any{"alg": tc.alg, "kid": tc.kid}, claims(nil), tc.key))
		b.Run(tc.alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := j.Verify(tok, fixed); err != nil {
					b.Fatal(Reason(err))
				}
			}
		})
	}
}

// BenchmarkJWTVerifyCached: a hot token, from the cache, in parallel.
func BenchmarkJWTVerifyCached(b *testing.B) {
	k := keys(b)
	j := newJWT(b, JWTConfig{JWKSFile: allJWKS(b), Issuer: "https://id.test", Audiences: []string{"api"}})
	toks := make([][]byte, 64) // several hot tokens, as several clients
	for i := range toks {
		toks[i] = []byte(sign(b, map[string]any{"alg": "HS256", "kid": "hs"}, claims(map[string]any{"jti": fmt.Sprint(i)}), k.hmac))
		if _, err := j.Verify(toks[i], fixed); err != nil {
			b.Fatal(Reason(err))
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := j.Verify(toks[i%len(toks)], fixed); err != nil {
				b.Fatal(Reason(err))
			}
			i++
		}
	})
}

// BenchmarkAPIKeysValid: one check against a file of 1,000 keys.
func BenchmarkAPIKeysValid(b *testing.B) {
	path := filepath.Join(b.TempDir(), "keys.txt")
	var data []byte
	for i := range 1000 {
		data = fmt.Appendf(data, "key-%032d\n", i)
	}
	writeFile(b, path, data)
	a, err := NewAPIKeys(path)
	if err != nil {
		b.Fatal(err)
	}
	key := fmt.Appendf(nil, "key-%032d", 500)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !a.Valid(key) {
				b.Fatal("refused")
			}
		}
	})
}

// BenchmarkBasicCached: a hot basic credential, from the cache.
func BenchmarkBasicCached(b *testing.B) {
	path := filepath.Join(b.TempDir(), "htpasswd")
	writeFile(b, path, []byte(htpasswdLine(b, "alice", "wonderland")))
	u, err := NewBasicUsers(path)
	if err != nil {
		b.Fatal(err)
	}
	user, pass := []byte("alice"), []byte("wonderland")
	if !u.Valid(user, pass) {
		b.Fatal("refused")
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !u.Valid(user, pass) {
				b.Fatal("refused")
			}
		}
	})
}
