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
