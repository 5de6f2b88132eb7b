package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// DefaultLeeway is the clock skew allowed on exp and nbf when
// JWTConfig.Leeway is zero.
const DefaultLeeway = 30 * time.Second

// DefaultJWTCacheSize is the number of verified tokens cached when
// JWTConfig.CacheSize is zero.
const DefaultJWTCacheSize = 10000

// MaxTokenSize bounds the token Verify reads: longer ones are refused before
// any decoding.
const MaxTokenSize = 8 << 10

// JWTConfig configures a JWT check.
type JWTConfig struct {
	// JWKSFile is the JSON Web Key Set the tokens are verified with.
	JWKSFile string
	// Issuer, when set, must equal the token's "iss".
	Issuer string
	// Audiences, when set, must hold one of the token's "aud" values.
	Audiences []string
	// Leeway is the clock skew allowed on exp and nbf; zero means
	// DefaultLeeway, negative none.
	Leeway time.Duration
	// CacheSize bounds the verified tokens cached; zero means
	// DefaultJWTCacheSize, negative disables the cache.
	CacheSize int
	// Logger receives reloads (done and refused); nil discards them.
	Logger logrus.FieldLogger
}

// JWT verifies JSON Web Tokens (compact JWS) against a JWKS file. See the
// package doc for how the algorithm is chosen.
type JWT struct {
	reloader
	cfg   JWTConfig
	state atomic.Pointer[jwtState]
}

type jwtState struct {
	keys  *keySet
	cache *cache[*cachedToken] // nil when disabled
}

// cachedToken is a verified token's claims and the times between which it
// stays valid, leeway applied.
type cachedToken struct {
	claims         *Claims
	notBefore, exp int64 // Unix seconds, leeway applied; notBefore 0 for none
}

// NewJWT reads the JWKS file. Its error names the file and the key at fault
// (keys[1] (kid "a")), never key material.
func NewJWT(cfg JWTConfig) (*JWT, error) {
	switch {
	case cfg.Leeway == 0:
		cfg.Leeway = DefaultLeeway
	case cfg.Leeway < 0:
		cfg.Leeway = 0
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultJWTCacheSize
	}
	log := cfg.Logger
	if log == nil {
		log = buildOptions(nil).log
	}
	j := &JWT{cfg: cfg}
	j.reloader = reloader{what: "JWKS", files: []string{cfg.JWKSFile}, load: j.load,
		log: log.WithField("component", "auth").WithField("file", cfg.JWKSFile)}
	if err := j.load(); err != nil {
		return nil, err
	}
	return j, nil
}

// load reads the JWKS and publishes it with an empty cache: tokens verified
// with a removed key are not accepted from the cache.
func (j *JWT) load() error {
	data, err := readFile(j.cfg.JWKSFile)
	if err != nil {
		return err
	}
	keys, err := parseJWKS(data)
	if err != nil {
		return &FileError{Path: j.cfg.JWKSFile, Err: err}
	}
	st := &jwtState{keys: keys}
	if j.cfg.CacheSize > 0 {
		st.cache = newCache[*cachedToken](j.cfg.CacheSize)
	}
	j.state.Store(st)
	return nil
}

// Verify checks a compact JWS token at time now: its signature with the key
// its kid names (or the only key of its algorithm), the header's alg equal
// to that key's, exp (required) and nbf with the leeway, iss and aud when
// configured. A failure is a *Failure (errors.Is ErrUnauthorized). The
// returned Claims are shared: do not modify them.
//
// A verified token is cached by its bytes until it expires; a hit allocates
// nothing.
func (j *JWT) Verify(token []byte, now time.Time) (*Claims, error) {
	st := j.state.Load()
	unix := now.Unix()
	if st.cache != nil {
		if c, ok := st.cache.get(token); ok {
			switch {
			case unix >= c.exp:
				st.cache.remove(token)
				return nil, errExpired
			case unix < c.notBefore:
				return nil, errNotYetValid
			}
			return c.claims, nil
		}
	}
	c, err := j.verify(st.keys, token, unix)
	if err != nil {
		return nil, err
	}
	if st.cache != nil {
		st.cache.put(token, c)
	}
	return c.claims, nil
}

// header is the part of a JOSE header Verify reads.
type header struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
}

func (j *JWT) verify(keys *keySet, token []byte, now int64) (*cachedToken, error) {
	if len(token) > MaxTokenSize {
		return nil, errTooLong
	}
	h64, rest, ok := bytes.Cut(token, []byte("."))
	if !ok {
		return nil, errMalformed
	}
	p64, s64, ok := bytes.Cut(rest, []byte("."))
	if !ok || bytes.IndexByte(s64, '.') >= 0 || len(h64) == 0 || len(p64) == 0 || len(s64) == 0 {
		return nil, errMalformed
	}
	var h header
	if err := decodeJSON(h64, &h); err != nil {
		return nil, errHeader
	}
	if h.Crit != nil {
		return nil, errCrit
	}
	var k *key
	if h.Kid != "" {
		if k = keys.byKID[h.Kid]; k == nil {
			return nil, errUnknownKID
		}
	} else if ks := keys.byAlg[h.Alg]; len(ks) == 1 {
		k = ks[0]
	} else {
		return nil, errNoKey
	}
	// The algorithm is the key's; the header may only agree with it.
	if h.Alg != k.alg {
		return nil, errAlg
	}
	sig, err := base64.RawURLEncoding.DecodeString(string(s64))
	if err != nil {
		return nil, errMalformed
	}
	if !k.verify(token[:len(h64)+1+len(p64)], sig) {
		return nil, errSignature
	}
	return j.checkClaims(p64, now)
}

// verify checks sig over signed with the key's one algorithm.
func (k *key) verify(signed, sig []byte) bool {
	switch k.alg {
	case algHS256:
		m := hmac.New(sha256.New, k.hmac)
		m.Write(signed)
		return hmac.Equal(m.Sum(nil), sig)
	case algRS256:
		d := sha256.Sum256(signed)
		return rsa.VerifyPKCS1v15(k.rsa, crypto.SHA256, d[:], sig) == nil
	case algES256:
		// JWS carries R || S, 32 bytes each (RFC 7518 section 3.4), not DER.
		if len(sig) != 64 {
			return false
		}
		d := sha256.Sum256(signed)
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k.ecdsa, d[:], r, s)
	case algEdDSA:
		return ed25519.Verify(k.ed25519, signed, sig)
	}
	return false
}

// checkClaims decodes the payload and checks exp, nbf, iss and aud.
func (j *JWT) checkClaims(p64 []byte, now int64) (*cachedToken, error) {
	var m map[string]any
	if err := decodeJSON(p64, &m); err != nil || m == nil {
		return nil, errPayload
	}
	leeway := int64(j.cfg.Leeway / time.Second)
	exp, ok := numericDate(m["exp"])
	if !ok {
		return nil, errNoExp
	}
	c := &cachedToken{claims: &Claims{m: m}, exp: satAdd(exp, leeway)}
	if now >= c.exp {
		return nil, errExpired
	}
	if v, present := m["nbf"]; present {
		nbf, ok := numericDate(v)
		if !ok {
			return nil, errClaimType
		}
		c.notBefore = satAdd(nbf, -leeway)
		if now < c.notBefore {
			return nil, errNotYetValid
		}
	}
	if j.cfg.Issuer != "" {
		if iss, _ := m["iss"].(string); iss != j.cfg.Issuer {
			return nil, errIssuer
		}
	}
	if len(j.cfg.Audiences) > 0 && !audienceOK(m["aud"], j.cfg.Audiences) {
		return nil, errAudience
	}
	return c, nil
}

// audienceOK: aud is a string or an array of strings (RFC 7519 section
// 4.1.3) and one of them is wanted.
func audienceOK(aud any, want []string) bool {
	has := func(s string) bool {
		for _, w := range want {
			if s == w {
				return true
			}
		}
		return false
	}
	switch a := aud.(type) {
	case string:
		return has(a)
	case []any:
		for _, v := range a {
			if s, ok := v.(string); ok && has(s) {
				return true
			}
		}
	}
	return false
}

// numericDate reads a NumericDate (seconds since the epoch, possibly
// fractional, RFC 7519 section 2), truncated to whole seconds.
func numericDate(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f > math.MaxInt64/2 || f < math.MinInt64/2 {
		return 0, false
	}
	return int64(f), true
}

// satAdd adds without overflowing.
func satAdd(a, b int64) int64 {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		if b > 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return s
}

// decodeJSON decodes one base64url (unpadded) JSON object, numbers kept as
// json.Number; trailing data is an error.
func decodeJSON(b64 []byte, v any) error {
	raw := make([]byte, base64.RawURLEncoding.DecodedLen(len(b64)))
	n, err := base64.RawURLEncoding.Decode(raw, b64)
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(raw[:n]))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	return nil
}

// Claims are a verified token's claims.
type Claims struct{ m map[string]any }

// String returns the claim name as a string, for forwarding upstream (sub
// as X-User-ID): a JSON string as is, a number or boolean in its JSON
// form; anything else (object, array, null) or a missing claim is false.
func (c *Claims) String(name string) (string, bool) {
	switch v := c.m[name].(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}
