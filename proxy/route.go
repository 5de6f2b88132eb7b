package proxy

import (
	"net/http"
	"time"

	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/healthcheck"
)

// Upstream is one service as the proxy sees it. Every route to the service
// shares it, so that they share one connection pool and one passive health
// state. An Upstream must not be modified after it is given to NewRouter.
type Upstream struct {
	// Name is the service name, used in logs, error bodies and metrics.
	Name string
	// Transport performs the requests to the service's endpoints. Required;
	// build it with NewTransport and share it between routers across
	// reloads, so that keep-alive connections survive a reload.
	Transport http.RoundTripper
	// PassHostHeader forwards the client's Host header when true; when
	// false the Host header is the picked endpoint's "host:port".
	PassHostHeader bool
	// MaxBodyBytes limits the request body: a larger Content-Length is
	// answered 413 before anything is sent upstream, and a chunked body
	// that grows past the limit fails the request with 413. 0 means no
	// limit.
	MaxBodyBytes int64
	// Retry says which failed attempts are tried again on another
	// endpoint. The zero value never retries.
	Retry RetryPolicy
	// Reporter receives the outcome of every attempt (passive health
	// checks). Nil means none.
	Reporter Reporter
	// Attempts receives every attempt with its duration, for the admin
	// API's traffic figures. Nil means none (and no clock is read).
	Attempts AttemptObserver
}

// scheme is the URL scheme of requests to u's endpoints: https when its
// Transport speaks TLS.
func (u *Upstream) scheme() string {
	if t, ok := u.Transport.(*Transport); ok {
		return t.scheme()
	}
	return "http"
}

// RetryPolicy says when a failed attempt is tried again, always on an
// endpoint not tried yet for the request.
//
// An attempt that failed while connecting (connection refused, dial timeout,
// unreachable) sent nothing, so it is retried whatever the method. Any other
// failure is retried only for idempotent methods (GET, HEAD, OPTIONS, TRACE,
// PUT, DELETE; RFC 9110 section 9.2.2) and only when enabled below, because
// the endpoint may already have acted on the request.
type RetryPolicy struct {
	// Attempts is the total number of tries, the first one included. 0 and
	// 1 mean no retry.
	Attempts int
	// OnTimeout retries idempotent requests whose endpoint did not answer
	// in time (the transport's response header timeout).
	OnTimeout bool
	// OnBrokenConnection retries idempotent requests whose connection
	// broke after the request was sent and before a response arrived (the
	// endpoint was killed or crashed mid-request), like nginx's default
	// "proxy_next_upstream error".
	OnBrokenConnection bool
	// OnServerError retries idempotent requests answered with a 5xx status
	// or failed by a broken connection after the request was sent.
	OnServerError bool
	// BufferBodyBytes is how much of a request body is kept to replay it
	// on a retry after it was (partly) sent. A body larger than this is
	// not retried once any of it was sent. 0 keeps nothing: only requests
	// whose body was not read yet (connection failures) are retried.
	BufferBodyBytes int64
	// Budget caps the retries of the service at a share of its requests
	// (see RetryBudget); a retry it refuses is not made, and the request
	// ends with what its last attempt gave. Share one budget between the
	// routes to a service (they share its Upstream). Nil means retries are
	// limited by Attempts only.
	Budget *RetryBudget
}

// Reporter receives the outcome of each attempt to an endpoint, for passive
// health checking. *healthcheck.LoadBalanceCheckConf implements it. Report
// is called on the request path: it must be quick and must not block.
type Reporter interface {
	Report(addr string, o healthcheck.Outcome)
}

// AttemptObserver receives each attempt to an endpoint that has an outcome
// for Reporter. ObserveAttempt is called on the request path: it must be
// quick, must not block and should not allocate.
type AttemptObserver interface {
	ObserveAttempt(a Attempt)
}

// Attempt is one attempt to an endpoint, as an AttemptObserver receives it.
type Attempt struct {
	Addr    string
	Outcome healthcheck.Outcome // as the Reporter receives it
	// End is when the response head arrived or the attempt failed, and
	// Duration the time from sending the request to then: an observer
	// needs no clock reading of its own.
	End      time.Time
	Duration time.Duration
	// Retried is true when the request was then retried on another
	// endpoint.
	Retried bool
}

// Route sends the requests it matches to one service through its own
// balancer. A Route must not be modified after it is given to NewRouter.
type Route struct {
	// Name identifies the route in logs, metrics and error bodies.
	// Required and unique within a Router.
	Name string
	// Priority orders routes: higher is tried first. Among equal
	// priorities the longer path prefix wins, then a route with hosts over
	// one without, then the earlier route.
	Priority int
	// Hosts are the accepted Host header values, compared
	// case-insensitively with the port ignored: "example.com" exactly, or
	// "*.example.com" for any name ending in ".example.com" (not
	// "example.com" itself). Empty accepts every host.
	Hosts []string
	// PathPrefix is the accepted path prefix, matched on whole segments of
	// the cleaned path: "/api" matches "/api", "/api/" and "/api/x", not
	// "/apis". "" and "/" accept every path; a trailing slash is ignored.
	PathPrefix string
	// Path, when set, is the one cleaned path accepted, exactly.
	Path string
	// PathRegex, when set, is a regular expression (RE2) the cleaned path
	// must match.
	PathRegex string
	// Query are query parameters that must be present with one value
	// equal to the given one, compared after percent- and '+'-decoding; an
	// empty value only requires the parameter.
	Query map[string]string
	// Methods are the accepted methods (case-sensitive, as HTTP methods
	// are). Empty accepts every method except CONNECT, which the Handler
	// always refuses.
	Methods []string
	// Headers are request headers that must be present with one value
	// equal to the given one; an empty value only requires the header to
	// be present. Names are case-insensitive.
	Headers map[string]string
	// StripPrefix removes PathPrefix from the path sent upstream: "/api/x"
	// becomes "/x" and "/api" becomes "/". The query is kept.
	StripPrefix bool
	// HashOn is the key given to the balancer's Pick: "client_ip",
	// "header:NAME", "cookie:NAME" or "path" (the cleaned path). A missing
	// header or cookie gives the empty key. "" passes the empty key, which
	// is right for every algorithm but consistent_hash.
	HashOn string
	// SetHeaders are request headers set (replacing any value) before the
	// request is sent upstream.
	SetHeaders map[string]string
	// RemoveHeaders are request headers removed before the request is sent
	// upstream (applied before SetHeaders).
	RemoveHeaders []string
	// Timeout bounds a proxied request from its arrival until the
	// response headers arrive, retries included; the body is then streamed
	// without a limit (so streams and WebSockets outlive it). Expiry
	// answers 504. 0 means no limit besides the transport's timeouts.
	Timeout time.Duration
	// Service names the service in logs, metrics and error bodies.
	// Default: Upstream.Name.
	Service string
	// Balancer picks the endpoint of each attempt. The wiring attaches it
	// to the service's (health-checked) LoadBalanceConf. If it implements
	// balancer.Tracker, Done is called when each attempt has finished.
	// Required.
	Balancer balancer.Balancer
	// Upstream is the service the route sends to. Required.
	Upstream *Upstream
	// Policies admit or refuse requests and edit answers (policy.go). Nil:
	// none.
	Policies *Policies
}

// isReplayable reports whether r may be sent twice: its method is
// idempotent, or the client marked it with an Idempotency-Key header (IETF
// draft-ietf-httpapi-idempotency-key-header; X-Idempotency-Key is its older
// spelling), promising that the server deduplicates it. Go's own
// http.Transport applies the same rule to its retries.
func isReplayable(r *http.Request) bool {
	if isIdempotent(r.Method) {
		return true
	}
	return r.Header["Idempotency-Key"] != nil || r.Header["X-Idempotency-Key"] != nil
}

// isIdempotent reports whether method is idempotent (RFC 9110 section
// 9.2.2), so that a request may be sent twice.
func isIdempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}
