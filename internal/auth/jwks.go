package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// The algorithms a key can fix. The token header must name the same one.
const (
	algHS256 = "HS256"
	algRS256 = "RS256"
	algES256 = "ES256"
	algEdDSA = "EdDSA"
)

// minHMACKey is the shortest HS256 secret accepted: RFC 7518 section 3.2
// asks for a key at least as long as the hash output.
const minHMACKey = 32

// minRSABits is the smallest RSA modulus accepted.
const minRSABits = 2048

// jwk is one JSON Web Key as a JWKS file holds it (RFC 7517, 7518, 8037).
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	K   string `json:"k"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// key is a parsed verification key and the one algorithm it verifies.
type key struct {
	kid     string
	alg     string
	hmac    []byte
	rsa     *rsa.PublicKey
	ecdsa   *ecdsa.PublicKey
	ed25519 ed25519.PublicKey
}

// keySet is a loaded JWKS: keys by kid, and by algorithm for tokens
// without a kid.
type keySet struct {
	byKID map[string]*key
	byAlg map[string][]*key
}

// parseJWKS parses a JWKS document. Keys with "use" other than "sig" are
// skipped; a key of another type, curve or algorithm, a weak key, a kid
// given twice or no usable key at all is an error naming the key by index
// (keys[2]) and kid, never showing key material.
func parseJWKS(data []byte) (*keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not a JWKS document: %w", jsonError(err))
	}
	ks := &keySet{byKID: make(map[string]*key), byAlg: make(map[string][]*key)}
	n := 0
	for i, raw := range doc.Keys {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, jsonError(err))
		}
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		k, err := parseJWK(&j)
		if err != nil {
			if j.Kid != "" {
				return nil, fmt.Errorf("keys[%d] (kid %q): %w", i, j.Kid, err)
			}
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		if k.kid != "" {
			if _, dup := ks.byKID[k.kid]; dup {
				return nil, fmt.Errorf("keys[%d]: kid %q given twice", i, k.kid)
			}
			ks.byKID[k.kid] = k
		}
		ks.byAlg[k.alg] = append(ks.byAlg[k.alg], k)
		n++
	}
	if n == 0 {
		return nil, errors.New(`holds no signature key (want {"keys": [...]})`)
	}
	return ks, nil
}

// jsonError drops the offending value from a JSON error's text: it could be
// key material.
func jsonError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("JSON syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("JSON field %q: want %s, got %s", te.Field, te.Type, te.Value)
	}
	return errors.New("malformed JSON")
}

// parseJWK turns one JWK into a key, fixing its algorithm from kty and crv;
// an "alg" given must agree.
func parseJWK(j *jwk) (*key, error) {
	k := &key{kid: j.Kid}
	want := func(alg string) error {
		if j.Alg != "" && j.Alg != alg {
			return fmt.Errorf("alg %q with kty %q: only %s is supported for it", j.Alg, j.Kty, alg)
		}
		k.alg = alg
		return nil
	}
	var err error
	switch j.Kty {
	case "oct":
		if err = want(algHS256); err != nil {
			return nil, err
		}
		if k.hmac, err = b64(j.K, "k"); err != nil {
			return nil, err
		}
		if len(k.hmac) < minHMACKey {
			return nil, fmt.Errorf("HS256 secret of %d bytes: want at least %d", len(k.hmac), minHMACKey)
		}
	case "RSA":
		if err = want(algRS256); err != nil {
			return nil, err
		}
		n, err := b64(j.N, "n")
		if err != nil {
			return nil, err
		}
		e, err := b64(j.E, "e")
		if err != nil {
			return nil, err
		}
		if len(e) == 0 || len(e) > 4 {
			return nil, errors.New(`RSA exponent "e" out of range`)
		}
		exp := new(big.Int).SetBytes(e)
		if exp.Int64() < 3 || exp.Int64()%2 == 0 {
			return nil, errors.New(`RSA exponent "e" must be odd and at least 3`)
		}
		k.rsa = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp.Int64())}
		if bits := k.rsa.N.BitLen(); bits < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits: want at least %d", bits, minRSABits)
		}
	case "EC":
		if err = want(algES256); err != nil {
			return nil, err
		}
		if j.Crv != "P-256" {
			return nil, fmt.Errorf("EC curve %q: only P-256 (ES256) is supported", j.Crv)
		}
		x, err := b64(j.X, "x")
		if err != nil {
			return nil, err
		}
		y, err := b64(j.Y, "y")
		if err != nil {
			return nil, err
		}
		if len(x) != 32 || len(y) != 32 {
			return nil, errors.New(`P-256 "x" and "y" must be 32 bytes each`)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, errors.New("P-256 point not on the curve")
		}
		k.ecdsa = pub
	case "OKP":
		if j.Alg == "Ed25519" { // RFC 9864's fully specified name
			j.Alg = algEdDSA
		}
		if err = want(algEdDSA); err != nil {
			return nil, err
		}
		if j.Crv != "Ed25519" {
			return nil, fmt.Errorf("OKP curve %q: only Ed25519 (EdDSA) is supported", j.Crv)
		}
		x, err := b64(j.X, "x")
		if err != nil {
			return nil, err
		}
		if len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf(`Ed25519 "x" must be %d bytes`, ed25519.PublicKeySize)
		}
		k.ed25519 = ed25519.PublicKey(x)
	case "":
		return nil, errors.New(`no "kty"`)
	default:
		return nil, fmt.Errorf("kty %q: want oct (HS256), RSA (RS256), EC (ES256) or OKP (EdDSA)", j.Kty)
	}
	return k, nil
}

// b64 decodes a base64url member of a JWK (unpadded, as RFC 7515 asks).
func b64(s, member string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("no %q", member)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not unpadded base64url", member)
	}
	return b, nil
}
