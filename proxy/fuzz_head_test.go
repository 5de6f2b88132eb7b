package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// FuzzRequestHead is the fast path's request parser against net/http's, on
// the parse alone (millions of inputs, no sockets; FuzzParseRequest runs
// whole connections). For every input whose head the fast path would serve
// itself or hand to net/http, net/http must read the same message: the same
// method, target, Host and fields, and the same body boundary — the bytes
// after the body, which the next request is parsed from, must be the same
// for both. A head the fast path refuses is fine whatever net/http says: it
// is never forwarded and its connection closes; so is a head handed to
// net/http that net/http refuses.
func FuzzRequestHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /n HTTP/1.1\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /SMUGGLED HTTP/1.1\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"PURGE /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
		"GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2;e=1\r\nhi\r\n0\r\nT: 1\r\n\r\n",
		"GET /a%2Fb?c=%zz HTTP/1.1\r\nHost: a:80\r\nConnection: x-y\r\nX-Y: 1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	s := &Server{cfg: ServerConfig{}.withDefaults()}
	f.Fuzz(func(t *testing.T, b []byte) {
		from := 0
		n := headEnd(b, &from)
		if n <= 0 || n > s.cfg.MaxHeaderBytes {
			return // refused (or not whole yet)
		}
		c := &fconn{s: s}
		v := c.parseRequest(b[:n])
		if v != serveFast && v != handOff {
			return
		}
		br := bufio.NewReader(bytes.NewReader(b))
		req, err := http.ReadRequest(br)
		if err != nil && v == handOff {
			return // net/http refuses it itself, forwarding nothing, and closes
		}
		if err != nil {
			t.Fatalf("the fast path takes a head net/http refuses (%v):\n%q", err, b[:n])
		}
		r := &c.req
		if v == serveFast {
			if req.Method != r.method || req.RequestURI != string(r.target) || req.Host != string(r.host) {
				t.Fatalf("request line or Host read differently: fast %s %q %q, net/http %s %q %q:\n%q",
					r.method, r.target, r.host, req.Method, req.RequestURI, req.Host, b[:n])
			}
			for _, l := range r.hdrs {
				name := http.CanonicalHeaderKey(string(l.name))
				if name == "Host" || name == "Content-Length" || name == "Transfer-Encoding" {
					continue // read into Request fields, checked below
				}
				if !slices.ContainsFunc(req.Header[name], func(v string) bool { return strings.TrimSpace(v) == string(l.value) }) {
					t.Fatalf("field %s: %q read by the fast path, net/http has %q:\n%q", name, l.value, req.Header[name], b[:n])
				}
			}
		}
		// The body's boundary.
		chunked := len(req.TransferEncoding) > 0
		if chunked != r.chunked || !chunked && req.ContentLength != r.clen {
			t.Fatalf("framing read differently: fast chunked=%v length=%d, net/http %v %d:\n%q",
				r.chunked, r.clen, req.TransferEncoding, req.ContentLength, b[:n])
		}
		rest := b[n:]
		var fastEnd int
		switch {
		case r.chunked:
			var cs chunkScan
			end, st := cs.scan(rest)
			if st != chunkedDone {
				return // incomplete, malformed (refused) or with trailers (net/http's)
			}
			fastEnd = end
		case int64(len(rest)) < r.clen:
			return // the body is not all there
		default:
			fastEnd = int(r.clen)
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			t.Fatalf("the fast path reads a body net/http refuses (%v):\n%q", err, b)
		}
		after, _ := io.ReadAll(br)
		if !bytes.Equal(after, rest[fastEnd:]) {
			t.Fatalf("the next request starts elsewhere: fast path after %d body bytes (%q), net/http after %q (%q):\n%q",
				fastEnd, rest[fastEnd:], body, after, b)
		}
	})
}
