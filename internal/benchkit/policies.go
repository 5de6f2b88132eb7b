package benchkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// PolicyOrigin is the one origin the zkgate-policies target's CORS policy
// allows, and the Origin its requests carry.
const PolicyOrigin = "https://app.example"

// PolicySubject is the sub claim of the bench token, forwarded upstream as
// X-User-ID.
const PolicySubject = "bench-user"

// BenchToken is the JWT the zkgate-policies target's requests carry: a
// fresh ECDSA P-256 key made at bench time, its public half in a JWKS file
// of the run's state directory (never committed), and one ES256 token
// signed with it.
type BenchToken struct {
	// JWKSFile is the JSON Web Key Set holding the public key.
	JWKSFile string
	// Token is the compact JWS: sub PolicySubject, exp a day ahead.
	Token string
}

// Headers returns the request headers of the zkgate-policies target, as
// wrk's -H values: the token as a bearer credential and PolicyOrigin.
func (b BenchToken) Headers() []string {
	return []string{"Authorization: Bearer " + b.Token, "Origin: " + PolicyOrigin}
}

// WriteBenchToken makes a fresh P-256 key, writes its public key to
// dir/jwks.json (kid "bench", alg ES256) and signs a token valid for a day
// from now.
func WriteBenchToken(dir string) (BenchToken, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return BenchToken{}, fmt.Errorf("benchkit: token key: %w", err)
	}
	pub, err := key.PublicKey.Bytes() // 0x04 || X || Y, 32 bytes each
	if err != nil {
		return BenchToken{}, fmt.Errorf("benchkit: token key: %w", err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "bench", "x": b64(pub[1:33]), "y": b64(pub[33:]),
	}}})
	if err != nil {
		return BenchToken{}, fmt.Errorf("benchkit: JWKS: %w", err)
	}
	head, err := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT", "kid": "bench"})
	if err != nil {
		return BenchToken{}, fmt.Errorf("benchkit: token header: %w", err)
	}
	claims, err := json.Marshal(map[string]any{"sub": PolicySubject, "exp": time.Now().Add(24 * time.Hour).Unix()})
	if err != nil {
		return BenchToken{}, fmt.Errorf("benchkit: token claims: %w", err)
	}
	signed := b64(head) + "." + b64(claims)
	digest := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		return BenchToken{}, fmt.Errorf("benchkit: sign token: %w", err)
	}
	sig := make([]byte, 64) // JWS carries R || S, 32 bytes each (RFC 7518 section 3.4)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return BenchToken{}, fmt.Errorf("benchkit: %w", err)
	}
	file := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(file, jwks, 0o644); err != nil {
		return BenchToken{}, fmt.Errorf("benchkit: write %s: %w", file, err)
	}
	return BenchToken{JWKSFile: file, Token: signed + "." + b64(sig)}, nil
}
