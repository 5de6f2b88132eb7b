package proxy

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// fzH2Backend records each request as net/http's HTTP/1.1 server parsed
// it: method, target, fields, body and trailers, or the body's error.
type fzH2Backend struct {
	srv *http.Server
	ln  net.Listener
	mu  sync.Mutex
	got []string
}

func newFzH2Backend(f *testing.F) *fzH2Backend {
	b := &fzH2Backend{ln: fzListen(f)}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		var s strings.Builder
		fmt.Fprintf(&s, "%s %s %s host=%q\n", r.Method, r.RequestURI, r.Proto, r.Host)
		for _, k := range slices.Sorted(maps.Keys(r.Header)) {
			fmt.Fprintf(&s, "  %s: %q\n", k, r.Header[k])
		}
		fmt.Fprintf(&s, "  body %q err=%v\n", body, err)
		for _, k := range slices.Sorted(maps.Keys(r.Trailer)) {
			fmt.Fprintf(&s, "  trailer %s: %q\n", k, r.Trailer[k])
		}
		b.mu.Lock()
		b.got = append(b.got, s.String())
		b.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}), ReadHeaderTimeout: fzDeadline}
	go func() { _ = b.srv.Serve(b.ln) }()
	f.Cleanup(func() { _ = b.srv.Close() })
	return b
}

// take returns the records of the requests marked with mark (the
// X-Fuzz-Exec field, left out of what it returns), dropping every record:
// a request that arrives late, after its exchange ended, is not compared
// with another side's or execution's.
func (b *fzH2Backend) take(mark string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	line := fmt.Sprintf("  X-Fuzz-Exec: [%q]\n", mark)
	var s strings.Builder
	for _, r := range b.got {
		if strings.Contains(r, line) {
			s.WriteString(strings.Replace(r, line, "", 1))
		}
	}
	b.got = nil
	return s.String()
}

// fzH2Fields decodes an input's header block: one field per line, the name
// up to the first colon after the line's first byte (so ":path:/x" is the
// pseudo-header :path with value /x).
func fzH2Fields(in []byte) []hpack.HeaderField {
	var fields []hpack.HeaderField
	for line := range bytes.SplitSeq(in, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		i := bytes.IndexByte(line[1:], ':')
		if i < 0 {
			fields = append(fields, hpack.HeaderField{Name: string(line)})
			continue
		}
		fields = append(fields, hpack.HeaderField{Name: string(line[:i+1]), Value: string(line[i+2:])})
	}
	return fields
}

// fzH2Send opens an h2c connection to addr, sends one request on stream 1
// (the fields; the body in a DATA frame when there is one; END_STREAM on
// the last frame) and describes how the stream ended: the answer's status,
// or the reset, GOAWAY or close that ended it.
func fzH2Send(addr string, fields []hpack.HeaderField, body []byte) string {
	nc, err := net.DialTimeout("tcp", addr, fzH2Timeout)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(fzH2Timeout))
	var blk bytes.Buffer
	enc := hpack.NewEncoder(&blk)
	for _, hf := range fields {
		_ = enc.WriteField(hf)
	}
	fr := http2.NewFramer(nc, nc)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	_, _ = io.WriteString(nc, http2.ClientPreface)
	_ = fr.WriteSettings()
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk.Bytes(), EndStream: len(body) == 0, EndHeaders: true})
	if len(body) > 0 {
		_ = fr.WriteData(1, true, body)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return "closed"
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 && f.StreamEnded() {
				return "status " + f.PseudoValue("status")
			}
			if f.StreamID == 1 {
				if st := f.PseudoValue("status"); st != "" && st[0] != '1' {
					return "status " + st
				}
			}
		case *http2.DataFrame:
			if f.StreamID == 1 && f.StreamEnded() {
				return "answered"
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return "reset"
			}
		case *http2.GoAwayFrame:
			return "goaway"
		}
	}
}

// FuzzNativeH2 sends a request built from the input — header fields,
// pseudo-headers included, of any bytes, and a body — to a gateway on
// net/http's HTTP/2 server, ReverseProxy and net/http's transport (the
// reference) and one on zkgate's own server, forward.lean and roundTripH1,
// both in front of the same HTTP/1.1 backend: whatever the native server forwards, net/http's
// must forward identically (the backend sees the same method, target,
// fields, body and trailers), and the native server may refuse only where
// it is stricter by rule: a Host field beside :authority (RFC 9113
// §8.3.1), a Content-Length that is not a plain decimal number or not the
// length of the body sent (§8.1.1), a :path that is not origin-form or
// "*", a TE field other than "trailers", or a CONNECT request.
func FuzzNativeH2(f *testing.F) {
	fzQuietLog(f)
	for _, s := range [][2]string{
		{":method:GET\n:scheme:http\n:authority:a.test\n:path:/x?q=1\nx-a:1", ""},
		{":method:POST\n:scheme:http\n:authority:a.test\n:path:/p\ncontent-length:5", "hello"},
		{":method:POST\n:scheme:http\n:authority:a.test\n:path:/p\ncontent-length:5", "hello0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"},
		{":method:GET\n:scheme:http\n:authority:a.test\n:path:/h\nhost:b.test", ""},
		{":method:GET\n:scheme:http\n:authority:a.test\n:path:/c\ncookie:a=1\ncookie:b=2", ""},
		{":method:GET\n:scheme:http\n:authority:a.test\n:path:/t\nte:trailers\ntransfer-encoding:chunked", ""},
		{":method:OPTIONS\n:scheme:http\n:authority:a.test\n:path:*", ""},
		{":method:GET\n:scheme:http\n:path:/noauth\nhost:a.test", ""},
		{":method:GET\n:scheme:https\n:authority:a.test:8443\n:path:/%2e%2e/x", ""},
		{":method:GET\n:scheme:http\n:authority:a.test\n:path:/a b", ""},
	} {
		f.Add([]byte(s[0] + "\x00" + s[1]))
	}
	be := newFzH2Backend(f)
	ref := newH2SideOn(f, true, HTTP2ServerGo, be.ln.Addr().String())
	native := newH2SideOn(f, false, HTTP2ServerZkgate, be.ln.Addr().String())
	execs := 0
	fzSerial(f, 4096, func(t *testing.T, in []byte) {
		head, body, _ := bytes.Cut(in, []byte{0})
		fields := fzH2Fields(head)
		execs++
		var ends [2]string
		var seen [2]string
		for i, side := range []*h2Side{ref, native} {
			// The mark of this execution and side comes last: what the
			// input's fields do to the request (a refusal) happens with
			// or without it.
			mark := strconv.Itoa(execs) + "." + strconv.Itoa(i)
			ends[i] = fzH2Send(side.addr, append(fields[:len(fields):len(fields)], hpack.HeaderField{Name: "x-fuzz-exec", Value: mark}), body)
			seen[i] = be.take(mark)
		}
		if seen[0] == seen[1] {
			return
		}
		// A request the native server refuses by a stricter rule may have
		// reached the backend cut short before the refusal (a body shorter
		// than its Content-Length is known at its END_STREAM, after the
		// request was forwarded): the backend then saw its body break.
		if fzNativeStricter(fields, body) && (seen[1] == "" || fzBodyCut(seen[1])) {
			return
		}
		t.Errorf("the backend saw different requests for %s (- net/http's server: %s, + the native one: %s):\n%s",
			fzQuote(in), ends[0], ends[1], lineDiff(seen[0], seen[1]))
	})
}

// fzBodyCut reports whether every request of a backend's record had its body
// break off.
func fzBodyCut(seen string) bool {
	return strings.Count(seen, "\n  body ") == strings.Count(seen, " err=unexpected EOF\n")
}

// fzNativeStricter reports whether a request breaks a rule by which the
// native server refuses it where net/http's passes it on.
func fzNativeStricter(fields []hpack.HeaderField, body []byte) bool {
	for _, hf := range fields {
		switch {
		case hf.Name == "host":
			return true
		case hf.Name == "content-length" && (hf.Value == "" || strings.Trim(hf.Value, "0123456789") != ""):
			return true
		case hf.Name == "content-length" && strings.TrimLeft(hf.Value, "0") != strconv.Itoa(len(body)) && (len(body) > 0 || strings.Trim(hf.Value, "0") != ""):
			// The DATA sent is not the declared length (§8.1.1); with none
			// sent, net/http's server forwards the request without a body.
			return true
		case hf.Name == ":method" && hf.Value == http.MethodConnect:
			return true
		case hf.Name == "te" && hf.Value != "trailers":
			// An empty TE: net/http's server lets it pass (§8.2.2 allows
			// only "trailers").
			return true
		case hf.Name == ":path" && !strings.HasPrefix(hf.Value, "/") && hf.Value != "*":
			// Origin-form or asterisk-form only (§8.3.1): net/http's
			// server also takes an absolute URI, or anything
			// url.ParseRequestURI parses.
			return true
		}
	}
	return false
}
