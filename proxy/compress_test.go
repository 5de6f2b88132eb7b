package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func TestAcceptedEncoding(t *testing.T) {
	for _, c := range []struct {
		fields []string
		want   encoding
	}{
		{nil, encNone},
		{[]string{"gzip"}, encGzip},
		{[]string{"GZIP"}, encGzip},
		{[]string{"x-gzip"}, encGzip},
		{[]string{"zstd"}, encZstd},
		{[]string{"gzip, deflate, br, zstd"}, encZstd}, // a tie: zstd
		{[]string{"gzip;q=1.0, zstd;q=0.5"}, encGzip},
		{[]string{"gzip;q=0.2, zstd;q=0.5"}, encZstd},
		{[]string{"gzip", "zstd"}, encZstd}, // two fields are one list
		{[]string{"gzip;q=0"}, encNone},
		{[]string{"gzip;q=0.000"}, encNone},
		{[]string{"zstd;q=0, gzip"}, encGzip},
		{[]string{"*"}, encZstd},
		{[]string{"*;q=0.5, zstd;q=0"}, encGzip},
		{[]string{"identity"}, encNone},
		{[]string{"br, deflate"}, encNone},
		{[]string{"gzip;q=2"}, encNone},      // a weight above 1: refused
		{[]string{"gzip;q=0.5555"}, encNone}, // four decimals: refused
		{[]string{"gzip;q=abc"}, encNone},
		{[]string{"gzip ; Q=0.7"}, encGzip},
		{[]string{"gzip;level=1"}, encGzip}, // another parameter: q is 1
		{[]string{",,gzip,"}, encGzip},
		{[]string{"gzipx"}, encNone},
	} {
		h := http.Header{}
		for _, f := range c.fields {
			h.Add("Accept-Encoding", f)
		}
		if got := acceptedEncoding(headerMap(h)); got != c.want {
			t.Errorf("Accept-Encoding %q: got %q, want %q", c.fields, got.token(), c.want.token())
		}
	}
}

func TestCompressEligible(t *testing.T) {
	z := &compressPolicy{minBytes: 100, level: 5}
	json := answerFacts{ctype: "application/json", clen: 1000}
	with := func(f func(*answerFacts)) *answerFacts { a := json; f(&a); return &a }
	for _, c := range []struct {
		name   string
		method string
		status int
		facts  *answerFacts
		want   bool
	}{
		{"json", "GET", 200, &json, true},
		{"error page", "GET", 500, with(func(a *answerFacts) { a.ctype = "text/html; charset=utf-8" }), true},
		{"unknown length", "GET", 200, with(func(a *answerFacts) { a.clen = -1 }), true},
		{"HEAD", "HEAD", 200, &json, false},
		{"204", "GET", 204, &json, false},
		{"206", "GET", 206, &json, false},
		{"304", "GET", 304, &json, false},
		{"101", "GET", 101, &json, false},
		{"too small", "GET", 200, with(func(a *answerFacts) { a.clen = 99 }), false},
		{"threshold", "GET", 200, with(func(a *answerFacts) { a.clen = 100 }), true},
		{"empty", "GET", 200, with(func(a *answerFacts) { a.clen = 0 }), false},
		{"encoded", "GET", 200, with(func(a *answerFacts) { a.encoded = true }), false},
		{"no-transform", "GET", 200, with(func(a *answerFacts) { a.noTransform = true }), false},
		{"image", "GET", 200, with(func(a *answerFacts) { a.ctype = "image/png" }), false},
		{"svg", "GET", 200, with(func(a *answerFacts) { a.ctype = "image/svg+xml" }), true},
		{"problem+json", "GET", 200, with(func(a *answerFacts) { a.ctype = "application/problem+json" }), true},
		{"event stream", "GET", 200, with(func(a *answerFacts) { a.ctype = "text/event-stream" }), false},
		{"no type", "GET", 200, with(func(a *answerFacts) { a.ctype = "" }), false},
		{"gRPC", "POST", 200, with(func(a *answerFacts) { a.ctype = "application/grpc" }), false},
		{"octets", "GET", 200, with(func(a *answerFacts) { a.ctype = "application/octet-stream" }), false},
	} {
		if got := z.eligible(c.method, c.status, c.facts); got != c.want {
			t.Errorf("%s: eligible %v, want %v", c.name, got, c.want)
		}
	}
	for _, c := range []struct {
		name, value string
		check       func(answerFacts) bool
	}{
		{"Content-Encoding", "identity", func(f answerFacts) bool { return !f.encoded }},
		{"content-encoding", "br", func(f answerFacts) bool { return f.encoded }},
		{"Cache-Control", "public, No-Transform", func(f answerFacts) bool { return f.noTransform }},
		{"Vary", "Origin, accept-encoding", func(f answerFacts) bool { return f.varies }},
		{"Vary", "*", func(f answerFacts) bool { return f.varies }},
		{"Vary", "Accept-Encoding-X", func(f answerFacts) bool { return !f.varies }},
	} {
		var f answerFacts
		f.note([]byte(c.name), []byte(c.value))
		if !c.check(f) {
			t.Errorf("%s: %s gave %+v", c.name, c.value, f)
		}
	}
}

// compressBody is what the test backend answers: 64 KiB of JSON.
var compressBody = func() []byte {
	var b bytes.Buffer
	b.WriteString("[")
	for i := 0; b.Len() < 64<<10-64; i++ {
		fmt.Fprintf(&b, `{"id":%d,"name":"item %d","tags":["a","b"]},`, i, i)
	}
	b.WriteString(`{"id":-1}]`)
	return b.Bytes()
}()

// compressBackend answers by path: the JSON with a length, an ETag and
// Accept-Ranges; streamed in chunks with a trailer; and the answers that
// must not be compressed.
func compressBackend(t *testing.T) *backend {
	return newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		body := compressBody
		switch r.URL.Path {
		case "/json":
			h.Set("Etag", `"v1"`)
			h.Set("Accept-Ranges", "bytes")
		case "/chunked":
			h.Set("Trailer", "X-Sum")
			h.Set("Content-Type", "text/plain; charset=utf-8")
			for i := 0; i < len(body); i += 10000 {
				_, _ = w.Write(body[i:min(i+10000, len(body))])
				w.(http.Flusher).Flush()
			}
			h.Set("X-Sum", strconv.Itoa(len(body)))
			return
		case "/small":
			body = body[:100]
		case "/png":
			h.Set("Content-Type", "image/png")
		case "/encoded":
			h.Set("Content-Encoding", "br")
		case "/no-transform":
			h.Set("Cache-Control", "no-transform")
		case "/vary":
			h.Set("Vary", "Accept-Encoding")
		case "/identity":
			h.Set("Content-Encoding", "identity")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
}

// decode decodes body by the answer's Content-Encoding.
func decode(t *testing.T, res *http.Response, body []byte) []byte {
	t.Helper()
	var r io.Reader
	switch ce := res.Header.Get("Content-Encoding"); ce {
	case "":
		return body
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("zstd: %v", err)
		}
		defer zr.Close()
		r = zr
	default:
		return body // the endpoint's own coding
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s body does not decode: %v", res.Header.Get("Content-Encoding"), err)
	}
	return out
}

func TestCompressAnswers(t *testing.T) {
	b := compressBackend(t)
	r := testRoute(t, "api", "round_robin", testUpstream(t, "svc"), b.addr())
	r.Policies = &Policies{Compress: &CompressPolicy{MinBytes: 1024, Level: 5}}
	_, h := newFrontend(t, Options{}, r)
	for _, fast := range []bool{true, false} {
		addr := strings.TrimPrefix(startFrontend(t, h, ServerConfig{DisableFastPath: !fast}).URL, "http://")
		for _, c := range []struct {
			method, path, accept string
			proto                string // HTTP/1.1 unless set
			enc                  string // the Content-Encoding wanted
			vary                 bool   // one Vary: Accept-Encoding wanted
		}{
			{"GET", "/json", "gzip", "", "gzip", true},
			{"GET", "/json", "gzip, deflate, br, zstd", "", "zstd", true},
			{"GET", "/json", "", "", "", true},
			{"GET", "/json", "gzip;q=0", "", "", true},
			{"GET", "/json", "gzip", "HTTP/1.0", "gzip", true},
			{"GET", "/chunked", "gzip", "", "gzip", true},
			{"GET", "/chunked", "zstd", "HTTP/1.0", "zstd", true},
			{"HEAD", "/json", "gzip", "", "", false},
			{"GET", "/small", "gzip", "", "", false},
			{"GET", "/png", "gzip", "", "", false},
			{"GET", "/encoded", "gzip", "", "br", false},
			{"GET", "/no-transform", "gzip", "", "", false},
			{"GET", "/vary", "gzip", "", "gzip", true},
			{"GET", "/identity", "gzip", "", "gzip", true},
			{"GET", "/empty", "gzip", "", "", false},
		} {
			name := fmt.Sprintf("fast=%v %s %s %s Accept-Encoding %q", fast, c.proto, c.method, c.path, c.accept)
			proto := c.proto
			if proto == "" {
				proto = "HTTP/1.1"
			}
			req := c.method + " " + c.path + " " + proto + "\r\nHost: api.example\r\nConnection: close\r\n"
			if c.accept != "" {
				req += "Accept-Encoding: " + c.accept + "\r\n"
			}
			res, body := rawRequestMethod(t, addr, req+"\r\n", c.method)
			hdr := res.Header
			if got := hdr.Values("Content-Encoding"); len(got) > 1 || hdr.Get("Content-Encoding") != c.enc {
				t.Errorf("%s: Content-Encoding %q, want %q", name, got, c.enc)
				continue
			}
			if vary := hdr.Values("Vary"); c.vary != (len(vary) == 1 && vary[0] == "Accept-Encoding") {
				t.Errorf("%s: Vary %q", name, vary)
			}
			want := compressBody
			switch c.path {
			case "/small":
				want = compressBody[:100]
			case "/empty":
				want = nil
			}
			if c.method == "HEAD" {
				want = nil
				if hdr.Get("Content-Length") != strconv.Itoa(len(compressBody)) {
					t.Errorf("%s: Content-Length %q", name, hdr.Get("Content-Length"))
				}
			}
			if got := decode(t, res, body); !bytes.Equal(got, want) {
				t.Errorf("%s: the body decodes to %d bytes, want %d", name, len(got), len(want))
			}
			if c.enc == "gzip" || c.enc == "zstd" {
				if cl := hdr.Get("Content-Length"); cl != "" || res.ContentLength >= 0 && proto == "HTTP/1.1" {
					t.Errorf("%s: a compressed answer with a length (%q, %d)", name, cl, res.ContentLength)
				}
				if len(body) >= len(want)/4 {
					t.Errorf("%s: %d bytes compressed to %d", name, len(want), len(body))
				}
				if c.path == "/json" && (hdr.Get("Etag") != `W/"v1"` || hdr.Get("Accept-Ranges") != "") {
					t.Errorf("%s: ETag %q, Accept-Ranges %q", name, hdr.Get("Etag"), hdr.Get("Accept-Ranges"))
				}
				if c.path == "/chunked" && proto == "HTTP/1.1" && res.Trailer.Get("X-Sum") != strconv.Itoa(len(compressBody)) {
					t.Errorf("%s: trailer %v", name, res.Trailer)
				}
			}
			if c.path == "/json" && c.enc == "" && c.method == "GET" && (hdr.Get("Etag") != `"v1"` || hdr.Get("Content-Length") == "") {
				t.Errorf("%s: an uncompressed answer changed: %v", name, hdr)
			}
		}
	}
}

// A compressed stream is not held back: what the endpoint sent before it
// paused reaches the client, decodable, while the endpoint still waits.
func TestCompressStreams(t *testing.T) {
	release := make(chan struct{})
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "first part\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		_, _ = io.WriteString(w, "second part\n")
	})
	r := testRoute(t, "api", "round_robin", testUpstream(t, "svc"), b.addr())
	r.Policies = &Policies{Compress: &CompressPolicy{MinBytes: 1024, Level: 5}}
	_, h := newFrontend(t, Options{}, r)
	bothPaths(t, func(t *testing.T) {
		fe := startFrontend(t, h, ServerConfig{DisableFastPath: strings.HasSuffix(t.Name(), "/nethttp")})
		for _, enc := range []string{"gzip", "zstd"} {
			c, err := net.DialTimeout("tcp", strings.TrimPrefix(fe.URL, "http://"), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(c, "GET /s HTTP/1.1\r\nHost: h\r\nAccept-Encoding: "+enc+"\r\n\r\n")
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Header.Get("Content-Encoding") != enc {
				t.Fatalf("%s: Content-Encoding %q", enc, res.Header.Get("Content-Encoding"))
			}
			var zr io.Reader
			if enc == "gzip" {
				zr, err = gzip.NewReader(res.Body)
			} else {
				var d *zstd.Decoder
				d, err = zstd.NewReader(res.Body)
				zr = d
				defer d.Close()
			}
			if err != nil {
				t.Fatalf("%s: %v", enc, err)
			}
			line, err := bufio.NewReader(zr).ReadString('\n')
			if err != nil || line != "first part\n" {
				t.Fatalf("%s: before the endpoint went on, the client read %q, %v", enc, line, err)
			}
			release <- struct{}{}
			c.Close()
		}
	})
}

// BenchmarkCompress measures a 64 KiB JSON answer through a Server on the
// fast path and on net/http's side, compressed with gzip and zstd at level
// 5 and, for comparison, passed as it is (allocs/op are the proxy's: the
// client and the backend allocate nothing per request). The answer has a
// strong ETag, as most APIs' do, which a compressed answer makes weak.
func BenchmarkCompress(b *testing.B) {
	response := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nEtag: \"5d41402abc4b2a76b9719d911017c592\"\r\nContent-Length: %d\r\n\r\n%s", len(compressBody), compressBody)
	for _, c := range []struct{ name, accept string }{{"identity", ""}, {"gzip", "gzip"}, {"zstd", "zstd"}} {
		for _, fast := range []bool{true, false} {
			name := c.name + "-fast"
			if !fast {
				name = c.name + "-nethttp"
			}
			b.Run(name, func(b *testing.B) {
				up := &Upstream{Name: "svc", Transport: NewTransport(TransportConfig{ResponseHeaderTimeout: 15 * time.Second}), PassHostHeader: true}
				b.Cleanup(up.Transport.(*Transport).CloseIdleConnections)
				route := testRoute(b, "api", "round_robin", up, rawBackend(b, response))
				route.Policies = &Policies{Compress: &CompressPolicy{MinBytes: 1024, Level: 5}}
				rt, err := NewRouter([]*Route{route})
				if err != nil {
					b.Fatal(err)
				}
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				s := NewServer(NewHandler(rt, Options{}), ServerConfig{DisableFastPath: !fast, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 90 * time.Second})
				go func() { _ = s.Serve(ln) }()
				b.Cleanup(func() { _ = s.Close() })
				conn, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { conn.Close() })
				br := bufio.NewReaderSize(conn, 4096)
				req := "GET /data HTTP/1.1\r\nHost: example.com\r\n"
				if c.accept != "" {
					req += "Accept-Encoding: " + c.accept + "\r\n"
				}
				reqb := []byte(req + "\r\n")
				b.SetBytes(int64(len(compressBody)))
				b.ReportAllocs()
				var wire int64
				for b.Loop() {
					if _, err := conn.Write(reqb); err != nil {
						b.Fatal(err)
					}
					n, err := readAnyResponse(br)
					if err != nil {
						b.Fatal(err)
					}
					wire = n
				}
				b.ReportMetric(float64(wire), "body-bytes/op")
			})
		}
	}
}

// readAnyResponse reads one 200 response with a Content-Length or chunked
// body from br without allocating and returns the body's size on the wire
// (chunk framing not counted).
func readAnyResponse(br *bufio.Reader) (int64, error) {
	clen, chunked, first := int64(-1), false, true
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if first {
			if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
				return 0, fmt.Errorf("status line %q", line)
			}
			first = false
			continue
		}
		if len(line) == 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			clen = 0
			for _, d := range bytes.TrimSpace(v) {
				clen = clen*10 + int64(d-'0')
			}
		}
		chunked = chunked || bytes.EqualFold(line, []byte("Transfer-Encoding: chunked\r\n"))
	}
	if !chunked {
		_, err := br.Discard(int(clen))
		return clen, err
	}
	var total int64
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		size, ok := chunkSize(line)
		if !ok {
			return 0, fmt.Errorf("chunk size line %q", line)
		}
		if size == 0 {
			if _, err := br.Discard(2); err != nil { // no trailer
				return 0, err
			}
			return total, nil
		}
		if _, err := br.Discard(int(size) + 2); err != nil {
			return 0, err
		}
		total += size
	}
}

// Encoders are bounded (maxEncoderBytes): past the bound an answer goes out
// as the endpoint sent it, and every way an answer ends — whole, the
// client gone midway, the endpoint broken midway — gives its encoder back.
func TestCompressEncoderBound(t *testing.T) {
	// The encoders of answers earlier tests left streaming (their clients
	// gone) come back as their relays end: the bound counts them.
	waitFor(t, "the encoders of earlier tests to be given back", func() bool { return activeEncoders.Load() == 0 })
	defer func(n int64) { maxEncoderBytes = n }(maxEncoderBytes)
	maxEncoderBytes = encoderCost(encGzip, 1) // room for one
	hold := make(chan struct{})
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		switch r.URL.Path {
		case "/hold":
			_, _ = w.Write(compressBody[:2000])
			w.(http.Flusher).Flush()
			select {
			case <-hold:
			case <-time.After(10 * time.Second):
			}
		case "/broken":
			w.Header().Set("Content-Length", strconv.Itoa(len(compressBody)))
			_, _ = w.Write(compressBody[:5000])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // the endpoint breaks off midway
		default:
			_, _ = w.Write(compressBody)
		}
	})
	r := testRoute(t, "api", "round_robin", testUpstream(t, "svc"), b.addr())
	r.Policies = &Policies{Compress: &CompressPolicy{MinBytes: 1024, Level: 1}}
	_, h := newFrontend(t, Options{}, r)
	idle := func() bool { return activeEncoders.Load() == 0 }
	bothPaths(t, func(t *testing.T) {
		addr := pathFrontend(t, h)
		get := func(path string) *http.Response {
			res, _ := rawRequest(t, addr, "GET "+path+" HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
			return res
		}
		// One answer streams, holding the one encoder.
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, "GET /hold HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n")
		held, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || held.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("the held answer: %v %v", held, err)
		}
		if res := get("/x"); res.Header.Get("Content-Encoding") != "" || res.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("past the bound: Content-Encoding %q, Vary %q; want the answer as it is, with Vary", res.Header.Get("Content-Encoding"), res.Header.Get("Vary"))
		}
		// The client of the held answer goes away: its encoder comes back.
		c.Close()
		hold <- struct{}{}
		waitFor(t, "the encoder of an answer whose client left to be given back", idle)
		if res := get("/x"); res.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("under the bound again: Content-Encoding %q", res.Header.Get("Content-Encoding"))
		}
		waitFor(t, "the encoder of a whole answer to be given back", idle)
		c2, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		_ = c2.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c2, "GET /broken HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n")
		// net/http's side may send nothing at all (the head was still
		// in its buffer); either way the client must not see a whole one.
		if res, err := http.ReadResponse(bufio.NewReader(c2), nil); err == nil {
			if _, err := io.ReadAll(res.Body); err == nil {
				t.Error("an answer the endpoint broke off reached the client as a whole one")
			}
		}
		waitFor(t, "the encoder of a broken answer to be given back", idle)
	})
}

// A route may not remove or set a response's framing or hop-by-hop fields:
// without its Content-Length line a fast-path answer would have no framing
// on a kept connection, and the client would read the next answer as part
// of this one.
func TestRouteMayNotEditResponseFraming(t *testing.T) {
	for _, pol := range []*Policies{
		{RemoveResponseHeaders: []string{"content-length"}},
		{RemoveResponseHeaders: []string{"Transfer-Encoding"}},
		{SetResponseHeaders: map[string]string{"Connection": "keep-alive"}},
		{SetResponseHeaders: map[string]string{"content-length": "5"}},
	} {
		r := testRoute(t, "api", "round_robin", testUpstream(t, "svc"), "127.0.0.1:1")
		r.Policies = pol
		if _, err := NewRouter([]*Route{r}); err == nil || !strings.Contains(err.Error(), "proxy's to decide") {
			t.Errorf("%+v: NewRouter: %v, want a refusal", pol, err)
		}
	}
}

// A route may not set one response field under two spellings: names are
// case-insensitive, and which value to send would be a guess (the fast
// path sent both).
func TestRouteMayNotSetAFieldTwice(t *testing.T) {
	r := testRoute(t, "api", "round_robin", testUpstream(t, "svc"), "127.0.0.1:1")
	r.Policies = &Policies{SetResponseHeaders: map[string]string{"Date": "a", "date": "b", "X-One": "1"}}
	_, err := NewRouter([]*Route{r})
	if err == nil || !strings.Contains(err.Error(), `set response header "date": "Date" names the same field`) {
		t.Fatalf("NewRouter: %v, want a refusal naming both spellings", err)
	}
}
