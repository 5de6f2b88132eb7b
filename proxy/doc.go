// Package proxy is zkgate's HTTP data plane: it matches each request to a
// route, picks an endpoint from the route's balancer, forwards the request,
// retries attempts that are safe to retry, maps failures to small JSON
// error responses and writes the access log. It knows nothing of ZooKeeper
// or configuration files: the wiring layer builds Routes and Upstreams and
// attaches each route's balancer to its service's health-checked
// membership.
//
// # A request's way through the package
//
//	client ──► Server (server.go) ── one goroutine per connection ──► fconn (clientconn.go)
//	              │                                                       │
//	              │  readHead + parseRequest (reqparse.go): the strict     │
//	              │  parser decides: refuse (400/413/414/431/501/505),    │
//	              │  serve here, or hand off                               │
//	              ▼                                                       ▼
//	   hand-off (handoff.go)                                    fast path (fastpath.go)
//	   net/http serves that one                                 Router.find (router.go)
//	   request, then closes                                     readBody (reqbody.go)
//	              │                                             buildOutbound (outbound.go)
//	              ▼                                                       │
//	   Handler.ServeHTTP (handler.go)                                     │
//	   Router.match, a forward:                                           │
//	   httputil.ReverseProxy with                                         │
//	   Rewrite (rewrite.go)                                               │
//	              │                                                       │
//	              └───────► entry.attempts (retry.go) ◄───────────────────┘
//	                  pick · try · classify · report · retry
//	              ┌──────────────┘               └───────────────┐
//	              ▼                                              ▼
//	   http.Transport (transport.go)                fconn.attempt (upstream.go) over
//	   net/http's own pool                          hostPool / upConn (pool.go),
//	              │                                 parse (respparse.go),
//	              ▼                                 relay (relay.go)
//	   ReverseProxy copies the answer                             │
//	              └──────────► finish: metrics, access log ◄──────┘
//
// A connection starts on the fast path. Its head is read into the
// connection's one input buffer (clientbuf.go) and parsed in place by
// parseRequest, whose rules are written as a table at the function: a head
// that breaks them is refused with a named status before any backend is
// contacted. A plain request (a method of the table, a clean origin-form
// target, no 100-continue, a body of up to 64 KiB, or a WebSocket
// handshake) is served by
// the fast path: the route is found over the parsed fields (a headerSource),
// the body read whole, the outbound head written as bytes from the route's
// headerPlan (edits.go), and the attempts made by entry.attempts, which the
// net/http side shares. The answer's head is parsed strictly (respparse.go:
// anything ambiguous is a 502) and relayed with its body; the connection
// then reads the next request — between requests it holds no buffer and,
// once quiet, no goroutine: it is parked in an epoll poller (idleconn.go,
// poller_linux.go). A 101 to a WebSocket handshake turns the two
// connections into a tunnel the poller relays (tunnel.go). Any other
// request is handed, with the bytes
// buffered after it, to a net/http server running the Handler, which
// serves it with a stock httputil.ReverseProxy over the service's
// http.Transport and closes the connection after it. With
// ServerConfig.DisableFastPath every request takes the net/http side: it
// is the reference the differential tests and fuzz targets compare the
// fast path with.
//
// HTTP/2 requests (TLS with ALPN h2, or h2c) are served by zkgate's own
// HTTP/2 server (h2server.go, h2stream.go), whose streams run the Handler.
// There a request takes one of two ways, chosen in Handler.ServeHTTP: a
// bodiless one on a route whose policies leave answers alone, not gRPC,
// to a plain HTTP/1.1 upstream goes by forward.direct (h2direct.go: the
// answer's head and body from the upstream connection straight into
// frames); every other one by forward.lean (lean.go: ReverseProxy's steps
// without its copies, bodies and gRPC calls included). Bodiless requests
// to plain HTTP/1.1 endpoints are sent over roundTripH1's pool and rules
// (roundtrip.go), the rest over the service's transport. ReverseProxy
// itself serves the HTTP/2 requests leanEligible leaves out: a query it
// would rewrite, and the differential tests' reference transport
// (TransportConfig.StdTransportOnly).
//
// # One decision per behaviour
//
//   - Which fields are hop-by-hop: hopByHop (fields.go), from which the fast
//     path's field tables are built; ReverseProxy applies the same list.
//   - Which routes the fast path may serve: fastRoute; which requests:
//     parseRequest. Which way an HTTP/2 request takes: leanEligible and
//     directEligible.
//   - The header edits of a route: headerPlan, compiled once.
//   - The attempts, retries and passive health reports: entry.attempts and
//     entry.retry; what a failure means: classify; its status and body:
//     writeFailure (errors.go).
//   - The hash key and the client address: hashSpec.key and clientIP, over
//     a headerSource.
//   - Whether a pooled upstream connection may be reused: hostPool.reusable.
//
// Security properties (each has a named test): the outbound URL's scheme and
// host always come from the picked endpoint, never from the request
// (absolute-form targets are routed by our routes only); CONNECT is refused;
// the path is cleaned before matching and prefix stripping, so dot segments
// and doubled slashes cannot reach around a route; X-Forwarded-For,
// X-Forwarded-Host, X-Forwarded-Proto and X-Real-IP are trusted from the
// client only when the direct peer is in Options.TrustedProxies; hop-by-hop
// headers, including those named by Connection, are not forwarded, and a
// route cannot set or remove them, the framing, Host or Expect; request
// smuggling and response splitting are refused by the strict parsers
// (desync_test.go); clients never see internal error text.
package proxy
