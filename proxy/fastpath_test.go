package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A response head larger than the upstream connection's buffer is read by
// net/http's parser on the fast path and passed on whole, with its body,
// trailers and a reusable connection.
func TestFastPathLargeResponseHead(t *testing.T) {
	big := strings.Repeat("c", connReadBufferSize+1000)
	be := newBackend(t, "big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Big", big)
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "gone")
		if r.URL.Path == "/chunked" {
			w.Header().Set("Trailer", "X-Sum")
			_, _ = io.WriteString(w, "part one, ")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "part two")
			w.Header().Set("X-Sum", "42")
			return
		}
		w.Header().Set("Content-Length", "5")
		_, _ = io.WriteString(w, "hello")
	})
	var direct int
	fe, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	h.onDirect = func() { direct++ }

	c, err := net.DialTimeout("tcp", strings.TrimPrefix(fe.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for _, path := range []string{"/length", "/chunked", "/length"} {
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: example.com\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatalf("%s: body: %v", path, err)
		}
		if res.StatusCode != 200 || res.Header.Get("X-Big") != big {
			t.Errorf("%s: status %d, X-Big of %d bytes", path, res.StatusCode, len(res.Header.Get("X-Big")))
		}
		if res.Header.Get("X-Hop") != "" || res.Header.Get("Connection") != "" {
			t.Errorf("%s: hop-by-hop fields passed: %v", path, res.Header)
		}
		want := "hello"
		if path == "/chunked" {
			want = "part one, part two"
			if got := res.Trailer.Get("X-Sum"); got != "42" {
				t.Errorf("trailer X-Sum = %q, want 42", got)
			}
		}
		if string(body) != want {
			t.Errorf("%s: body %q, want %q", path, body, want)
		}
		if res.Header.Get("Date") == "" {
			t.Errorf("%s: no Date", path)
		}
	}
	if direct != 0 {
		t.Errorf("%d requests took the Handler's direct path, want the fast path", direct)
	}
}

// patterned returns n bytes that differ from one offset to the next, so
// that a body put together out of order does not compare equal.
func patterned(n, seed int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[(i/7+seed)%36]
	}
	return string(b)
}

// Bodies too large for the read buffer, up to maxBufferedBody, are read
// whole and served by the fast path, pipelined requests after them too; a
// larger body hands the connection to net/http, which streams it.
func TestFastPathBuffersLargerBodies(t *testing.T) {
	be := newBackend(t, "b", nil)
	fe, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	var fast, direct atomic.Int64
	h.onFast = func() { fast.Add(1) }
	h.onDirect = func() { direct.Add(1) }

	type step struct {
		method string
		body   string
	}
	steps := []step{
		{"POST", patterned(5000, 1)},
		{"PUT", patterned(maxBufferedBody, 2)},
		{"GET", ""},
		{"POST", patterned(20000, 3)},
		{"POST", patterned(clientBufferSize, 4)},
		{"POST", patterned(maxBufferedBody+1, 5)}, // net/http's from here
		{"GET", ""},
	}
	var raw strings.Builder
	for i, s := range steps {
		fmt.Fprintf(&raw, "%s /r%d HTTP/1.1\r\nHost: example.com\r\n", s.method, i)
		if s.body != "" {
			fmt.Fprintf(&raw, "Content-Length: %d\r\n", len(s.body))
		}
		raw.WriteString("\r\n" + s.body)
	}
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(fe.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	wrote := make(chan error, 1)
	go func() { _, err := io.WriteString(c, raw.String()); wrote <- err }()
	br := bufio.NewReader(c)
	for i, s := range steps {
		res, err := http.ReadResponse(br, &http.Request{Method: s.method})
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("request %d: status %d, %v: %.200s", i, res.StatusCode, err, body)
		}
		e := decodeEcho(t, body)
		if e.Method != s.method || e.Path != fmt.Sprintf("/r%d", i) || e.Body != s.body {
			t.Errorf("request %d: the backend got %s %s with a body of %d bytes, want %s /r%d with %d bytes (equal: %v)",
				i, e.Method, e.Path, len(e.Body), s.method, i, len(s.body), e.Body == s.body)
		}
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	// The last GET takes the Handler's direct path; the POST before it
	// ReverseProxy's, which streams its body.
	if f, d := fast.Load(), direct.Load(); f != 5 || d != 1 {
		t.Errorf("fast path served %d requests and the Handler's direct path %d, want 5 and 1", f, d)
	}
}

// A large or chunked body that does not come whole within the body
// deadline hands the connection to net/http with the bytes read so far,
// and net/http finishes the request when the rest comes.
func TestFastPathSlowLargeBodyGoesToNetHTTP(t *testing.T) {
	body := patterned(10000, 7)
	t.Run("length", func(t *testing.T) {
		head := fmt.Sprintf("POST /slow HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n\r\n", len(body))
		testSlowBody(t, head+body[:6000], body[6000:], body)
	})
	t.Run("chunked", func(t *testing.T) {
		raw := "POST /slow HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body, 3000)
		testSlowBody(t, raw[:7000], raw[7000:], body)
	})
}

func testSlowBody(t *testing.T, first, rest, body string) {
	be := newBackend(t, "b", nil)
	rt, err := NewRouter([]*Route{testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr())})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(rt, Options{})
	var fast atomic.Int64
	h.onFast = func() { fast.Add(1) }
	fe := startFrontend(t, h, ServerConfig{ReadHeaderTimeout: 100 * time.Millisecond})

	c, err := net.DialTimeout("tcp", strings.TrimPrefix(fe.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, first); err != nil {
		t.Fatal(err)
	}
	// The fast path sends nothing before it has the whole body; net/http
	// streams it, so the backend sees the request before the rest is sent.
	waitFor(t, "net/http to take the request", func() bool { return be.hits.Load() == 1 })
	if _, err := io.WriteString(c, rest); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "POST"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("status %d, %v: %.200s", res.StatusCode, err, got)
	}
	if e := decodeEcho(t, got); e.Body != body {
		t.Errorf("the backend got a body of %d bytes, not the one sent (%d bytes)", len(e.Body), len(body))
	}
	if f := fast.Load(); f != 0 {
		t.Errorf("the fast path served %d requests, want 0", f)
	}
}

// A client that closes its side in the middle of a large or chunked body
// is answered as net/http answers a body cut short (400), whichever path
// reads it.
func TestFastPathLargeBodyCutShort(t *testing.T) {
	for _, head := range []string{
		"POST /cut HTTP/1.1\r\nHost: example.com\r\nContent-Length: 9000\r\n\r\n" + patterned(6000, 0),
		"POST /cut HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n1770\r\n" + patterned(5000, 0),
	} {
		testBodyCutShort(t, head)
	}
}

func testBodyCutShort(t *testing.T, raw string) {
	if a := sameAnswers(t, raw); !strings.HasPrefix(a, "400 ") {
		t.Errorf("answer to a body cut short (%.80q): %q, want 400", raw, a)
	}
}

// A malformed chunked body goes to net/http, which answers it. (What the
// backend gets of it, if anything, depends on when net/http's transport
// meets the error: the differential suite, which compares that, leaves
// such bodies out.)
func TestFastPathMalformedChunkedBodies(t *testing.T) {
	for _, body := range []string{
		"zz\r\nhello\r\n0\r\n\r\n", // bad size
		"2\r\nhiX0\r\n\r\n",        // no CRLF after the data
		"2\nhi\r\n0\r\n\r\n",       // a bare LF
	} {
		raw := "POST /x HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n" + body
		if a := sameAnswers(t, raw); !strings.HasPrefix(a, "400 ") {
			t.Errorf("answer to %q: %q, want 400", body, a)
		}
	}
}

// sameAnswers sends raw, then closes its side, to a Server with the fast
// path and to one without, and returns the answer (status and body) after
// checking that both answered the same.
func sameAnswers(t *testing.T, raw string) string {
	t.Helper()
	be := newBackend(t, "b", nil)
	rt, err := NewRouter([]*Route{testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr())})
	if err != nil {
		t.Fatal(err)
	}
	var answers [2]string
	for i, disable := range []bool{false, true} {
		fe := startFrontend(t, NewHandler(rt, Options{}), ServerConfig{DisableFastPath: disable})
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(fe.URL, "http://"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		_ = c.(*net.TCPConn).CloseWrite()
		res, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "POST"})
		if err != nil {
			t.Fatalf("fast path off: %v: %v", disable, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		answers[i] = fmt.Sprintf("%d %s", res.StatusCode, body)
	}
	if answers[0] != answers[1] {
		t.Errorf("answers to %.80q: fast path %q, net/http %q; want the same", raw, answers[0], answers[1])
	}
	return answers[0]
}

// A request no route matches is answered 404 on the fast path, body and
// all, and the connection stays there for the next request.
func TestFastPathServesNoRoute(t *testing.T) {
	be := newBackend(t, "b", nil)
	route := testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr())
	route.PathPrefix = "/api"
	fe, h := newFrontend(t, Options{}, route)
	var fast, direct atomic.Int64
	h.onFast = func() { fast.Add(1) }
	h.onDirect = func() { direct.Add(1) }
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(fe.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	raw := "GET /favicon.ico HTTP/1.1\r\nHost: example.com\r\n\r\n" +
		"POST /nowhere HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello" +
		"GET /api/x HTTP/1.1\r\nHost: example.com\r\n\r\n"
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i, want := range []int{404, 404, 200} {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			t.Fatalf("answer %d: status %d, want %d: %s", i, res.StatusCode, want, body)
		}
		if want == 404 {
			if e := decodeError(t, res, body); e.Error != "no route" {
				t.Errorf("answer %d: error %q, want no route", i, e.Error)
			}
		}
	}
	if f, d := fast.Load(), direct.Load(); f != 1 || d != 0 {
		t.Errorf("after two 404s the fast path served %d requests and net/http's direct path %d, want 1 and 0", f, d)
	}
}

// FuzzScanChunked checks that a chunked body scanChunked accepts is one
// net/http reads the same: the same decoded bytes, ending where it says.
func FuzzScanChunked(f *testing.F) {
	for _, s := range []string{
		"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", "0\r\n\r\n", "5;a=b\r\nhello\r\n0;c\r\n\r\n",
		"A\r\n0123456789\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "2\r\nhi\r\n0\r\nX: 1\r\n\r\n", "zz\r\n", "2\nhi\r\n0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end, size, st := scanChunked(b)
		if st != chunkedDone {
			return
		}
		if end > len(b) || size > int64(end) {
			t.Fatalf("scanChunked(%q) = end %d, size %d", b, end, size)
		}
		br := bufio.NewReader(bytes.NewReader(b[:end]))
		got, err := io.ReadAll(httputil.NewChunkedReader(br))
		if err != nil {
			t.Fatalf("scanChunked accepted %q (size %d), net/http's reader: %v", b[:end], size, err)
		}
		if int64(len(got)) != size {
			t.Fatalf("scanChunked(%q): size %d, net/http read %d bytes", b[:end], size, len(got))
		}
		// net/http stops after the last chunk's CRLF; the empty line
		// ending the (empty) trailer section is what is left.
		if rest, _ := io.ReadAll(br); string(rest) != "\r\n" {
			t.Fatalf("scanChunked(%q) ends at %d, net/http left %q", b, end, rest)
		}
	})
}

// A body buffer grows by size classes from firstBodyBuffer, keeping what
// it holds, and never past the class holding what is wanted.
func TestGrowBodyBuffer(t *testing.T) {
	bp := getBodyBuffer(firstBodyBuffer)
	copy(*bp, patterned(len(*bp), 1))
	var sizes []int
	for got := len(*bp); got < maxBufferedBody; got = len(*bp) {
		bp = growBodyBuffer(bp, got, 40000)
		sizes = append(sizes, len(*bp))
		if len(*bp) >= 40000 {
			break
		}
	}
	if fmt.Sprint(sizes) != "[16384 32768 65536]" {
		t.Errorf("grew through %v, want 16, 32 and 64 KiB", sizes)
	}
	if string((*bp)[:firstBodyBuffer]) != patterned(firstBodyBuffer, 1) {
		t.Error("growing lost the bytes held")
	}
	putBodyBuffer(bp)
}
