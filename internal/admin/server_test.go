package admin

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

const testToken = "s3cret-token"

func newTestServer(t *testing.T, src Source, opts Options) *Server {
	t.Helper()
	opts.Source = src
	if opts.Log == nil {
		log, _ := logtest.NewNullLogger()
		opts.Log = log
	}
	return New(opts)
}

// do sends one request to h and returns the recorded answer.
func do(h http.Handler, method, target, auth string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestLivez(t *testing.T) {
	s := newTestServer(t, newFakeSource(), Options{})
	rec := do(s.Handler(), "GET", "/livez", "")
	if rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
		t.Fatalf("GET /livez = %d %q, want 200 \"ok\\n\"", rec.Code, rec.Body.String())
	}
}

func TestReadyz(t *testing.T) {
	src := newFakeSource()
	s := newTestServer(t, src, Options{})

	rec := do(s.Handler(), "GET", "/readyz", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("ready: GET /readyz = %d, want 200", rec.Code)
	}

	src.update(func(f *fakeSource) {
		f.ready, f.reason = false, "waiting for the first ZooKeeper sync of service users"
	})
	rec = do(s.Handler(), "GET", "/readyz", "")
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("not ready: GET /readyz = %d, want 503", rec.Code)
	}
	if !strings.Contains(rec.Body.String(), "first ZooKeeper sync of service users") {
		t.Errorf("not ready: body %q does not give the reason", rec.Body.String())
	}

	src.update(func(f *fakeSource) { f.ready, f.reason = false, "" })
	rec = do(s.Handler(), "GET", "/readyz", "")
	if rec.Code != http.StatusServiceUnavailable || strings.TrimSpace(rec.Body.String()) == "" {
		t.Errorf("not ready without reason: GET /readyz = %d %q, want 503 with a body", rec.Code, rec.Body.String())
	}
}

func TestAuthentication(t *testing.T) {
	src := newFakeSource()
	s := newTestServer(t, src, Options{Token: testToken, Gatherer: fakeGatherer(t)})
	h := s.Handler()
	good := "Bearer " + testToken
	tests := []struct {
		name   string
		method string
		path   string
		auth   string
		want   int
	}{
		{"livez is public", "GET", "/livez", "", 200},
		{"readyz is public", "GET", "/readyz", "", 200},
		{"status page is public", "GET", "/", "", 200},
		{"page script is public", "GET", "/ui/app.js", "", 200},
		{"api without token", "GET", "/api/services", "", 401},
		{"api with wrong token", "GET", "/api/services", "Bearer nope", 401},
		{"api with token prefix only", "GET", "/api/services", "Bearer " + testToken[:4], 401},
		{"api with basic auth", "GET", "/api/services", "Basic " + testToken, 401},
		{"api with bare token", "GET", "/api/services", testToken, 401},
		{"api with token", "GET", "/api/services", good, 200},
		{"scheme is case-insensitive", "GET", "/api/routes", "bearer " + testToken, 200},
		{"metrics without token", "GET", "/metrics", "", 401},
		{"metrics with token", "GET", "/metrics", good, 200},
		{"events without token", "GET", "/api/events", "", 401},
		{"drain without token", "POST", "/api/services/echo/endpoints/127.0.0.1:9001/drain", "", 401},
		{"reload without token", "POST", "/api/reload", "", 401},
		{"reload with wrong token", "POST", "/api/reload", "Bearer x" + testToken, 401},
		{"unknown path without token", "GET", "/nope", "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(h, tt.method, tt.path, tt.auth)
			if rec.Code != tt.want {
				t.Fatalf("%s %s (Authorization %q) = %d, want %d", tt.method, tt.path, tt.auth, rec.Code, tt.want)
			}
			if tt.want == 401 {
				if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got)
				}
				var body errorBody
				decode(t, rec, &body)
				if body.Error == "" {
					t.Errorf("401 body has no error message")
				}
			}
		})
	}
	if len(src.actions) != 0 || src.reloads != 0 {
		t.Errorf("unauthenticated requests reached the source: actions %v, reloads %d", src.actions, src.reloads)
	}
}

func TestNoTokenMeansNoAuthentication(t *testing.T) {
	s := newTestServer(t, newFakeSource(), Options{})
	if rec := do(s.Handler(), "GET", "/api/services", ""); rec.Code != http.StatusOK {
		t.Fatalf("GET /api/services without a configured token = %d, want 200", rec.Code)
	}
}

func TestValidTokenNeedsExactMatch(t *testing.T) {
	s := newTestServer(t, newFakeSource(), Options{Token: testToken})
	for _, header := range []string{"", "Bearer", "Bearer ", "Bearer " + testToken + "x", "Bearer " + strings.ToUpper(testToken), "Token " + testToken} {
		if s.validToken(header) {
			t.Errorf("validToken(%q) = true, want false", header)
		}
	}
	for _, header := range []string{"Bearer " + testToken, "BEARER " + testToken, "Bearer  " + testToken + " "} {
		if !s.validToken(header) {
			t.Errorf("validToken(%q) = false, want true", header)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	src := newFakeSource()
	s := newTestServer(t, src, Options{})
	tests := []struct{ method, path, allow string }{
		{"GET", "/api/services/echo/endpoints/127.0.0.1:9001/drain", "POST"},
		{"PUT", "/api/services/echo/endpoints/127.0.0.1:9001/undrain", "POST"},
		{"GET", "/api/reload", "POST"},
		{"DELETE", "/api/reload", "POST"},
		{"POST", "/api/routes", "GET"},
		{"POST", "/api/services/echo", "GET"},
		{"POST", "/livez", "GET"},
	}
	for _, tt := range tests {
		rec := do(s.Handler(), tt.method, tt.path, "")
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s = %d, want 405", tt.method, tt.path, rec.Code)
			continue
		}
		if got := rec.Header().Get("Allow"); !strings.Contains(got, tt.allow) {
			t.Errorf("%s %s: Allow = %q, want it to contain %s", tt.method, tt.path, got, tt.allow)
		}
	}
	if len(src.actions) != 0 || src.reloads != 0 {
		t.Errorf("wrong-method requests reached the source: actions %v, reloads %d", src.actions, src.reloads)
	}
}

func TestUnknownPath(t *testing.T) {
	s := newTestServer(t, newFakeSource(), Options{})
	for _, path := range []string{"/api/nope", "/index.html", "/ui/", "/ui/missing.js"} {
		if rec := do(s.Handler(), "GET", path, ""); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, rec.Code)
		}
	}
}

func TestMetricsEndpoint(t *testing.T) {
	s := newTestServer(t, newFakeSource(), Options{Gatherer: fakeGatherer(t)})
	rec := do(s.Handler(), "GET", "/metrics", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d, want 200", rec.Code)
	}
	if !strings.Contains(rec.Body.String(), "zkgate_test_total 3") {
		t.Errorf("GET /metrics does not show the gatherer's series:\n%s", rec.Body.String())
	}

	s = newTestServer(t, newFakeSource(), Options{})
	if rec := do(s.Handler(), "GET", "/metrics", ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET /metrics without a Gatherer = %d, want 404", rec.Code)
	}
}

func TestStatusPage(t *testing.T) {
	s := newTestServer(t, newFakeSource(), Options{})
	rec := do(s.Handler(), "GET", "/", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET / = %d, want 200", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("GET /: Content-Type = %q, want text/html", ct)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("GET /: Content-Security-Policy = %q, want a restrictive policy", csp)
	}
	if rp := rec.Header().Get("Referrer-Policy"); rp != "no-referrer" {
		t.Errorf("GET /: Referrer-Policy = %q, want no-referrer (the URL may hold ?token=)", rp)
	}
	body := rec.Body.String()
	for _, want := range []string{`src="ui/app.js"`, `href="ui/style.css"`, `id="services"`, `id="zk-state"`} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /: page lacks %s", want)
		}
	}
	for _, external := range []string{"http://", "https://"} {
		for _, line := range strings.Split(body, "\n") {
			if strings.Contains(line, external) && !strings.Contains(line, "www.w3.org") {
				t.Errorf("GET /: page references an external resource: %s", strings.TrimSpace(line))
			}
		}
	}
	for path, ct := range map[string]string{"/ui/app.js": "javascript", "/ui/style.css": "text/css", "/ui/favicon.svg": "image/svg+xml"} {
		rec := do(s.Handler(), "GET", path, "")
		if rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Content-Type"), ct) {
			t.Errorf("GET %s = %d %q, want 200 %s", path, rec.Code, rec.Header().Get("Content-Type"), ct)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	tests := map[string]bool{
		"127.0.0.1:9901": true,
		"127.0.0.2:9901": true,
		"[::1]:9901":     true,
		"localhost:9901": true,
		":9901":          false,
		"0.0.0.0:9901":   false,
		"[::]:9901":      false,
		"10.1.2.3:9901":  false,
		"admin.internal": false,
	}
	for addr, want := range tests {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestServeWarnsOnExposedListenerWithoutToken(t *testing.T) {
	tests := []struct {
		name  string
		addr  string
		token string
		warn  bool
	}{
		{"all interfaces, no token", "0.0.0.0:9901", "", true},
		{"all interfaces, token", "0.0.0.0:9901", testToken, false},
		{"loopback, no token", "127.0.0.1:9901", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, hook := logtest.NewNullLogger()
			s := newTestServer(t, newFakeSource(), Options{Token: tt.token, Log: log})
			ln := newIdleListener(tt.addr)
			done := make(chan error, 1)
			go func() { done <- s.Serve(ln) }()
			waitUntil(t, func() bool { return len(hook.AllEntries()) > 0 }, "Serve to log its start")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if err := <-done; err != nil {
				t.Fatalf("Serve after Shutdown = %v, want nil", err)
			}
			warned := false
			for _, e := range hook.AllEntries() {
				if e.Level == logrus.WarnLevel && strings.Contains(e.Message, "not on a loopback address") {
					warned = true
				}
			}
			if warned != tt.warn {
				t.Errorf("warned = %v, want %v (entries %v)", warned, tt.warn, hook.AllEntries())
			}
		})
	}
}

func TestServeAndShutdown(t *testing.T) {
	s := newTestServer(t, newFakeSource(), Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/livez")
	if err != nil {
		t.Fatalf("GET /livez: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /livez = %d, want 200", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after Shutdown = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return within 5s of Shutdown")
	}
}

func TestListenAndServeReportsBadAddress(t *testing.T) {
	s := newTestServer(t, newFakeSource(), Options{Address: "127.0.0.1:notaport"})
	err := s.ListenAndServe()
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:notaport") {
		t.Fatalf("ListenAndServe on a bad address = %v, want an error naming the address", err)
	}
}

func TestNewDefaults(t *testing.T) {
	s := New(Options{Source: newFakeSource()})
	if s.opts.Address != DefaultAddress {
		t.Errorf("default Address = %q, want %q", s.opts.Address, DefaultAddress)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("New without a Source did not panic")
		}
	}()
	New(Options{})
}

// idleListener is a net.Listener with a chosen address that accepts nothing
// until closed.
type idleListener struct {
	addr   net.Addr
	once   sync.Once
	closed chan struct{}
}

func newIdleListener(addr string) *idleListener {
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		panic(err)
	}
	return &idleListener{addr: tcp, closed: make(chan struct{})}
}

func (l *idleListener) Accept() (net.Conn, error) {
	<-l.closed
	return nil, net.ErrClosed
}

func (l *idleListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *idleListener) Addr() net.Addr { return l.addr }

// waitUntil polls cond every 5ms for at most 5s.
func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 5s waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
