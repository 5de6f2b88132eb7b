package config

import (
	"time"
)

// Route maps matching requests to a service through a balancer.
type Route struct {
	// Name identifies the route in logs, metrics and the admin API; unique,
	// made of letters, digits, '.', '_' and '-'. Required.
	Name string `mapstructure:"name"`
	// Priority orders routes: higher is tried first. Among equal priorities
	// the more specific route wins (longer path prefix, then a host), then
	// the earlier one in the file. Default 0.
	Priority int `mapstructure:"priority"`
	// Match says which requests the route takes. An empty match takes
	// every request.
	Match Match `mapstructure:"match"`
	// StripPrefix removes match.path_prefix from the path before the
	// request is sent upstream ("/echo/a" → "/a", "/echo" → "/"). Default
	// false.
	StripPrefix bool `mapstructure:"strip_prefix"`
	// Service is the name of the service requests go to (case-insensitive).
	// Required.
	Service string `mapstructure:"service"`
	// Balancer is the algorithm that picks the endpoint: random,
	// round_robin, weighted_round_robin, consistent_hash or least_request.
	// Default "weighted_round_robin".
	Balancer string `mapstructure:"balancer"`
	// HashOn is the consistent-hash key, required with consistent_hash and
	// rejected with the others: "client_ip", "header:NAME", "cookie:NAME" or
	// "path". A request without the header or cookie hashes the empty
	// string. Default "".
	HashOn string `mapstructure:"hash_on"`
	// RequestHeaders edits the request headers sent upstream.
	RequestHeaders HeaderRules `mapstructure:"request_headers"`
	// Timeout bounds a whole proxied request, retries included, until the
	// response headers arrive. Default 30s; 0 means no limit.
	Timeout time.Duration `mapstructure:"timeout"`
	// IPAllow lists the CIDRs (or single addresses) of the clients
	// admitted; others are answered 403. The client address is the one
	// trusted_proxies yields. Default: empty (every client).
	IPAllow []string `mapstructure:"ip_allow"`
	// IPDeny lists the CIDRs (or single addresses) of clients answered
	// 403, checked after ip_allow. Default: empty.
	IPDeny []string `mapstructure:"ip_deny"`
	// CORS answers preflight requests at the gateway and adds the CORS
	// headers to actual responses. Default: none (requests pass as they
	// are).
	CORS *CORS `mapstructure:"cors"`
	// Auth requires a credential: exactly one of api_key, jwt and basic.
	// Default: none.
	Auth *Auth `mapstructure:"auth"`
	// RateLimit limits requests per key with a token bucket. Default: none.
	RateLimit *RateLimit `mapstructure:"rate_limit"`
	// Compress compresses responses the endpoint did not compress.
	// Default: none.
	Compress *Compress `mapstructure:"compress"`
	// ResponseHeaders edits the response headers sent to the client.
	ResponseHeaders HeaderRules `mapstructure:"response_headers"`
}

// CORS is a route's cross-origin resource sharing policy (the Fetch
// standard's CORS protocol).
type CORS struct {
	// AllowedOrigins are the origins allowed: "https://app.example"
	// exactly, "https://*.example.com" for any subdomain, or "*" for any
	// (not with allow_credentials). Required.
	AllowedOrigins []string `mapstructure:"allowed_origins"`
	// AllowedMethods are the methods a preflight allows. Default: GET,
	// HEAD, POST.
	AllowedMethods []string `mapstructure:"allowed_methods"`
	// AllowedHeaders are the request headers a preflight allows.
	// Default: none beyond the CORS-safelisted ones.
	AllowedHeaders []string `mapstructure:"allowed_headers"`
	// ExposedHeaders are response headers scripts may read. Default: none.
	ExposedHeaders []string `mapstructure:"exposed_headers"`
	// AllowCredentials lets requests carry cookies and credentials.
	// Default false.
	AllowCredentials bool `mapstructure:"allow_credentials"`
	// MaxAge is how long a browser may cache a preflight answer. Default
	// 0 (not sent: the browser's default, 5s).
	MaxAge time.Duration `mapstructure:"max_age"`
}

// Auth is a route's client authentication: exactly one kind is set. A
// request without a valid credential is answered 401 with a
// WWW-Authenticate challenge and no detail.
type Auth struct {
	// APIKey checks a key in a request header against a keys file.
	APIKey *APIKeyAuth `mapstructure:"api_key"`
	// JWT verifies a bearer token's signature and claims.
	JWT *JWTAuth `mapstructure:"jwt"`
	// Basic checks HTTP basic credentials against bcrypt hashes.
	Basic *BasicAuth `mapstructure:"basic"`
	// ForwardCredentials sends the credential upstream; otherwise it is
	// removed. Default false.
	ForwardCredentials bool `mapstructure:"forward_credentials"`
}

// APIKeyAuth checks API keys.
type APIKeyAuth struct {
	// Header carries the key. Default "X-API-Key".
	Header string `mapstructure:"header"`
	// KeysFile holds the valid keys, one per line; blank lines and lines
	// starting with '#' are ignored. Watched and reloaded. Required.
	KeysFile string `mapstructure:"keys_file"`
}

// JWTAuth verifies JSON Web Tokens sent as "Authorization: Bearer".
type JWTAuth struct {
	// JWKSFile is a JSON Web Key Set: the keys tokens are signed with
	// (HS256 "oct", RS256 "RSA", ES256 "EC" P-256, EdDSA "OKP" Ed25519).
	// A token's algorithm must be its key's. Watched and reloaded.
	// Required.
	JWKSFile string `mapstructure:"jwks_file"`
	// Issuer, when set, must equal the token's iss. Default "".
	Issuer string `mapstructure:"issuer"`
	// Audiences, when set, must include one of the token's aud. Default:
	// empty (not checked).
	Audiences []string `mapstructure:"audiences"`
	// ForwardClaims sends claims upstream as headers: claim name → header
	// name (sub: X-User-ID). Default: none.
	ForwardClaims map[string]string `mapstructure:"forward_claims"`
}

// BasicAuth checks HTTP basic authentication.
type BasicAuth struct {
	// UsersFile is an htpasswd file of bcrypt entries ("user:$2y$...").
	// Watched and reloaded. Required.
	UsersFile string `mapstructure:"users_file"`
	// Realm is named in the challenge. Default "zkgate".
	Realm string `mapstructure:"realm"`
}

// Rate limit keys of RateLimit.Key.
const (
	RateKeyClientIP = "client_ip"
	RateKeyRoute    = "route"
)

// RateLimit is a token bucket per key.
type RateLimit struct {
	// Average is the sustained rate: requests per period. Required.
	Average float64 `mapstructure:"average"`
	// Burst is the bucket's size: requests admitted at once after a quiet
	// spell. Default: average (rounded up).
	Burst int `mapstructure:"burst"`
	// Period is the period of average. Default 1s.
	Period time.Duration `mapstructure:"period"`
	// Key says whose requests share a bucket: client_ip (the address
	// trusted_proxies yields), header:NAME (the header's value; requests
	// without it share one bucket), or route (one bucket). Default
	// "client_ip".
	Key string `mapstructure:"key"`
}

// Compress compresses responses (gzip or zstd, by Accept-Encoding).
type Compress struct {
	// Enabled turns compression on. Default false.
	Enabled bool `mapstructure:"enabled"`
	// MinBytes is the smallest body compressed, when its length is known.
	// Default 1024.
	MinBytes int64 `mapstructure:"min_bytes"`
	// Level is 1 (fastest) to 9 (smallest output): gzip's level; zstd
	// runs at the speed of its own level of that number (1–2 fastest,
	// 3–5 default, 6–9 better compression). Default 5.
	Level int `mapstructure:"level"`
}

// Match is the request predicate of a route. All given conditions must hold.
type Match struct {
	// Hosts are the Host header values accepted (case-insensitive, port
	// ignored); stored in lower case. Default: empty (any host).
	Hosts []string `mapstructure:"hosts"`
	// PathPrefix is the path prefix accepted, starting with "/". It matches
	// whole segments: "/echo" matches "/echo" and "/echo/x", not "/echoes".
	// Default "" (any path).
	PathPrefix string `mapstructure:"path_prefix"`
	// Path is the one path accepted, exactly, after cleaning ("/api/health"
	// matches "/api/health", not "/api/health/" or "/api/health/x").
	// Default "" (any path).
	Path string `mapstructure:"path"`
	// PathRegex is a regular expression (Go's RE2 syntax: linear time, no
	// backtracking) the cleaned path must match somewhere; anchor it with
	// ^ and $. Default "" (any path).
	PathRegex string `mapstructure:"path_regex"`
	// Query are query parameters that must be present with one value
	// equal to the given one (after decoding); an empty value only
	// requires the parameter. Default: none.
	Query map[string]string `mapstructure:"query"`
	// Methods are the HTTP methods accepted; stored in upper case.
	// Default: empty (any method).
	Methods []string `mapstructure:"methods"`
	// Headers are request headers that must be present with exactly these
	// values. Names are case-insensitive and stored in canonical form
	// (X-User-Id). Default: none.
	Headers map[string]string `mapstructure:"headers"`
}

// HeaderRules edits headers. Names are case-insensitive and stored in
// canonical form.
type HeaderRules struct {
	// Set replaces (or adds) these headers. Default: none.
	Set map[string]string `mapstructure:"set"`
	// Remove deletes these headers. Default: none.
	Remove []string `mapstructure:"remove"`
}
