// Package admin serves zkgate's admin listener: liveness and readiness
// probes, Prometheus metrics, a JSON API over routes, services and endpoints
// (with drain, undrain and reload actions) and a live status page.
//
// The server shows what a Source gives it: plain data structs, so that this
// package imports neither discovery nor healthcheck. The composition root
// implements Source over the running gateway.
//
// Endpoints:
//
//	GET  /livez                                         200 "ok" while the process runs
//	GET  /readyz                                        200 "ok", or 503 with the reason
//	GET  /metrics                                       Prometheus exposition of Options.Gatherer
//	GET  /api/state                                     everything below in one document
//	GET  /api/routes                                    []RouteInfo
//	GET  /api/services                                  []ServiceInfo
//	GET  /api/services/{name}                           ServiceInfo, 404 when unknown
//	GET  /api/zookeeper                                 ZooKeeperInfo
//	GET  /api/events                                    server-sent events, one State per interval
//	POST /api/services/{name}/endpoints/{addr}/drain    take an endpoint out of rotation
//	POST /api/services/{name}/endpoints/{addr}/undrain  put it back
//	POST /api/reload                                    re-read the configuration file
//	GET  /                                              the status page (HTML, CSS, JS embedded)
//
// Every API error, an unknown /api/ path (404) or method (405) included, has
// the JSON body {"error": "..."}.
//
// When Options.Token is set, every request except /livez, /readyz and the
// status page's static files needs "Authorization: Bearer <token>". The page
// itself holds no data: its script sends the token with every API call.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
)

// DefaultAddress is the admin listener's address when Options.Address is
// empty: loopback only.
const DefaultAddress = "127.0.0.1:9901"

// Options configures a Server.
type Options struct {
	// Address is the listen address of ListenAndServe. Default
	// DefaultAddress. Anything but a loopback address exposes the drain and
	// reload actions to the network: set Token then (a warning is logged
	// otherwise).
	Address string
	// Token, when not empty, is the bearer token every request needs except
	// /livez, /readyz and the status page's static files.
	Token string
	// Source provides the data and actions. Required.
	Source Source
	// Gatherer is served at /metrics. Nil: /metrics answers 404.
	Gatherer prometheus.Gatherer
	// Log receives warnings and one line per action (drain, undrain,
	// reload). Nil discards.
	Log logrus.FieldLogger
	// EventInterval is the period of /api/events. Default one second.
	EventInterval time.Duration
	// Now returns the current time, stamped on every State. Default
	// time.Now.
	Now func() time.Time
}

// Server is the admin HTTP server. Create it with New.
type Server struct {
	opts      Options
	log       logrus.FieldLogger
	tokenHash [sha256.Size]byte
	handler   http.Handler
	srv       *http.Server

	stopOnce sync.Once
	stop     chan struct{} // closed by Shutdown; ends event streams
}

// New returns a Server for opts. It panics when opts.Source is nil, a
// programming error.
func New(opts Options) *Server {
	if opts.Source == nil {
		panic("admin: New: Options.Source is nil")
	}
	if opts.Address == "" {
		opts.Address = DefaultAddress
	}
	if opts.EventInterval <= 0 {
		opts.EventInterval = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	s := &Server{
		opts:      opts,
		log:       log.WithField("component", "admin"),
		tokenHash: sha256.Sum256([]byte(opts.Token)),
		stop:      make(chan struct{}),
	}
	s.handler = s.authenticate(s.routes())
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: /api/events streams for as long as the client
		// stays.
	}
	return s
}

// Handler returns the server's HTTP handler, authentication included, for
// tests and for mounting elsewhere.
func (s *Server) Handler() http.Handler { return s.handler }

// ListenAndServe listens on Options.Address and serves until Shutdown.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.opts.Address)
	if err != nil {
		return fmt.Errorf("admin: listen on %s: %w", s.opts.Address, err)
	}
	return s.Serve(ln)
}

// Serve serves on ln until Shutdown, then returns nil; any other error ends
// it early. It logs a warning when ln is not a loopback address and no token
// is set.
func (s *Server) Serve(ln net.Listener) error {
	addr := ln.Addr().String()
	if s.opts.Token == "" && !isLoopback(addr) {
		s.log.WithField("address", addr).Warn("admin listener is not on a loopback address and admin.token is not set: anyone who can reach it can drain endpoints and reload the configuration")
	}
	s.log.WithField("address", addr).Info("admin listener started")
	err := s.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("admin: serve on %s: %w", addr, err)
}

// Shutdown ends event streams, then stops the server gracefully (see
// http.Server.Shutdown) within ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stop) })
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}

// isLoopback reports whether the listen address addr only accepts local
// connections. An empty or unspecified host listens everywhere.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// isPublic reports whether path is served without a token: the probes, which
// orchestrators call without credentials, and the status page's static files,
// which hold no data.
func isPublic(path string) bool {
	switch path {
	case "/livez", "/readyz", "/":
		return true
	}
	return strings.HasPrefix(path, "/ui/")
}

// authenticate wraps next with the bearer-token check when a token is set.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.opts.Token == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isPublic(r.URL.Path) || s.validToken(r.Header.Get("Authorization")) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="zkgate admin"`)
		writeError(w, http.StatusUnauthorized, "missing or invalid bearer token")
	})
}

// validToken reports whether the Authorization header value carries the
// configured token. Both sides are hashed first so that the constant-time
// comparison does not reveal the token's length either.
func (s *Server) validToken(header string) bool {
	const prefix = "Bearer "
	if len(header) < len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(header[len(prefix):])))
	return subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) == 1
}

// routes builds the request multiplexer.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", s.livez)
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.opts.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{
			ErrorLog:      promLogger{s.log},
			ErrorHandling: promhttp.ContinueOnError,
		}))
	}
	mux.HandleFunc("GET /api/state", s.getState)
	mux.HandleFunc("GET /api/routes", s.getRoutes)
	mux.HandleFunc("GET /api/services", s.getServices)
	mux.HandleFunc("GET /api/services/{name}", s.getService)
	mux.HandleFunc("GET /api/zookeeper", s.getZooKeeper)
	mux.HandleFunc("GET /api/events", s.events)
	mux.HandleFunc("POST /api/services/{name}/endpoints/{addr}/drain", s.drain)
	mux.HandleFunc("POST /api/services/{name}/endpoints/{addr}/undrain", s.undrain)
	mux.HandleFunc("POST /api/reload", s.reload)
	s.fleetRoutes(mux)
	// Every other /api/ request gets a JSON error, as the API's own do.
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) { apiFallback(mux, w, r) })
	mux.HandleFunc("GET /{$}", serveIndex)
	mux.Handle("GET /ui/", uiFiles())
	return mux
}

// apiFallback answers an /api/ request no API pattern took: 405 with Allow
// when the path exists for another method, 404 otherwise, each with the
// API's JSON error body.
func apiFallback(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if m == r.Method {
			continue
		}
		other := *r
		other.Method = m
		if _, pattern := mux.Handler(&other); pattern != "/api/" {
			w.Header().Set("Allow", m)
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path+" (allowed: "+m+")")
			return
		}
	}
	writeError(w, http.StatusNotFound, "no API at "+r.URL.Path+" (see GET /api/state)")
}

func (s *Server) livez(w http.ResponseWriter, _ *http.Request) {
	writeText(w, http.StatusOK, "ok")
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	ready, reason := s.opts.Source.Ready()
	if !ready {
		if reason == "" {
			reason = "not ready"
		}
		writeText(w, http.StatusServiceUnavailable, reason)
		return
	}
	writeText(w, http.StatusOK, "ok")
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	io.WriteString(w, body+"\n")
}

// promLogger adapts a logrus logger to promhttp's error log.
type promLogger struct{ log logrus.FieldLogger }

func (l promLogger) Println(v ...any) { l.log.Warn(append([]any{"metrics: "}, v...)...) }
