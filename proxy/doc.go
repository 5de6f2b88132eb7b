// Package proxy is zkgate's HTTP data plane: it matches each request to a
// route, picks an endpoint from the route's balancer, forwards the request
// with net/http/httputil.ReverseProxy, retries attempts that are safe to
// retry, maps failures to small JSON error responses and writes the access
// log.
//
// The pieces:
//
//   - Router is an immutable, precomputed table of routes (host, path prefix,
//     method and header predicates, ordered by priority). Reloading
//     configuration builds a new Router and swaps it into the Handler with
//     SetRouter; requests in flight finish on the old one.
//   - Upstream is one service as the proxy sees it: its shared Transport
//     (see NewTransport: bodiless requests are sent and answered on the
//     request's goroutine over a pooled keep-alive connection; the rest go
//     through a standard *http.Transport), Host header policy, body limit,
//     retry policy and passive health Reporter. Every route to a service
//     shares its Upstream.
//   - Handler is the http.Handler of the proxy listener. It normalises the
//     path, matches a route and hands the request to that route's
//     ReverseProxy, whose transport picks the endpoint and retries. Plain
//     body-less requests to a *Transport skip ReverseProxy (the direct
//     path, direct.go) with the same behaviour, the same retrying round trip
//     and the same error handler, and fewer allocations.
//   - AccessLog writes one JSON line per request from a background goroutine
//     and never blocks a request.
//
// Security properties (each has a named test): the outbound URL's scheme and
// host always come from the picked endpoint, never from the request
// (absolute-form targets are routed by our routes only); CONNECT is refused;
// the path is cleaned before matching and prefix stripping, so dot segments
// and doubled slashes cannot reach around a route; X-Forwarded-For,
// X-Forwarded-Host, X-Forwarded-Proto and X-Real-IP are trusted from the
// client only when the direct peer is in Options.TrustedProxies; hop-by-hop
// headers, including those named by Connection, are not forwarded; clients
// never see internal error text.
//
// The package knows nothing of ZooKeeper or configuration files: the wiring
// layer builds Routes and Upstreams from configuration and attaches each
// route's balancer to its service's health-checked LoadBalanceConf.
package proxy
