package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
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
