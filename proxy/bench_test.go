package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// discardWriter is a ResponseWriter that keeps nothing, so that the
// benchmark measures the proxy, not a recorder.
type discardWriter struct {
	h      http.Header
	status int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.status = code }

// benchHandler returns a Handler proxying /api to an in-process backend
// answering a small body, and the request to send it.
func benchHandler(b *testing.B, opts Options) (*Handler, *http.Request) {
	body := []byte(`{"ok":true,"msg":"hello from the backend"}`)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(body)
	}))
	b.Cleanup(be.Close)
	up := &Upstream{Name: "svc", Transport: NewTransport(TransportConfig{}), PassHostHeader: true}
	b.Cleanup(up.Transport.(*Transport).CloseIdleConnections)
	route := testRoute(b, "api", "round_robin", up, be.Listener.Addr().String())
	route.PathPrefix = "/api"
	route.StripPrefix = true
	rt, err := NewRouter(append(benchRouter(b).Routes(), route))
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "http://example.com/api/items/42?x=1", nil)
	req.RemoteAddr = "192.0.2.10:40000"
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "*/*")
	return NewHandler(rt, opts), req
}

func serveOnce(b *testing.B, h *Handler, req *http.Request, w *discardWriter) {
	clear(w.h)
	w.status = 0
	h.ServeHTTP(w, req)
	if w.status != 200 {
		b.Fatalf("status %d", w.status)
	}
}

// BenchmarkHandler measures one proxied GET through the whole Handler:
// route match among 41 routes, pick, rewrite, a keep-alive round trip to a
// loopback backend and the copy of a small body.
func BenchmarkHandler(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		h, req := benchHandler(b, Options{})
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			serveOnce(b, h, req, w)
		}
	})
	b.Run("serial-accesslog", func(b *testing.B) {
		log := NewAccessLog(io.Discard, AccessLogOptions{})
		defer log.Close()
		h, req := benchHandler(b, Options{AccessLog: log})
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			serveOnce(b, h, req, w)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		h, req := benchHandler(b, Options{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			w := &discardWriter{h: http.Header{}}
			for pb.Next() {
				serveOnce(b, h, req, w)
			}
		})
	})
}

// rawBackend is a loopback endpoint answering every request head on a
// connection with the same fixed response, allocating nothing per request,
// so that a benchmark's allocations are the proxy's.
func rawBackend(b *testing.B, response string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	resp := []byte(response)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					// A head ends with an empty line; a body of
					// Content-Length bytes follows.
					clen, chunked := 0, false
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) == 2 {
							break
						}
						if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
							for _, d := range bytes.TrimSpace(v) {
								clen = clen*10 + int(d-'0')
							}
						}
						chunked = chunked || string(line) == "Transfer-Encoding: chunked\r\n"
					}
					if _, err := br.Discard(clen); err != nil {
						return
					}
					// A chunked body (whose data holds no line "0")
					// ends with the line "0" and an empty line.
					for last := false; chunked; {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if last && len(line) == 2 {
							break
						}
						last = last || string(line) == "0\r\n"
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkServer measures one proxied GET through a Server over loopback
// connections (client → Server → backend, all in this process), with the
// fast path and with every connection on net/http. The client and backend
// allocate nothing per request, so allocs/op is the proxy's.
func BenchmarkServer(b *testing.B) {
	const response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 42\r\n\r\n" +
		`{"ok":true,"msg":"hello from the backend"}`
	const request = "GET /api/items/42?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
	const post = "POST /api/items HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n" +
		`{"name":"widget","qty":12}` + "\n"
	post16k := "PUT /api/items/42 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nContent-Type: application/octet-stream\r\nContent-Length: 16384\r\n\r\n" +
		strings.Repeat("x", 16384)
	const postChunked = "POST /api/items HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"10\r\n{\"name\":\"widget\"\r\nb\r\n,\"qty\":12}\n\r\n0\r\n\r\n"
	var runWith func(b *testing.B, cfg ServerConfig, opts Options, request string, pol *Policies)
	run := func(b *testing.B, cfg ServerConfig, opts Options, request string) {
		runWith(b, cfg, opts, request, nil)
	}
	runWith = func(b *testing.B, cfg ServerConfig, opts Options, request string, pol *Policies) {
		addr := rawBackend(b, response)
		up := &Upstream{Name: "svc", Transport: NewTransport(TransportConfig{ResponseHeaderTimeout: 15 * time.Second}), PassHostHeader: true}
		b.Cleanup(up.Transport.(*Transport).CloseIdleConnections)
		// Retries with zkgate's default budget, so that each request pays
		// its deposit (the attempt loop's only cost when nothing fails);
		// no retry condition beyond connection failures, so that request
		// bodies are not buffered for replays.
		budget, err := NewRetryBudget(RetryBudgetConfig{Percent: 20, MinPerSecond: 10, Window: 10 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		up.Retry = RetryPolicy{Attempts: 2, Budget: budget}
		route := testRoute(b, "api", "round_robin", up, addr)
		route.PathPrefix = "/api"
		route.StripPrefix = true
		route.Policies = pol
		rt, err := NewRouter(append(benchRouter(b).Routes(), route))
		if err != nil {
			b.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		cfg.ReadHeaderTimeout, cfg.IdleTimeout = 10*time.Second, 90*time.Second
		s := NewServer(NewHandler(rt, opts), cfg)
		go func() { _ = s.Serve(ln) }()
		b.Cleanup(func() { _ = s.Close() })
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		br := bufio.NewReaderSize(c, 4096)
		req := []byte(request)
		// An HTTP/1.0 request closes its connection: each iteration then
		// dials a new one (whose allocations count too).
		reconnect := strings.Contains(request, " HTTP/1.0\r\n")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Write(req); err != nil {
				b.Fatal(err)
			}
			if err := readFixedResponse(br); err != nil {
				b.Fatal(err)
			}
			if reconnect {
				c.Close()
				if c, err = net.Dial("tcp", ln.Addr().String()); err != nil {
					b.Fatal(err)
				}
				br.Reset(c)
			}
		}
	}
	http10 := strings.Replace(request, "HTTP/1.1", "HTTP/1.0", 1)
	b.Run("fast", func(b *testing.B) { run(b, ServerConfig{}, Options{}, request) })
	b.Run("fast-accesslog", func(b *testing.B) {
		log := NewAccessLog(io.Discard, AccessLogOptions{})
		b.Cleanup(func() { log.Close() })
		run(b, ServerConfig{}, Options{AccessLog: log}, request)
	})
	b.Run("fast-escaped", func(b *testing.B) {
		run(b, ServerConfig{}, Options{}, "GET /api/items/caf%C3%A9%20au%20lait?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	})
	b.Run("fast-post", func(b *testing.B) { run(b, ServerConfig{}, Options{}, post) })
	b.Run("fast-post-16k", func(b *testing.B) { run(b, ServerConfig{}, Options{}, post16k) })
	b.Run("fast-post-chunked", func(b *testing.B) { run(b, ServerConfig{}, Options{}, postChunked) })
	b.Run("fast-http10", func(b *testing.B) { run(b, ServerConfig{}, Options{}, http10) })
	// A route with CORS, a JWT (a hot token: cached) forwarding a claim,
	// and a rate limit per client, as issue 20 measures it.
	pol, token := benchPolicies(b)
	polRequest := "GET /api/items/42?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n" +
		"Origin: https://app.example\r\nAuthorization: Bearer " + token + "\r\n\r\n"
	b.Run("fast-policies", func(b *testing.B) { runWith(b, ServerConfig{}, Options{}, polRequest, pol) })
	b.Run("nethttp-policies", func(b *testing.B) { runWith(b, ServerConfig{DisableFastPath: true}, Options{}, polRequest, pol) })
	b.Run("nethttp", func(b *testing.B) { run(b, ServerConfig{DisableFastPath: true}, Options{}, request) })
	b.Run("nethttp-http10", func(b *testing.B) { run(b, ServerConfig{DisableFastPath: true}, Options{}, http10) })
	b.Run("nethttp-post", func(b *testing.B) { run(b, ServerConfig{DisableFastPath: true}, Options{}, post) })
	b.Run("nethttp-post-16k", func(b *testing.B) { run(b, ServerConfig{DisableFastPath: true}, Options{}, post16k) })
	b.Run("nethttp-post-chunked", func(b *testing.B) { run(b, ServerConfig{DisableFastPath: true}, Options{}, postChunked) })
}

// readFixedResponse reads one response with a Content-Length body from br
// without allocating, and checks its status.
func readFixedResponse(br *bufio.Reader) error {
	n := -1
	first := true
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if first {
			if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) && !bytes.HasPrefix(line, []byte("HTTP/1.0 200 ")) {
				return fmt.Errorf("status line %q", line)
			}
			first = false
			continue
		}
		if len(line) == 2 {
			break
		}
		if len(line) > 16 && bytes.EqualFold(line[:15], []byte("Content-Length:")) {
			n = 0
			for _, ch := range bytes.TrimSpace(line[15:]) {
				n = n*10 + int(ch-'0')
			}
		}
	}
	if n < 0 {
		return errors.New("no Content-Length")
	}
	_, err := br.Discard(n)
	return err
}
