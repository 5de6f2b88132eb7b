package proxy

// Differential fuzzing of response compression against the same route
// without it.
//
// FuzzCompressResponse: the input is what the backend writes in answer to
// GET /a, after which it closes the connection (every GET /b gets the
// marker answer). On each path (the fast path, and net/http's with the fast
// path off), a gateway whose route compresses (min_bytes 1) and one whose
// route does not are asked GET /a with Accept-Encoding: gzip, and the
// compressing one again with zstd. The compressed answer must be the plain
// one — same status, same fields, same trailer, and after decoding the same
// body with the same ending (whole, or cut: a client must never read as
// whole an answer the endpoint broke off) — but for the edits compression
// makes: a Content-Encoding of the coding asked for (replacing an
// endpoint's "identity"), no Accept-Ranges (nor the endpoint's length), a weak ETag,
// and Vary covering Accept-Encoding (an uncompressed answer may gain that
// Vary and nothing else). Then, on the same connection when it stays open
// after a whole answer, GET /b must get the marker: the compressed answer's
// framing leaves the client in step. And when every answer has ended, no
// encoder is left in use.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// fzcGateway serves a catch-all route, compressing or not, on a Server
// with its fast path on or off.
func fzcGateway(f *testing.F, fast, compress bool) *fzGateway {
	var p *Policies
	if compress {
		p = &Policies{Compress: &CompressPolicy{MinBytes: 1, Level: 1}}
	}
	return fzRouteGateway(f, fast, p)
}

// fzcExchange is GET /a and, when the connection stays open after a whole
// answer, GET /b on it.
type fzcExchange struct {
	a    fzAnswer
	m    *rawMessage
	next *fzAnswer // the answer to /b; nil when not asked
}

// fzcAsk sends GET /a (HTTP/1.0 when http10) with accept as its
// Accept-Encoding on a new connection to addr, then, in HTTP/1.1, GET /b
// on the same connection when the answer was whole and the gateway keeps
// the connection: written with /a when pipelined, else after /a's answer
// and a call of before (when not nil).
func fzcAsk(addr, accept string, http10 bool, before func(), pipelined bool) fzcExchange {
	c, err := net.DialTimeout("tcp", addr, fzDeadline)
	if err != nil {
		return fzcExchange{a: fzAnswer{text: "dial: " + err.Error()}, m: &rawMessage{}}
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(fzDeadline))
	request := func(target string) string {
		if http10 {
			return "GET " + target + " HTTP/1.0\r\nHost: example.net\r\nAccept-Encoding: " + accept + "\r\n\r\n"
		}
		return "GET " + target + " HTTP/1.1\r\nHost: example.net\r\nAccept-Encoding: " + accept + "\r\n\r\n"
	}
	first := request("/a")
	if pipelined && !http10 {
		first += request("/b")
	}
	if _, err := io.WriteString(c, first); err != nil {
		return fzcExchange{a: fzAnswer{text: "write: " + connErr(err)}, m: &rawMessage{}}
	}
	br := bufio.NewReader(c)
	var x fzcExchange
	x.a, x.m = fzRead(br)
	if http10 || x.a.cut || x.a.stalled || strings.Contains(x.a.text, "ended:") || x.a.status == 0 ||
		x.a.status == http.StatusSwitchingProtocols || fzHasToken(x.m.values("Connection"), "close") {
		return x
	}
	if !pipelined {
		if before != nil {
			before()
		}
		if _, err := io.WriteString(c, request("/b")); err != nil {
			return x
		}
	}
	b, _ := fzRead(br)
	x.next = &b
	return x
}

// fzcDecode decodes a compressed body; err says where it is not whole
// (cut short or not a stream of coding enc).
func fzcDecode(enc string, body []byte) ([]byte, error) {
	src := bytes.NewReader(body)
	if enc == "zstd" {
		zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		return io.ReadAll(zr)
	}
	zr, err := gzip.NewReader(src)
	if err != nil {
		return nil, err
	}
	zr.Multistream(false) // one member, and nothing after it
	out, err := io.ReadAll(zr)
	if err == nil && src.Len() > 0 {
		err = fmt.Errorf("%d bytes after the gzip stream", src.Len())
	}
	return out, err
}

// fzcFields are m's fields as sorted lines (canonical names, values in
// their order), without Date (each answer has its own) and the framing
// fields (the comparison is of what the client reads), and with the
// compression edits undone when coded: its Content-Encoding, and an ETag
// made weak, taken as the plain answer's (weak has both weakened). vary is
// the number of "Vary: Accept-Encoding" fields to leave out; without
// ctype, Content-Type is left out too.
func fzcFields(m *rawMessage, coded bool, vary int, weaken, ctype bool) string {
	var kept []rawField
	for _, f := range m.fields {
		name := textproto.CanonicalMIMEHeaderKey(f.name)
		switch name {
		case "Date", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive":
			continue
		case "Content-Type":
			if !ctype {
				continue
			}
		case "Content-Encoding", "Accept-Ranges":
			if coded {
				continue
			}
		case "Etag":
			if weaken {
				f.value = weakETag(f.value)
			}
		case "Vary":
			if vary > 0 && f.value == "Accept-Encoding" {
				vary--
				continue
			}
		}
		kept = append(kept, rawField{name, f.value})
	}
	slices.SortStableFunc(kept, func(x, y rawField) int { return strings.Compare(x.name, y.name) })
	var b strings.Builder
	for _, f := range kept {
		fmt.Fprintf(&b, "  %s: %q\n", f.name, f.value)
	}
	return b.String()
}

// fzcCount is the number of fields of m called name with value (any case
// of the name; "" matches any value).
func fzcCount(m *rawMessage, name, value string) int {
	n := 0
	for _, f := range m.fields {
		if strings.EqualFold(f.name, name) && (value == "" || f.value == value) {
			n++
		}
	}
	return n
}

// fzcCompare returns what is wrong with the compressed exchange z (coding
// enc asked for) given the plain one p, or "".
func fzcCompare(enc string, p, z fzcExchange) string {
	if p.a.cut && z.a.cut && (p.a.status == 0 || z.a.status == 0) {
		return "" // net/http's side sends nothing of an answer it aborts before its first flush
	}
	if p.a.status != z.a.status {
		return fmt.Sprintf("status %d, plain %d", z.a.status, p.a.status)
	}
	if p.a.stalled != z.a.stalled {
		return fmt.Sprintf("stalled %v, plain %v", z.a.stalled, p.a.stalled)
	}
	if p.a.stalled {
		return "" // neither ended: the backend closed, so a gateway hung (the plain too)
	}
	pce, zce := p.m.values("Content-Encoding"), z.m.values("Content-Encoding")
	coded := strings.Join(pce, "\n") != strings.Join(zce, "\n")
	extraVary := fzcCount(z.m, "Vary", "Accept-Encoding") - fzcCount(p.m, "Vary", "Accept-Encoding")
	if extraVary < 0 || extraVary > 1 {
		return fmt.Sprintf("%d Vary: Accept-Encoding fields, plain %d", fzcCount(z.m, "Vary", "Accept-Encoding"), fzcCount(p.m, "Vary", "Accept-Encoding"))
	}
	body := z.a.body
	var decodeErr error
	if coded {
		if len(zce) != 1 || zce[0] != enc {
			return fmt.Sprintf("Content-Encoding %q (plain %q), asked for %s", zce, pce, enc)
		}
		for _, v := range pce {
			if !strings.EqualFold(strings.TrimSpace(v), "identity") {
				return fmt.Sprintf("compressed an answer the endpoint coded (%q)", pce)
			}
		}
		// (A Content-Length is the coded body's, as net/http's server
		// sets it for a body it holds whole: a wrong one shows as a cut
		// or in the next answer.)
		if fzcCount(z.m, "Accept-Ranges", "") > 0 {
			return "a compressed answer with Accept-Ranges"
		}
		if !fzHasToken(z.m.values("Vary"), "accept-encoding") && !fzHasToken(z.m.values("Vary"), "*") {
			return fmt.Sprintf("a compressed answer with Vary %q", z.m.values("Vary"))
		}
		body, decodeErr = fzcDecode(enc, z.a.body)
	}
	// A Content-Type only one side has is net/http's sniffing, left out
	// as in FuzzParseResponse (seen once, on an uncompressed answer
	// without a type after an unasked 1xx: testdata 19728a492e2bcac4).
	ctype := len(p.m.values("Content-Type")) > 0 == (len(z.m.values("Content-Type")) > 0)
	if pf, zf := fzcFields(p.m, coded, 0, coded, ctype), fzcFields(z.m, coded, extraVary, false, ctype); pf != zf {
		return "fields differ (- plain, + compressed):\n" + lineDiff(pf, zf)
	}
	if pt, zt := fzcTrailer(p.m), fzcTrailer(z.m); pt != zt {
		return "trailers differ (- plain, + compressed):\n" + lineDiff(pt, zt)
	}
	switch {
	case p.a.cut != z.a.cut:
		return fmt.Sprintf("cut %v (%s), plain cut %v", z.a.cut, strings.TrimSpace(z.a.text[strings.LastIndex(z.a.text, "\n  ")+1:]), p.a.cut)
	case p.a.cut:
		// Both cut: what each relayed depends on how far it read.
		if !bytes.HasPrefix(p.a.body, body) && !bytes.HasPrefix(body, p.a.body) {
			return fmt.Sprintf("cut answers disagree: decoded %s, plain %s", formatBody(body), formatBody(p.a.body))
		}
	case decodeErr != nil:
		return fmt.Sprintf("a whole answer whose %s body does not decode: %v (plain %s)", enc, decodeErr, formatBody(p.a.body))
	case !bytes.Equal(body, p.a.body):
		return fmt.Sprintf("the body decodes to %s, plain %s", formatBody(body), formatBody(p.a.body))
	}
	if z.next != nil && !fzIsMarker(*z.next) && (p.next == nil || fzIsMarker(*p.next)) {
		return "the next answer on the connection is not the marker:\n" + z.next.show()
	}
	if p.next != nil && z.next == nil && !z.a.cut {
		return "the connection was not kept after a whole compressed answer (plain: kept)"
	}
	return ""
}

// fzcCompare10 returns what is wrong with the compressed answer z to an
// HTTP/1.0 client (coding enc asked for), which ends with the connection,
// given the plain one p to an HTTP/1.1 client, or "": a whole plain answer
// must decode to the same body, and a cut one must not decode whole — the
// coded stream's end is all that tells the HTTP/1.0 client.
func fzcCompare10(enc string, p, z fzcExchange) string {
	coded := strings.Join(z.m.values("Content-Encoding"), "\n") == enc &&
		strings.Join(p.m.values("Content-Encoding"), "\n") != enc
	switch {
	case p.a.stalled || z.a.stalled:
		return ""
	case p.a.cut:
		if !coded || len(z.a.body) == 0 && enc == "zstd" {
			return "" // (zstd reads no bytes as an empty stream)
		}
		if body, err := fzcDecode(enc, z.a.body); err == nil {
			return fmt.Sprintf("an answer the endpoint broke off decodes whole: %s (plain cut after %s)", formatBody(body), formatBody(p.a.body))
		}
		return ""
	case z.a.cut:
		return "cut, the plain answer is whole"
	case z.a.status != p.a.status:
		return fmt.Sprintf("status %d, plain %d", z.a.status, p.a.status)
	}
	body := z.a.body
	if coded {
		var err error
		if body, err = fzcDecode(enc, z.a.body); err != nil {
			return fmt.Sprintf("a whole answer whose %s body does not decode: %v", enc, err)
		}
	}
	if !bytes.Equal(body, p.a.body) {
		return fmt.Sprintf("the body decodes to %s, plain %s", formatBody(body), formatBody(p.a.body))
	}
	return ""
}

// fzcEventually reports whether cond holds within fzDeadline.
func fzcEventually(cond func() bool) bool {
	for deadline := time.Now().Add(fzDeadline); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

func fzcTrailer(m *rawMessage) string {
	var b strings.Builder
	fzFields(&b, "  ", m.trailer, nil)
	return b.String()
}

// fzcResponseSeeds are answers to GET /a, compressible ones first.
func fzcResponseSeeds() []string {
	const text = "Content-Type: text/plain\r\n"
	const json = "Content-Type: application/json\r\n"
	return append([]string{
		"HTTP/1.1 200 OK\r\n" + text + "Content-Length: 11\r\n\r\nhello world",
		"HTTP/1.1 200 OK\r\n" + json + "ETag: \"v1\"\r\nAccept-Ranges: bytes\r\nContent-Length: 9\r\n\r\n{\"a\":[1]}",
		"HTTP/1.1 200 OK\r\n" + text + "ETag: \"a\"\r\nETag: \"b\"\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\n" + text + "Content-Encoding: identity\r\nVary: Accept-Encoding\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\n" + text + "Vary: Origin\r\nVary: accept-encoding\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\n" + text + "Content-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\n" + text + "Cache-Control: public, no-transform\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\n" + text + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\n" + text + "Trailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: t\r\n\r\n",
		"HTTP/1.1 200 OK\r\n" + text + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\n" + text + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: t\r\nbroken\r\n\r\n",
		"HTTP/1.1 200 OK\r\n" + text + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n",
		"HTTP/1.1 200 OK\r\n" + text + "Transfer-Encoding: chunked\r\n\r\n5\r\nhel",
		"HTTP/1.1 200 OK\r\n" + text + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
		"HTTP/1.1 200 OK\r\n" + text + "Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\n" + text + "Content-Length: 10\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\n" + text + "\r\nclose-delimited body",
		"HTTP/1.0 200 OK\r\n" + text + "\r\nclose-delimited body",
		"HTTP/1.1 200 OK\r\n" + text + "\r\n",
		"HTTP/1.1 200 OK\r\n" + text + "Content-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\n" + text + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\n" + text + "Connection: Vary\r\nVary: Accept-Encoding\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 204 No Content\r\n" + text + "\r\n",
		"HTTP/1.1 206 Partial Content\r\n" + text + "Content-Range: bytes 0-4/10\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 304 Not Modified\r\n" + text + "ETag: \"x\"\r\n\r\n",
		"HTTP/1.1 404 Not Found\r\n" + text + "Content-Length: 9\r\nETag: W/\"w\"\r\n\r\nnot found",
		"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n" + text + "Content-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: x\n\n",
		"HTTP/1.1 200 OK\r\nContent-Type: image/svg+xml\r\nContent-Length: 6\r\n\r\n<svg/>",
	}, fzResponseSeeds()...)
}

func FuzzCompressResponse(f *testing.F) {
	for _, s := range fzcResponseSeeds() {
		f.Add([]byte(s))
	}
	fzQuietLog(f)
	type side struct {
		name          string
		plain, zipped *fzGateway
		// fresh: /b goes on a new upstream connection. net/http's
		// transport may pool the connection with an answer's excess
		// bytes on it (the poisoning the fast path guards against, the
		// reason fast_path: false is not for the internet).
		fresh bool
	}
	sides := []side{
		{"fast path", fzcGateway(f, true, false), fzcGateway(f, true, true), false},
		{"net/http", fzcGateway(f, false, false), fzcGateway(f, false, true), true},
	}
	fzSerial(f, 64<<10, func(t *testing.T, script []byte) {
		b, err := newFzBackend(func(bw *bufio.Writer, req *rawMessage) bool {
			if strings.HasPrefix(req.start, "GET /b ") {
				bw.WriteString(fzMarker)
				return true
			}
			bw.Write(script)
			return false
		})
		if err != nil {
			t.Fatal(err)
		}
		defer b.close()
		type result struct {
			plain            fzcExchange
			zipped, zipped10 [2]fzcExchange // gzip, zstd
		}
		encs := [2]string{"gzip", "zstd"}
		results := make([]result, len(sides))
		var wg sync.WaitGroup
		for i, s := range sides {
			for _, g := range []*fzGateway{s.plain, s.zipped} {
				if err := g.setBackend(b.addr()); err != nil {
					t.Fatal(err)
				}
			}
			r := &results[i]
			var plainIdle, zippedIdle func()
			if s.fresh {
				plainIdle, zippedIdle = s.plain.closeIdle, s.zipped.closeIdle
			}
			wg.Go(func() { r.plain = fzcAsk(s.plain.addr, "gzip", false, plainIdle, !s.fresh) })
			for j, enc := range encs {
				wg.Go(func() { r.zipped[j] = fzcAsk(s.zipped.addr, enc, false, zippedIdle, !s.fresh) })
				wg.Go(func() { r.zipped10[j] = fzcAsk(s.zipped.addr, enc, true, nil, false) })
			}
		}
		wg.Wait()
		var problems []string
		for i, s := range sides {
			r := &results[i]
			for j, enc := range encs {
				why := fzcCompare(enc, r.plain, r.zipped[j])
				if why != "" && r.plain.a.stalled != r.zipped[j].a.stalled {
					// One side waited out fzDeadline: on a loaded
					// machine, maybe only slow. A hang happens again.
					var plainIdle, zippedIdle func()
					if s.fresh {
						plainIdle, zippedIdle = s.plain.closeIdle, s.zipped.closeIdle
					}
					r.plain = fzcAsk(s.plain.addr, "gzip", false, plainIdle, !s.fresh)
					r.zipped[j] = fzcAsk(s.zipped.addr, enc, false, zippedIdle, !s.fresh)
					why = fzcCompare(enc, r.plain, r.zipped[j])
				}
				if why != "" {
					problems = append(problems, fmt.Sprintf("%s, %s: %s\nplain answer:\n%s\ncompressed answer:\n%s", s.name, enc, why, r.plain.a.show(), r.zipped[j].a.show()))
				}
				if why := fzcCompare10(enc, r.plain, r.zipped10[j]); why != "" {
					problems = append(problems, fmt.Sprintf("%s, %s to HTTP/1.0: %s\nplain answer (HTTP/1.1):\n%s\ncompressed answer:\n%s", s.name, enc, why, r.plain.a.show(), r.zipped10[j].a.show()))
				}
			}
		}
		b.settle()
		// Every way an answer ended gave its encoder back (each fuzzing
		// process runs one execution at a time).
		if !fzcEventually(func() bool { return activeEncoders.Load() == 0 }) {
			problems = append(problems, fmt.Sprintf("%d encoders still in use after every answer ended", activeEncoders.Load()))
		}
		for _, s := range sides {
			s.plain.closeIdle()
			s.zipped.closeIdle()
		}
		if len(problems) > 0 {
			t.Fatalf("backend answer %s\n%s\n%s", fzQuote(script), fzShowInput(script), strings.Join(problems, "\n"))
		}
	})
}
