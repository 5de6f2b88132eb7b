package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Compression is decided on the answer the client gets — the endpoint's
// fields after the route's response edits — on both paths: a route that
// sets "Cache-Control: no-transform" is not compressed, one that sets a
// compressible Content-Type is, and one that replaces or removes the
// endpoint's "Vary: Accept-Encoding" still varies on Accept-Encoding when
// it compresses.
func TestCompressFollowsResponseEdits(t *testing.T) {
	b := compressBackend(t)
	for _, c := range []struct {
		name, path string
		set        map[string]string
		remove     []string
		enc        string // the Content-Encoding wanted
	}{
		{"set no-transform", "/json", map[string]string{"Cache-Control": "no-transform"}, nil, ""},
		{"set a text type", "/png", map[string]string{"Content-Type": "text/plain"}, nil, "gzip"},
		{"set an image type", "/json", map[string]string{"Content-Type": "image/png"}, nil, ""},
		{"replace Vary", "/vary", map[string]string{"Vary": "Origin"}, nil, "gzip"},
		{"remove Vary", "/vary", nil, []string{"Vary"}, "gzip"},
	} {
		h := routeHandler(t, b.addr(), &Policies{
			Compress:              &CompressPolicy{MinBytes: 1024, Level: 5},
			SetResponseHeaders:    c.set,
			RemoveResponseHeaders: c.remove,
		})
		t.Run(c.name, func(t *testing.T) {
			bothPaths(t, func(t *testing.T) {
				addr := pathFrontend(t, h)
				res, body := rawRequest(t, addr, "GET "+c.path+" HTTP/1.1\r\nHost: api.example\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
				if got := res.Header.Values("Content-Encoding"); strings.Join(got, ",") != c.enc {
					t.Fatalf("Content-Encoding %q, want %q", got, c.enc)
				}
				if c.enc != "" && !hasTokenBytes([]byte(strings.Join(res.Header.Values("Vary"), ",")), "accept-encoding") {
					t.Errorf("a compressed answer with Vary %q", res.Header.Values("Vary"))
				}
				if got := decode(t, res, body); !bytes.Equal(got, compressBody) {
					t.Errorf("the body decodes to %d bytes, want %d", len(got), len(compressBody))
				}
			})
		})
	}
}

// A field the endpoint's Connection field names is hop-by-hop: both paths
// drop it, so it cannot decide compression — a dropped "Vary:
// Accept-Encoding" would leave a compressed answer without one.
func TestCompressIgnoresConnectionNamedFields(t *testing.T) {
	body := strings.Repeat("text to compress ", 100)
	for _, c := range []struct {
		name, fields string
		enc          string
	}{
		{"Vary", "Connection: Vary\r\nVary: Accept-Encoding\r\nContent-Type: text/plain\r\n", "gzip"},
		{"Cache-Control", "Connection: Cache-Control\r\nCache-Control: no-transform\r\nContent-Type: text/plain\r\n", "gzip"},
		{"Content-Type", "Connection: Content-Type\r\nContent-Type: text/plain\r\n", ""},
	} {
		b := newRecBackend(t, cannedScript("HTTP/1.1 200 OK\r\n"+c.fields+"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body))
		h := routeHandler(t, b.addr(), &Policies{Compress: &CompressPolicy{MinBytes: 1024, Level: 5}})
		t.Run(c.name, func(t *testing.T) {
			bothPaths(t, func(t *testing.T) {
				addr := pathFrontend(t, h)
				res, got := rawRequest(t, addr, "GET / HTTP/1.1\r\nHost: api.example\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
				if ce := res.Header.Values("Content-Encoding"); strings.Join(ce, ",") != c.enc {
					t.Fatalf("Content-Encoding %q, want %q", ce, c.enc)
				}
				if c.enc != "" && !hasTokenBytes([]byte(strings.Join(res.Header.Values("Vary"), ",")), "accept-encoding") {
					t.Errorf("a compressed answer with Vary %q", res.Header.Values("Vary"))
				}
				if string(decode(t, res, got)) != body {
					t.Errorf("the body decodes to something else")
				}
			})
		})
	}
}

// To an HTTP/1.0 client a compressed answer ends with the connection, so
// the coded stream's own end is all that tells a whole answer from a cut
// one: an endpoint that breaks off in its trailer section, after the last
// chunk, must leave the stream unended, as one that breaks off in its
// body does.
func TestCompressHTTP10CutInTrailer(t *testing.T) {
	body := strings.Repeat("text to compress ", 100)
	for _, c := range []struct{ name, end string }{
		{"closed before the trailer's end", "0\r\nX-T: t\r\n"},
		{"a malformed trailer", "0\r\nno colon\r\n\r\n"},
	} {
		b := newRecBackend(t, func(_, _ int, _ *http.Request, _ []byte, conn net.Conn) bool {
			_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"+
				strconv.FormatInt(int64(len(body)), 16)+"\r\n"+body+"\r\n"+c.end)
			return false
		})
		h := routeHandler(t, b.addr(), &Policies{Compress: &CompressPolicy{MinBytes: 1024, Level: 5}})
		t.Run(c.name, func(t *testing.T) {
			bothPaths(t, func(t *testing.T) {
				addr := pathFrontend(t, h)
				for _, enc := range []string{"gzip", "zstd"} {
					conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
					if err != nil {
						t.Fatal(err)
					}
					_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
					_, _ = io.WriteString(conn, "GET / HTTP/1.0\r\nHost: api.example\r\nAccept-Encoding: "+enc+"\r\n\r\n")
					res, err := http.ReadResponse(bufio.NewReader(conn), nil)
					if err != nil {
						conn.Close()
						continue // nothing sent: the client sees no answer
					}
					coded, _ := io.ReadAll(res.Body)
					conn.Close()
					if res.Header.Get("Content-Encoding") != enc {
						continue // net/http's side may send the 502 it had not yet flushed
					}
					if len(coded) == 0 && enc == "zstd" {
						continue // no byte of it sent; zstd reads nothing as an empty stream
					}
					if got, err := fzcDecode(enc, coded); err == nil {
						t.Errorf("%s: an answer the endpoint broke off decodes whole (%d bytes)", enc, len(got))
					}
				}
			})
		})
	}
}

// The fast path writes a compressed answer's weakened ETag without
// allocating (BenchmarkCompress's answer has a strong one, longer than
// the 32 bytes a concatenation may build on the stack), as weakETag
// writes it on net/http's side.
func TestWriteWeakETag(t *testing.T) {
	w := &clientWriter{buf: make([]byte, 0, 256)}
	for _, v := range []string{`"5d41402abc4b2a76b9719d911017c592"`, `W/"x"`, `""`, ``} {
		w.buf = w.buf[:0]
		writeWeakETag(w, []byte(v))
		if got, want := string(w.buf), "Etag: "+weakETag(v)+"\r\n"; got != want {
			t.Errorf("%q: wrote %q, want %q", v, got, want)
		}
	}
	tag := []byte(`"5d41402abc4b2a76b9719d911017c592"`)
	if n := testing.AllocsPerRun(100, func() {
		w.buf = w.buf[:0]
		writeWeakETag(w, tag)
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// The fields a route sets are edited as the endpoint's are when the answer
// is compressed, on both paths: no Accept-Ranges (ranges of the coded body
// are not offered) nor Content-Length, and a weak ETag.
func TestCompressEditsRouteSetFields(t *testing.T) {
	b := compressBackend(t)
	h := routeHandler(t, b.addr(), &Policies{
		Compress:           &CompressPolicy{MinBytes: 1024, Level: 5},
		SetResponseHeaders: map[string]string{"Accept-Ranges": "bytes", "Etag": `"r1"`},
	})
	bothPaths(t, func(t *testing.T) {
		addr := pathFrontend(t, h)
		for _, accept := range []string{"gzip", ""} {
			res, body := rawRequest(t, addr, "GET /json HTTP/1.1\r\nHost: api.example\r\nAccept-Encoding: "+accept+"\r\nConnection: close\r\n\r\n")
			wantRanges, wantTag := []string{"bytes"}, []string{`"r1"`}
			if accept != "" {
				wantRanges, wantTag = nil, []string{`W/"r1"`}
			}
			if got := res.Header.Values("Accept-Ranges"); strings.Join(got, ",") != strings.Join(wantRanges, ",") {
				t.Errorf("Accept-Encoding %q: Accept-Ranges %q, want %q", accept, got, wantRanges)
			}
			if got := res.Header.Values("Etag"); strings.Join(got, ",") != strings.Join(wantTag, ",") {
				t.Errorf("Accept-Encoding %q: ETag %q, want %q", accept, got, wantTag)
			}
			if got := decode(t, res, body); !bytes.Equal(got, compressBody) {
				t.Errorf("Accept-Encoding %q: the body decodes to %d bytes", accept, len(got))
			}
		}
	})
}

// An endpoint that sends its ETag twice has both made weak, not the second
// dropped, on net/http's side as on the fast path.
func TestCompressWeakensEveryETag(t *testing.T) {
	body := strings.Repeat("text to compress ", 100)
	b := newRecBackend(t, cannedScript("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nEtag: \"a\"\r\nEtag: \"b\"\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body))
	h := routeHandler(t, b.addr(), &Policies{Compress: &CompressPolicy{MinBytes: 1024, Level: 5}})
	bothPaths(t, func(t *testing.T) {
		addr := pathFrontend(t, h)
		res, got := rawRequest(t, addr, "GET / HTTP/1.1\r\nHost: api.example\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
		if tags := res.Header.Values("Etag"); res.Header.Get("Content-Encoding") != "gzip" || strings.Join(tags, ",") != `W/"a",W/"b"` {
			t.Errorf("Content-Encoding %q, ETag %q", res.Header.Get("Content-Encoding"), tags)
		}
		if string(decode(t, res, got)) != body {
			t.Error("the body decodes to something else")
		}
	})
}

// routeHandler serves one route with pol to the backend at addr.
func routeHandler(t *testing.T, addr string, pol *Policies) *Handler {
	t.Helper()
	r := testRoute(t, "api", "round_robin", testUpstream(t, "svc"), addr)
	r.Policies = pol
	_, h := newFrontend(t, Options{}, r)
	return h
}
