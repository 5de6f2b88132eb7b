package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/healthcheck"
	"github.com/zkgate/zkgate/internal/zktest"
)

// echoReply is what echoBackend answers: the request as it arrived.
type echoReply struct {
	Backend string              `json:"backend"`
	Method  string              `json:"method"`
	Host    string              `json:"host"`
	Path    string              `json:"path"`
	RawPath string              `json:"raw_path"`
	URI     string              `json:"uri"`
	Query   string              `json:"query"`
	Header  map[string][]string `json:"header"`
	Body    string              `json:"body"`
}

// backend is a test endpoint counting the requests it received.
type backend struct {
	*httptest.Server
	name string
	hits atomic.Int64
}

func (b *backend) addr() string { return strings.TrimPrefix(b.URL, "http://") }

// newBackend starts an endpoint serving h, or echoing requests when h is nil.
func newBackend(t *testing.T, name string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{name: name}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(echoReply{
				Backend: name, Method: r.Method, Host: r.Host, Path: r.URL.Path,
				RawPath: r.URL.RawPath, URI: r.RequestURI, Query: r.URL.RawQuery,
				Header: r.Header, Body: string(body),
			})
		}
	}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(b.Close)
	return b
}

// deadAddr returns a loopback address that refuses connections.
func deadAddr(t *testing.T) string { return zktest.RefusedAddr(t) }

// recorder is a Reporter remembering every report.
type recorder struct {
	mu      sync.Mutex
	reports []string // "addr outcome"
}

func (r *recorder) Report(addr string, o healthcheck.Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports = append(r.reports, addr+" "+o.String())
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reports...)
}

// testUpstream returns an upstream with its own transport.
func testUpstream(t *testing.T, name string) *Upstream {
	t.Helper()
	tr := NewTransport(TransportConfig{DialTimeout: 2 * time.Second})
	trackStdDials(tr)
	t.Cleanup(tr.CloseIdleConnections)
	return &Upstream{Name: name, Transport: tr, PassHostHeader: true}
}

// stdConns holds the open connections (connKey) that the standard
// transports of test upstreams (trackStdDials) dialed:
// requestLog.take waits until none of them is one a scripted backend
// closed without announcing it.
var stdConns sync.Map

// trackStdDials records in stdConns the connections tr's standard
// transport dials, until the transport closes them. net/http marks a
// connection broken before closing it, so once it is gone from stdConns
// no request is written on it.
func trackStdDials(tr *Transport) {
	dial := tr.std.DialContext
	tr.std.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc, ok := c.(*net.TCPConn)
		if !ok {
			return c, nil
		}
		sc := &stdConn{TCPConn: tc, key: connKey(c.LocalAddr(), c.RemoteAddr())}
		stdConns.Store(sc.key, sc)
		return sc, nil
	}
}

// stdConn is a connection trackStdDials records. It keeps the methods of
// *net.TCPConn (CloseWrite, ReadFrom...), which net/http and ReverseProxy
// look for.
type stdConn struct {
	*net.TCPConn
	key string
}

func (c *stdConn) Close() error {
	stdConns.CompareAndDelete(c.key, c)
	return c.TCPConn.Close()
}

// connKey names a TCP connection by its two ends, seen from the dialer:
// Linux may give connections to different peers the same local port.
func connKey(dialer, listener net.Addr) string {
	return dialer.String() + " " + listener.String()
}

// testRoute returns a route named name over addrs with the named balancer.
func testRoute(t testing.TB, name, algo string, up *Upstream, addrs ...string) *Route {
	t.Helper()
	b, err := balancer.New(algo)
	if err != nil {
		t.Fatal(err)
	}
	eps := make([]balancer.Endpoint, len(addrs))
	for i, a := range addrs {
		eps[i] = balancer.Endpoint{ID: a, Addr: a, Weight: 1}
	}
	balancer.NewStatic(eps...).Attach(b)
	return &Route{Name: name, Balancer: b, Upstream: up}
}

// frontend is a proxy listener under test.
type frontend struct {
	URL string // "http://127.0.0.1:port"
	srv *Server
}

// newFrontend starts the proxy serving routes on a Server with its fast
// path, as zkgate runs it.
func newFrontend(t *testing.T, opts Options, routes ...*Route) (*frontend, *Handler) {
	t.Helper()
	rt, err := NewRouter(routes)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(rt, opts)
	return startFrontend(t, h, ServerConfig{}), h
}

// startFrontend serves h on a Server with cfg on a loopback port until the
// test ends.
func startFrontend(t *testing.T, h *Handler, cfg ServerConfig) *frontend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP2Server == HTTP2ServerGo {
		cfg.HTTP2Server = h2ServerUnderTest
	}
	s := NewServer(h, cfg)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		_ = s.Close()
		if err := <-done; err != http.ErrServerClosed {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return &frontend{URL: "http://" + ln.Addr().String(), srv: s}
}

func newTestServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// do sends req with a fresh client and returns the response and its body.
func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

func decodeEcho(t *testing.T, body []byte) echoReply {
	t.Helper()
	var e echoReply
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("backend reply %q: %v", body, err)
	}
	return e
}

// rawRequest writes a raw HTTP/1.1 request to addr and returns the parsed
// response and its body. It lets tests send what http.Client would refuse
// or rewrite (absolute-form targets, dot segments, CONNECT).
func rawRequest(t *testing.T, addr, request string) (*http.Response, []byte) {
	t.Helper()
	return rawRequestMethod(t, addr, request, http.MethodGet)
}

// rawRequestMethod is rawRequest for a request whose method the response
// reader must know (HEAD: no body).
func rawRequestMethod(t *testing.T, addr, request, method string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

// errorBody is the JSON body of an error response.
type errorBody struct {
	Error   string `json:"error"`
	Route   string `json:"route"`
	Service string `json:"service"`
}

func decodeError(t *testing.T, res *http.Response, body []byte) errorBody {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q, want application/json", ct)
	}
	var e errorBody
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// openStream sends a GET on a fresh connection and returns the response as
// soon as its head arrives, for tests that read a streamed body piece by
// piece. The request, its connection and the body end at cleanup (bounded
// by a 10s deadline).
func openStream(t *testing.T, url string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

// dialAccepted listens on a loopback port, dials it with dial (on the
// test's goroutine) and returns what dial returned and the connection
// accepted, which is closed when the test ends.
func dialAccepted[T any](t *testing.T, dial func(addr string) T) (T, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		accepted <- c
	}()
	d := dial(ln.Addr().String())
	var c net.Conn
	select {
	case c = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted")
	}
	if c == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close() })
	return d, c
}

// tcpPair returns the two ends of a loopback TCP connection, closed when
// the test ends: the dialed one first, then the accepted one.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	a, b := dialAccepted(t, func(addr string) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	})
	return a.(*net.TCPConn), b.(*net.TCPConn)
}
