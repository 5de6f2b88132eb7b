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

// A response head larger than the upstream read buffer is answered 502,
// as nginx answers one past proxy_buffer_size; the upstream connection is
// closed and the client's stays usable.
func TestFastPathLargeResponseHead(t *testing.T) {
	big := strings.Repeat("c", connReadBufferSize+1000)
	be := newBackend(t, "big", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Header().Set("X-Big", big)
		}
		w.Header().Set("Content-Length", "5")
		_, _ = io.WriteString(w, "hello")
	})
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(fe.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for _, step := range []struct {
		path   string
		status int
	}{{"/big", 502}, {"/small", 200}, {"/big", 502}, {"/small", 200}} {
		if _, err := io.WriteString(c, "GET "+step.path+" HTTP/1.1\r\nHost: example.com\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", step.path, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != step.status || res.Header.Get("X-Big") != "" {
			t.Errorf("%s: status %d, X-Big of %d bytes; want %d and none", step.path, res.StatusCode, len(res.Header.Get("X-Big")), step.status)
		}
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
// larger body hands the connection to net/http, which streams it and
// closes the connection after.
func TestFastPathBuffersLargerBodies(t *testing.T) {
	be := newBackend(t, "b", nil)
	fe, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	var fast, forwarded atomic.Int64
	h.onFast = func(bool) { fast.Add(1) }
	h.onForward = func() { forwarded.Add(1) }

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
		{"POST", patterned(maxBufferedBody+1, 5)}, // net/http's, which closes after it
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
	// The last POST takes ReverseProxy, which streams its body.
	if f, d := fast.Load(), forwarded.Load(); f != 5 || d != 1 {
		t.Errorf("fast path served %d requests and ReverseProxy %d, want 5 and 1", f, d)
	}
}

// A body that does not come whole within BodyTimeout is answered 408 and
// its connection closed; no endpoint is contacted (issue 15, slow bodies).
func TestFastPathSlowBodyTimesOut(t *testing.T) {
	body := patterned(10000, 7)
	t.Run("length", func(t *testing.T) {
		head := fmt.Sprintf("POST /slow HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n\r\n", len(body))
		testSlowBody(t, head+body[:6000])
	})
	t.Run("chunked", func(t *testing.T) {
		raw := "POST /slow HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body, 3000)
		testSlowBody(t, raw[:7000])
	})
}

func testSlowBody(t *testing.T, first string) {
	be := newBackend(t, "b", nil)
	rt, err := NewRouter([]*Route{testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr())})
	if err != nil {
		t.Fatal(err)
	}
	fe := startFrontend(t, NewHandler(rt, Options{}), ServerConfig{BodyTimeout: 200 * time.Millisecond})
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(fe.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, first); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, &http.Request{Method: "POST"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusRequestTimeout || !res.Close {
		t.Errorf("status %d, close %v: %.200s; want 408 and the connection closed", res.StatusCode, res.Close, got)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Error("the connection stayed open")
	}
	if n := be.hits.Load(); n != 0 {
		t.Errorf("the backend got %d requests, want none", n)
	}
}

// A client that closes its side in the middle of a large or chunked body
// is not answered (nginx: "client prematurely closed connection") and no
// endpoint is contacted.
func TestFastPathLargeBodyCutShort(t *testing.T) {
	for _, raw := range []string{
		"POST /cut HTTP/1.1\r\nHost: example.com\r\nContent-Length: 9000\r\n\r\n" + patterned(6000, 0),
		"POST /cut HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n1770\r\n" + patterned(5000, 0),
	} {
		be := newBackend(t, "b", nil)
		fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(fe.URL, "http://"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, raw)
		_ = c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		c.Close()
		if len(got) != 0 || err != nil && connErr(err) != "closed" {
			t.Errorf("answer to a body cut short (%.80q): %q, %v; want the connection closed", raw, got, err)
		}
		if n := be.hits.Load(); n != 0 {
			t.Errorf("the backend got %d requests, want none", n)
		}
	}
}

// A malformed chunked body is answered 400 as net/http answers it, with
// no endpoint contacted on the fast path.
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

// Chunk-size lines the fast path refuses where net/http is lenient (white
// space after the size, a long extension) are answered 400 with no
// endpoint contacted: chunkScan's subset of RFC 9112 §7.1.
func TestFastPathStrictChunkLines(t *testing.T) {
	for _, body := range []string{
		"2 \r\nhi\r\n0\r\n\r\n",
		"2;" + strings.Repeat("e", 40) + "\r\nhi\r\n0\r\n\r\n",
	} {
		be := newBackend(t, "b", nil)
		fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
		raw := "POST /x HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n" + body
		res, got := rawRequest(t, strings.TrimPrefix(fe.URL, "http://"), raw)
		if res.StatusCode != http.StatusBadRequest || !res.Close {
			t.Errorf("answer to %q: %d %q, want 400 and close", body, res.StatusCode, got)
		}
		if n := be.hits.Load(); n != 0 {
			t.Errorf("%q: the backend got %d requests, want none", body, n)
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
	var fast, forwarded atomic.Int64
	h.onFast = func(bool) { fast.Add(1) }
	h.onForward = func() { forwarded.Add(1) }
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
	if f, d := fast.Load(), forwarded.Load(); f != 1 || d != 0 {
		t.Errorf("after two 404s the fast path served %d requests and ReverseProxy %d, want 1 and 0", f, d)
	}
}

// FuzzScanChunked checks that a chunked body chunkScan accepts is one
// net/http reads the same: the same decoded bytes, ending where it says;
// and that a scan resumed after a first look at a prefix (the body arriving
// in two reads) decides as one scan of the whole.
func FuzzScanChunked(f *testing.F) {
	for _, s := range []string{
		"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", "0\r\n\r\n", "5;a=b\r\nhello\r\n0;c\r\n\r\n",
		"A\r\n0123456789\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "2\r\nhi\r\n0\r\nX: 1\r\n\r\n", "zz\r\n", "2\nhi\r\n0\r\n\r\n",
	} {
		f.Add([]byte(s), uint16(3))
	}
	f.Fuzz(func(t *testing.T, b []byte, split uint16) {
		var whole chunkScan
		end, st := whole.scan(b)
		var parts chunkScan
		k := int(split) % (len(b) + 1)
		if _, st1 := parts.scan(b[:k]); st1 == chunkedMore {
			if end2, st2 := parts.scan(b); st2 != st || end2 != end || parts.size != whole.size {
				t.Fatalf("scan of %q after a prefix of %d: end %d, %d, size %d; in one scan: end %d, %d, size %d",
					b, k, end2, st2, parts.size, end, st, whole.size)
			}
		}
		if st != chunkedDone {
			return
		}
		size := whole.size
		if end > len(b) || size > int64(end) {
			t.Fatalf("scan(%q) = end %d, size %d", b, end, size)
		}
		br := bufio.NewReader(bytes.NewReader(b[:end]))
		got, err := io.ReadAll(httputil.NewChunkedReader(br))
		if err != nil {
			t.Fatalf("chunkScan accepted %q (size %d), net/http's reader: %v", b[:end], size, err)
		}
		if int64(len(got)) != size {
			t.Fatalf("chunkScan(%q): size %d, net/http read %d bytes", b[:end], size, len(got))
		}
		// net/http stops after the last chunk's CRLF; the empty line
		// ending the (empty) trailer section is what is left.
		if rest, _ := io.ReadAll(br); string(rest) != "\r\n" {
			t.Fatalf("chunkScan(%q) ends at %d, net/http left %q", b, end, rest)
		}
	})
}

// The input buffer grows by size classes while a request's bytes come,
// keeping them, pins the buffer a parsed head points into until the
// request is consumed, and goes back to the smallest class when emptied.
func TestInBufGrowsAndShrinks(t *testing.T) {
	b := inBuf{bp: getInBuf(0)}
	first := b.bp
	data := patterned(40000, 1)
	var sizes []int
	for got := 0; got < len(data); {
		room := b.room(len(data), false)
		if room == nil {
			t.Fatalf("no room after %d bytes", got)
		}
		n := copy(room, data[got:])
		b.w += n
		got += n
		sizes = append(sizes, cap(*b.bp))
	}
	if fmt.Sprint(sizes) != "[4096 32768 65536]" {
		t.Errorf("grew through %v, want 4, 32 (bodyStep) and 64 KiB", sizes)
	}
	if string(b.unread()) != data {
		t.Error("growing lost the bytes held")
	}
	if b.pinned != first {
		t.Error("the buffer the head was read into is not pinned")
	}
	b.consume(len(data))
	if b.pinned != nil || cap(*b.bp) != inBufMin || b.r != 0 || b.w != 0 {
		t.Errorf("after the request: pinned %v, size %d, r %d, w %d; want none, %d, 0, 0", b.pinned != nil, cap(*b.bp), b.r, b.w, inBufMin)
	}
	b.release()
}
