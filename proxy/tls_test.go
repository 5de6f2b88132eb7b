package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/testpki"
)

// tlsFrontend serves h over TLS with a certificate for 127.0.0.1 and
// localhost issued by a CA made for the test; it returns the frontend and
// the client configuration that trusts it.
func tlsFrontend(t *testing.T, h *Handler, cfg ServerConfig, nextProtos ...string) (*frontend, *tls.Config) {
	t.Helper()
	ca := testpki.NewCA(t, "zkgate test CA")
	leaf := ca.Issue(t, testpki.Options{}, "localhost", "127.0.0.1")
	cfg.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, NextProtos: nextProtos, MinVersion: tls.VersionTLS12}
	fe := startFrontend(t, h, cfg)
	fe.URL = strings.Replace(fe.URL, "http://", "https://", 1)
	return fe, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
}

// protoClient returns a client speaking only the given protocols.
func protoClient(t *testing.T, tc *tls.Config, set func(*http.Protocols)) *http.Client {
	t.Helper()
	p := new(http.Protocols)
	set(p)
	tr := &http.Transport{TLSClientConfig: tc, Protocols: p, ForceAttemptHTTP2: p.HTTP2()}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func getWith(t *testing.T, c *http.Client, url string) (*http.Response, []byte) {
	t.Helper()
	res, err := c.Get(url)
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

// A TLS entry point answers HTTP/1.1 and, chosen by ALPN, HTTP/2, over TLS
// 1.2 and 1.3, routes as the plain one does, and tells the backend the
// client came over https.
func TestTLSEntryPointServesHTTP1AndHTTP2(t *testing.T) {
	b := newBackend(t, "b1", nil)
	_, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), b.addr()))
	fe, tc := tlsFrontend(t, h, ServerConfig{}, "h2", "http/1.1")
	for _, tt := range []struct {
		name      string
		version   uint16
		set       func(*http.Protocols)
		wantProto string
	}{
		{"HTTP/1.1 over TLS 1.2", tls.VersionTLS12, func(p *http.Protocols) { p.SetHTTP1(true) }, "HTTP/1.1"},
		{"HTTP/1.1 over TLS 1.3", tls.VersionTLS13, func(p *http.Protocols) { p.SetHTTP1(true) }, "HTTP/1.1"},
		{"HTTP/2 over TLS 1.2", tls.VersionTLS12, func(p *http.Protocols) { p.SetHTTP2(true) }, "HTTP/2.0"},
		{"HTTP/2 over TLS 1.3", tls.VersionTLS13, func(p *http.Protocols) { p.SetHTTP2(true) }, "HTTP/2.0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := tc.Clone()
			c.MinVersion, c.MaxVersion = tt.version, tt.version
			client := protoClient(t, c, tt.set)
			for i := range 3 { // one connection, several requests
				res, body := getWith(t, client, fe.URL+"/x?n=1")
				if res.StatusCode != http.StatusOK || res.Proto != tt.wantProto {
					t.Fatalf("request %d: %s %s, want 200 %s", i, res.Proto, res.Status, tt.wantProto)
				}
				if res.TLS == nil || res.TLS.Version != tt.version {
					t.Fatalf("request %d: TLS state %+v, want version %x", i, res.TLS, tt.version)
				}
				e := decodeEcho(t, body)
				if e.Path != "/x" || e.Query != "n=1" || e.Header["X-Forwarded-Proto"][0] != "https" {
					t.Fatalf("request %d: the backend saw %+v", i, e)
				}
			}
		})
	}
}

// With http2 off, a TLS entry point does not offer h2: a client that asks
// for it gets HTTP/1.1.
func TestTLSEntryPointHTTP2Off(t *testing.T) {
	b := newBackend(t, "b1", nil)
	_, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), b.addr()))
	fe, tc := tlsFrontend(t, h, ServerConfig{HTTP2: HTTP2Off}, "http/1.1")
	client := protoClient(t, tc, func(p *http.Protocols) { p.SetHTTP1(true); p.SetHTTP2(true) })
	res, _ := getWith(t, client, fe.URL+"/")
	if res.StatusCode != http.StatusOK || res.ProtoMajor != 1 {
		t.Fatalf("%s %s, want 200 over HTTP/1.1", res.Proto, res.Status)
	}
}

// A plain entry point with h2c serves HTTP/2 with prior knowledge for a
// connection's life (streams on one connection), while HTTP/1.1 requests
// on the same port stay on the fast path (a keep-alive connection serving
// several requests). Without h2c, prior knowledge gets no HTTP/2.
func TestH2CEntryPoint(t *testing.T) {
	b := newBackend(t, "b1", nil)
	_, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), b.addr()))
	fe := startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C})
	h2c := protoClient(t, nil, func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) })
	for i := range 3 {
		res, body := getWith(t, h2c, fe.URL+"/a")
		if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 {
			t.Fatalf("h2c request %d: %s %s", i, res.Proto, res.Status)
		}
		if e := decodeEcho(t, body); e.Path != "/a" || e.Header["X-Forwarded-Proto"][0] != "http" {
			t.Fatalf("h2c request %d: the backend saw %+v", i, e)
		}
	}
	if n := fe.srv.ConnStats().NetHTTP; n != 1 {
		t.Errorf("net/http holds %d connections after three h2c requests, want the one", n)
	}

	c := dialServer(t, strings.TrimPrefix(fe.URL, "http://"))
	for range 3 {
		c.send(t, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
		if m := c.response(t, http.MethodGet); m.statusCode() != http.StatusOK || len(m.values("Connection")) != 0 {
			t.Fatalf("HTTP/1.1 on the h2c entry point: %q %q", m.start, m.values("Connection"))
		}
	}

	plain := startFrontend(t, h, ServerConfig{})
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p}
	defer tr.CloseIdleConnections()
	if res, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(plain.URL + "/a"); err == nil {
		res.Body.Close()
		if res.ProtoMajor == 2 {
			t.Fatalf("an entry point without h2c served HTTP/2 with prior knowledge")
		}
	}
}

// An entry point that redirects answers 308 to https on the TLS entry
// point's port, keeping host, path and query; ACME challenges are routed.
func TestRedirectToHTTPS(t *testing.T) {
	b := newBackend(t, "b1", nil)
	_, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), b.addr()))
	for _, tt := range []struct {
		port         int
		host, target string
		want         string
	}{
		{8443, "example.com:8080", "/a/b?x=1&y=%20", "https://example.com:8443/a/b?x=1&y=%20"},
		{443, "example.com", "/", "https://example.com/"},
		{443, "[::1]:8080", "/p", "https://[::1]/p"},
		{8443, "[::1]", "/p", "https://[::1]:8443/p"},
		// An absolute-form target's authority is the host (RFC 9112 §3.2.2).
		{443, "Example.COM", "http://other.example/abs?q", "https://other.example/abs?q"},
	} {
		fe := startFrontend(t, h, ServerConfig{RedirectPort: tt.port})
		res, _ := rawRequest(t, strings.TrimPrefix(fe.URL, "http://"), "GET "+tt.target+" HTTP/1.1\r\nHost: "+tt.host+"\r\n\r\n")
		if res.StatusCode != http.StatusPermanentRedirect || res.Header.Get("Location") != tt.want {
			t.Errorf("GET %s Host %s (port %d): %d Location %q, want 308 %q", tt.target, tt.host, tt.port, res.StatusCode, res.Header.Get("Location"), tt.want)
		}
	}
	fe := startFrontend(t, h, ServerConfig{RedirectPort: 8443})
	res, body := rawRequest(t, strings.TrimPrefix(fe.URL, "http://"), "GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: example.com\r\n\r\n")
	if res.StatusCode != http.StatusOK || decodeEcho(t, body).Path != "/.well-known/acme-challenge/tok" {
		t.Fatalf("ACME challenge: %d %s, want it proxied", res.StatusCode, body)
	}
	// Only a path that stays under the prefix once cleaned is a challenge:
	// dot segments cannot reach other routes over plain HTTP.
	for _, target := range []string{
		"/.well-known/acme-challenge/../../admin",
		"/.well-known/acme-challenge/%2e%2e/%2e%2e/admin",
		"/.well-known/acme-challenge",
		"/.well-known/acme-challengeX/tok",
	} {
		res, _ := rawRequest(t, strings.TrimPrefix(fe.URL, "http://"), "GET "+target+" HTTP/1.1\r\nHost: example.com\r\n\r\n")
		if res.StatusCode != http.StatusPermanentRedirect {
			t.Errorf("GET %s on a redirecting entry point: %d, want 308", target, res.StatusCode)
		}
	}
}

// Behind a trusted load balancer that terminates TLS, a request it says
// came over https is routed, not redirected (which would loop); an
// untrusted peer's X-Forwarded-Proto changes nothing.
func TestRedirectBehindTLSProxy(t *testing.T) {
	b := newBackend(t, "b1", nil)
	r := testRoute(t, "r", "round_robin", testUpstream(t, "svc"), b.addr())
	_, trusting := newFrontend(t, Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, r)
	fe := startFrontend(t, trusting, ServerConfig{RedirectPort: 8443})
	addr := strings.TrimPrefix(fe.URL, "http://")
	if res, _ := rawRequest(t, addr, "GET /a HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-Proto: https\r\n\r\n"); res.StatusCode != http.StatusOK {
		t.Fatalf("X-Forwarded-Proto https from a trusted proxy: %d, want it routed", res.StatusCode)
	}
	if res, _ := rawRequest(t, addr, "GET /a HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-Proto: http\r\n\r\n"); res.StatusCode != http.StatusPermanentRedirect {
		t.Fatalf("X-Forwarded-Proto http from a trusted proxy: %d, want 308", res.StatusCode)
	}
	_, untrusting := newFrontend(t, Options{}, r)
	fe2 := startFrontend(t, untrusting, ServerConfig{RedirectPort: 8443})
	if res, _ := rawRequest(t, strings.TrimPrefix(fe2.URL, "http://"), "GET /a HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-Proto: https\r\n\r\n"); res.StatusCode != http.StatusPermanentRedirect {
		t.Fatalf("X-Forwarded-Proto https from an untrusted peer: %d, want 308", res.StatusCode)
	}
}

// tlsBackend is an HTTPS endpoint with a certificate for 127.0.0.1 from a
// CA made for the test, speaking the given protocols.
func tlsBackend(t *testing.T, set func(*http.Protocols)) (addr string, ca *testpki.CA) {
	t.Helper()
	ca = testpki.NewCA(t, "backend CA")
	leaf := ca.Issue(t, testpki.Options{Key: testpki.RSA}, "backend.internal", "127.0.0.1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := new(http.Protocols)
	set(p)
	srv := &http.Server{Handler: protoEcho(), Protocols: p, TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), ca
}

// protoEcho answers with the protocol it was asked in and a trailer.
func protoEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Trailer", "X-Checksum")
		w.Header().Set("X-Proto", r.Proto)
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "proto="+r.Proto)
		w.Header().Set("X-Checksum", "ok")
	})
}

// Services are reached in the protocol they are configured with: h2c,
// HTTP/1.1 over TLS and h2 over TLS with the CA and server name given;
// trailers come through; an endpoint whose certificate the CA did not issue
// is a 502.
func TestUpstreamProtocols(t *testing.T) {
	h2cLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	h2cSrv := &http.Server{Handler: protoEcho(), Protocols: p}
	go func() { _ = h2cSrv.Serve(h2cLn) }()
	t.Cleanup(func() { _ = h2cSrv.Close() })
	h1Addr, h1CA := tlsBackend(t, func(p *http.Protocols) { p.SetHTTP1(true) })
	h2Addr, h2CA := tlsBackend(t, func(p *http.Protocols) { p.SetHTTP2(true) })

	for _, tt := range []struct {
		name      string
		cfg       TransportConfig
		addr      string
		wantProto string
	}{
		{"h2c", TransportConfig{Protocol: UpstreamH2C}, h2cLn.Addr().String(), "HTTP/2.0"},
		{"http1 over TLS", TransportConfig{TLS: &tls.Config{RootCAs: h1CA.Pool(), ServerName: "backend.internal"}}, h1Addr, "HTTP/1.1"},
		{"h2 over TLS", TransportConfig{Protocol: UpstreamH2, TLS: &tls.Config{RootCAs: h2CA.Pool()}}, h2Addr, "HTTP/2.0"},
		{"unknown CA", TransportConfig{Protocol: UpstreamH2, TLS: &tls.Config{RootCAs: h1CA.Pool()}}, h2Addr, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTransport(tt.cfg)
			t.Cleanup(tr.CloseIdleConnections)
			up := &Upstream{Name: "svc", Transport: tr, PassHostHeader: true}
			fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", up, tt.addr))
			for i := range 2 {
				res, body := get(t, fe.URL+"/x")
				if tt.wantProto == "" {
					if res.StatusCode != http.StatusBadGateway {
						t.Fatalf("%d %s, want 502", res.StatusCode, body)
					}
					return
				}
				if res.StatusCode != http.StatusOK || string(body) != "proto="+tt.wantProto {
					t.Fatalf("request %d: %d %q, want 200 proto=%s", i, res.StatusCode, body, tt.wantProto)
				}
				if res.Trailer.Get("X-Checksum") != "ok" {
					t.Fatalf("request %d: trailer %v, want X-Checksum: ok", i, res.Trailer)
				}
			}
		})
	}
}

// The h2c preface is recognised only as a connection's first bytes: after
// an HTTP/1.1 request on the fast path, it is an unknown request.
func TestH2CPrefaceOnlyFirst(t *testing.T) {
	b := newBackend(t, "b1", nil)
	_, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), b.addr()))
	fe := startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C})
	nc, err := net.DialTimeout("tcp", strings.TrimPrefix(fe.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	first, err := http.ReadResponse(br, nil)
	if err != nil || first.StatusCode != http.StatusOK {
		t.Fatalf("first answer %v %v", first, err)
	}
	_, _ = io.Copy(io.Discard, first.Body)
	second, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if second.StatusCode/100 != 4 && second.StatusCode/100 != 5 {
		t.Fatalf("a preface after a request was answered %d, want a refusal", second.StatusCode)
	}
}

// The HTTP/2 server announces the limits zkgate sets (RFC 9113 §6.5.2):
// at most 128 concurrent streams (nginx's; Go's default is 250), 16 KiB
// frames (Go's default is 1 MiB), a 4 KiB HPACK table and a
// header list bounded by MaxHeaderBytes. A regression here would hand
// clients Go's defaults silently.
func TestHTTP2ServerLimits(t *testing.T) {
	b := newBackend(t, "b1", nil)
	_, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), b.addr()))
	fe := startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C, MaxHeaderBytes: 8 << 10})
	nc, err := net.DialTimeout("tcp", strings.TrimPrefix(fe.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	// The preface, then an empty SETTINGS frame.
	if _, err := io.WriteString(nc, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"); err != nil {
		t.Fatal(err)
	}
	var hdr [9]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		t.Fatal(err)
	}
	n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
	if hdr[3] != 0x4 || hdr[4]&0x1 != 0 || n%6 != 0 {
		t.Fatalf("first frame type %d flags %d length %d, want the server's SETTINGS", hdr[3], hdr[4], n)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(nc, payload); err != nil {
		t.Fatal(err)
	}
	got := map[uint16]uint32{}
	for i := 0; i < n; i += 6 {
		id := uint16(payload[i])<<8 | uint16(payload[i+1])
		got[id] = uint32(payload[i+2])<<24 | uint32(payload[i+3])<<16 | uint32(payload[i+4])<<8 | uint32(payload[i+5])
	}
	const (
		headerTableSize      = 0x1
		maxConcurrentStreams = 0x3
		maxFrameSize         = 0x5
		maxHeaderListSize    = 0x6
	)
	if got[maxConcurrentStreams] != 128 {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want 128", got[maxConcurrentStreams])
	}
	if v, ok := got[maxFrameSize]; ok && v != 16<<10 {
		t.Errorf("SETTINGS_MAX_FRAME_SIZE %d, want 16384 (or absent: the protocol's default)", v)
	}
	if v, ok := got[headerTableSize]; ok && v != 4<<10 {
		t.Errorf("SETTINGS_HEADER_TABLE_SIZE %d, want 4096 (or absent: the protocol's default)", v)
	}
	if v := got[maxHeaderListSize]; v == 0 || v > 16<<10 {
		t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE %d, want about max_header_bytes (8 KiB)", v)
	}
}

// HTTP/1.1 inside TLS is served by the fast path on a kept-alive
// connection, and tells the endpoint https; a request the fast path hands
// to net/http over TLS (here to an h2c service) keeps its TLS state there.
func TestTLSHTTP1OnFastPath(t *testing.T) {
	b := newBackend(t, "b1", nil)
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	h2cSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto+" "+r.Header.Get("X-Forwarded-Proto"))
	}), Protocols: p}
	h2cLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = h2cSrv.Serve(h2cLn) }()
	t.Cleanup(func() { _ = h2cSrv.Close() })
	slow := testRoute(t, "grpcish", "round_robin", &Upstream{Name: "h2c", Transport: NewTransport(TransportConfig{Protocol: UpstreamH2C})}, h2cLn.Addr().String())
	slow.PathPrefix = "/h2c"
	_, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), b.addr()), slow)
	var fast atomic.Int64
	h.onFast = func(bool) { fast.Add(1) }
	fe, tc := tlsFrontend(t, h, ServerConfig{}, "h2", "http/1.1")
	client := protoClient(t, tc, func(p *http.Protocols) { p.SetHTTP1(true) })
	for i := range 3 {
		res, body := getWith(t, client, fe.URL+"/x")
		if res.StatusCode != 200 || decodeEcho(t, body).Header["X-Forwarded-Proto"][0] != "https" {
			t.Fatalf("request %d: %d %s", i, res.StatusCode, body)
		}
	}
	if n := fast.Load(); n != 3 {
		t.Fatalf("%d of 3 HTTP/1.1 requests over TLS on the fast path", n)
	}
	if st := fe.srv.ConnStats(); st.NetHTTP != 0 || st.Serving+st.Waiting+st.Parked != 1 {
		t.Fatalf("connections %+v, want one kept-alive fast connection", st)
	}
	// Handed over: net/http sees the TLS state (the endpoint hears the
	// protocol through the h2c service's echo).
	res, body := getWith(t, client, fe.URL+"/h2c/y")
	if res.StatusCode != 200 || string(body) != "HTTP/2.0 https" || fast.Load() != 3 {
		t.Fatalf("handed over: %d %q (fast %d)", res.StatusCode, body, fast.Load())
	}
}
