package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Response compression, a route policy, decided here for both paths.
//
// An answer is eligible when all of these hold:
//
//	request       not HEAD (as nginx: a HEAD answer is left as the endpoint sent it)
//	status        200–599 but 204, 206 and 304 (no 1xx, no 101)
//	encoding      the endpoint sent no Content-Encoding but "identity"
//	type          Content-Type is text/* (but text/event-stream), JSON,
//	              XML, JavaScript, SVG, WebAssembly, or a +json/+xml type
//	transform     Cache-Control has no "no-transform"
//	length        unknown (chunked or to the close), or at least MinBytes
//
// An eligible answer gets "Vary: Accept-Encoding" (unless its Vary already
// covers it), compressed or not, so that a cache keeps the two forms apart.
// It is compressed when the client accepts gzip or zstd (Accept-Encoding,
// with q-values; zstd on a tie, as it costs less CPU): Content-Length and
// Accept-Ranges are removed, a strong ETag is made weak, Content-Encoding
// is set, and the body is streamed through the encoder, never buffered
// whole — as chunks to an HTTP/1.1 client, ended by the close to an
// HTTP/1.0 one. The encoder is flushed whenever the gateway is about to
// wait for the endpoint's next bytes, so a slow stream is not held back.

// CompressPolicy is a route's response compression.
type CompressPolicy struct {
	// MinBytes is the smallest body compressed when its length is known.
	MinBytes int64
	// Level is 1 (fastest) to 9 (smallest): gzip's level, and zstd's
	// speed from its own levels of the same number (1–2 fastest, 3–5
	// default, 6–9 better compression).
	Level int
}

// encoding is a content coding the gateway applies.
type encoding uint8

const (
	encNone encoding = iota
	encGzip
	encZstd
)

func (e encoding) token() string {
	switch e {
	case encGzip:
		return "gzip"
	case encZstd:
		return "zstd"
	}
	return ""
}

// compressPolicy is a compiled CompressPolicy, with the route's pools of
// encoders.
type compressPolicy struct {
	minBytes int64
	level    int
	gzips    sync.Pool // *encoder
	zstds    sync.Pool // *encoder
}

func compileCompress(p *CompressPolicy) (*compressPolicy, error) {
	if p.Level < 1 || p.Level > 9 {
		return nil, errors.New("compress: level " + strconv.Itoa(p.Level) + " is not 1 to 9")
	}
	if p.MinBytes < 0 {
		return nil, errors.New("compress: negative min bytes")
	}
	return &compressPolicy{minBytes: p.MinBytes, level: p.Level}, nil
}

// acceptedEncoding returns the coding the request's Accept-Encoding fields
// prefer among gzip and zstd, or encNone. An unlisted coding takes the
// q-value of "*" when there is one; q=0 refuses.
func acceptedEncoding(h headerSource) encoding {
	qGzip, qZstd, qAny := -1, -1, -1 // thousandths; -1: not listed
	for i := 0; ; i++ {
		v, ok := h.value("Accept-Encoding", i)
		if !ok {
			break
		}
		for rest := sbytes(v); len(rest) > 0; {
			var item []byte
			item, rest = cutItem(rest)
			name, params, _ := bytes.Cut(item, []byte{';'})
			q := qValue(params)
			switch name = trimOWS(name); {
			case sameName(name, "gzip"), sameName(name, "x-gzip"):
				qGzip = max(qGzip, q)
			case sameName(name, "zstd"):
				qZstd = max(qZstd, q)
			case string(name) == "*":
				qAny = max(qAny, q)
			}
		}
	}
	if qGzip < 0 {
		qGzip = qAny
	}
	if qZstd < 0 {
		qZstd = qAny
	}
	switch {
	case qZstd > 0 && qZstd >= qGzip:
		return encZstd
	case qGzip > 0:
		return encGzip
	}
	return encNone
}

// qValue returns the q parameter in params (";q=0.5"), in thousandths: 1000
// when there is none, 0 for one that does not parse (a weight must be
// 0–1 with at most three decimals).
func qValue(params []byte) int {
	for len(params) > 0 {
		var p []byte
		p, params, _ = bytes.Cut(params, []byte{';'})
		p = trimOWS(p)
		if len(p) < 2 || p[0]|0x20 != 'q' || p[1] != '=' {
			continue
		}
		w := p[2:]
		if len(w) == 0 || len(w) > 5 || (w[0] != '0' && w[0] != '1') {
			return 0
		}
		q := int(w[0]-'0') * 1000
		if len(w) > 1 {
			if w[1] != '.' {
				return 0
			}
			scale := 100
			for _, d := range w[2:] {
				if d < '0' || d > '9' {
					return 0
				}
				q += int(d-'0') * scale
				scale /= 10
			}
		}
		if q > 1000 {
			return 0
		}
		return q
	}
	return 1000
}

// answerFacts are what the eligibility of an answer depends on, gathered
// by each path from its form of the response fields.
type answerFacts struct {
	ctype       string // the first Content-Type
	encoded     bool   // a Content-Encoding other than identity
	noTransform bool   // Cache-Control: no-transform
	varies      bool   // Vary already has Accept-Encoding or "*"
	clen        int64  // the body's length; -1: unknown
}

// note takes one response field into f.
func (f *answerFacts) note(name, value []byte) {
	switch {
	case sameName(name, "Content-Type"):
		if f.ctype == "" {
			f.ctype = bstr(value)
		}
	case sameName(name, "Content-Encoding"):
		if !bytes.EqualFold(trimOWS(value), []byte("identity")) {
			f.encoded = true
		}
	case sameName(name, "Cache-Control"):
		f.noTransform = f.noTransform || hasTokenBytes(value, "no-transform")
	case sameName(name, "Vary"):
		f.varies = f.varies || hasTokenBytes(value, "accept-encoding") || hasTokenBytes(value, "*")
	}
}

// headerFacts gathers an http.Header's facts; clen is the body's length
// (-1 unknown).
func headerFacts(h http.Header, clen int64) answerFacts {
	f := answerFacts{clen: clen}
	for _, name := range [...]string{"Content-Type", "Content-Encoding", "Cache-Control", "Vary"} {
		for _, v := range h[name] {
			f.note([]byte(name), sbytes(v))
		}
	}
	return f
}

// eligible reports whether an answer with status and facts f, to a request
// with method, is one the route compresses for a client that accepts it.
func (z *compressPolicy) eligible(method string, status int, f *answerFacts) bool {
	switch {
	case method == http.MethodHead, status < 200, status == http.StatusNoContent,
		status == http.StatusPartialContent, status == http.StatusNotModified:
		return false
	case f.encoded, f.noTransform, f.clen == 0, f.clen > 0 && f.clen < z.minBytes:
		return false
	}
	return compressibleType(f.ctype)
}

// compressibleType reports whether a Content-Type names a media type that
// compresses well (text, not already compressed) and is not a stream of
// events, which a client reads as each arrives.
func compressibleType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	if len(mt) > 5 && strings.EqualFold(mt[:5], "text/") {
		return !strings.EqualFold(mt, "text/event-stream")
	}
	for _, s := range [...]string{"+json", "+xml"} {
		if len(mt) > len(s) && strings.EqualFold(mt[len(mt)-len(s):], s) {
			return true
		}
	}
	for _, t := range [...]string{
		"application/json", "application/x-ndjson", "application/javascript",
		"application/x-javascript", "application/ecmascript", "application/xml",
		"application/wasm", "application/graphql", "image/svg+xml",
	} {
		if strings.EqualFold(mt, t) {
			return true
		}
	}
	return false
}

// weakETag returns a strong entity tag made weak ("x" → W/"x"); a weak
// one as it is. A compressed body is not byte for byte the one the tag
// names.
func weakETag(v string) string {
	if strings.HasPrefix(v, "W/") || v == "" {
		return v
	}
	return "W/" + v
}

// writeWeakETag writes, on the fast path, the ETag field of a compressed
// answer whose endpoint sent the tag v: made weak as weakETag makes it,
// with no string built.
func writeWeakETag(w *clientWriter, v []byte) {
	_, _ = w.WriteString("Etag: ")
	if len(v) > 0 && !bytes.HasPrefix(v, []byte("W/")) {
		_, _ = w.WriteString("W/")
	}
	_, _ = w.Write(v)
	_, _ = w.WriteString("\r\n")
}

// writeCodedField writes, on the fast path, a response field (the
// endpoint's or one the route sets) of an answer it compresses as
// forward.compress leaves it on net/http's side: Content-Length,
// Accept-Ranges and Content-Encoding dropped (the coding's own is written
// after the fields), an ETag made weak. It reports whether the field was
// one of those; any other is the caller's to write.
func writeCodedField(w *clientWriter, name, value []byte) bool {
	switch {
	case sameName(name, "Content-Length"), sameName(name, "Accept-Ranges"), sameName(name, "Content-Encoding"):
	case sameName(name, "Etag"):
		writeWeakETag(w, value)
	default:
		return false
	}
	return true
}

// encoder streams a body through gzip or zstd to its sink.
type encoder struct {
	pol    *compressPolicy // the pool it returns to
	enc    encoding
	cost   int64 // encoderCost, counted in encoderBytes while in use
	gz     *gzip.Writer
	zs     *zstd.Encoder
	sink   encSink
	dirty  bool // written to since the last flush
	closed bool
}

// encSink takes an encoder's output: as chunks (or as they are, to an
// HTTP/1.0 client) into the fast path's client writer, or into net/http's
// ResponseWriter, which frames them itself. n counts the bytes passed on.
type encSink struct {
	cw      *clientWriter
	chunked bool
	w       io.Writer
	n       *int64
}

func (s *encSink) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil // an empty chunk would end the body
	}
	var err error
	if s.cw != nil {
		err = s.cw.writeBody(p, s.chunked)
	} else {
		_, err = s.w.Write(p)
	}
	if err != nil {
		return 0, err
	}
	*s.n += int64(len(p))
	return len(p), nil
}

// maxEncoderBytes bounds the memory of the encoders in use at once, across
// routes, as encoderCost estimates it: a flood of slow clients on
// compressed routes could otherwise take the gateway's memory. Past the
// bound, answers go out as the endpoint sent them.
var maxEncoderBytes int64 = 256 << 20

// encoderBytes is the estimated memory of the encoders in use;
// activeEncoders counts them.
var (
	encoderBytes   atomic.Int64
	activeEncoders atomic.Int64
)

// encoderCost is the memory an encoder of enc at level holds while it
// works, rounded up from measurements of klauspost/compress (the standard
// library's gzip is no smaller): gzip 0.8–1.4 MiB by level; zstd, with its
// 1 MiB window, 1.6 MiB at levels 1–2, 2.6 MiB at 3–5, 5.5 MiB at 6–9.
func encoderCost(enc encoding, level int) int64 {
	switch {
	case enc == encGzip:
		return 3 << 19 // 1.5 MiB
	case level <= 2:
		return 2 << 20
	case level <= 5:
		return 3 << 20
	}
	return 6 << 20
}

// get returns an encoder of enc from the route's pool, writing to sink, or
// nil when maxEncoderBytes would be passed.
func (z *compressPolicy) get(enc encoding, sink encSink) *encoder {
	cost := encoderCost(enc, z.level)
	if encoderBytes.Add(cost) > maxEncoderBytes {
		encoderBytes.Add(-cost)
		return nil
	}
	activeEncoders.Add(1)
	pool := &z.gzips
	if enc == encZstd {
		pool = &z.zstds
	}
	e, _ := pool.Get().(*encoder)
	if e == nil {
		e = &encoder{pol: z, enc: enc, cost: cost}
		if enc == encZstd {
			// Options that cannot fail; a one-megabyte window keeps
			// the encoder small and well inside what browsers decode
			// (RFC 9659: at most 8 MiB).
			e.zs, _ = zstd.NewWriter(nil,
				zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(z.level)),
				zstd.WithEncoderConcurrency(1),
				zstd.WithWindowSize(1<<20),
				zstd.WithLowerEncoderMem(true),
				zstd.WithZeroFrames(true))
		} else {
			e.gz, _ = gzip.NewWriterLevel(nil, z.level)
		}
	}
	e.sink, e.dirty, e.closed = sink, false, false
	if e.zs != nil {
		e.zs.Reset(&e.sink)
	} else {
		e.gz.Reset(&e.sink)
	}
	return e
}

// release returns e to its route's pool.
func (e *encoder) release() {
	activeEncoders.Add(-1)
	encoderBytes.Add(-e.cost)
	e.sink = encSink{} // the encoder's writer is &e.sink: nothing else kept
	if e.zs != nil {
		e.pol.zstds.Put(e)
		return
	}
	e.pol.gzips.Put(e)
}

func (e *encoder) write(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	e.dirty = true
	var err error
	if e.zs != nil {
		_, err = e.zs.Write(p)
	} else {
		_, err = e.gz.Write(p)
	}
	return err
}

// flush passes on what the encoder holds, when it has taken bytes since
// the last flush.
func (e *encoder) flush() error {
	if !e.dirty || e.closed {
		return nil
	}
	e.dirty = false
	if e.zs != nil {
		return e.zs.Flush()
	}
	return e.gz.Flush()
}

// close ends the compressed stream (its last block and checksum).
func (e *encoder) close() error {
	if e.closed {
		return nil
	}
	e.closed = true
	if e.zs != nil {
		return e.zs.Close()
	}
	return e.gz.Close()
}

// facts gathers the facts of the answer the fast path sends to a route
// with policies p: the endpoint's fields but those its Connection field
// names and those the route's response edits remove or replace, then the
// route's settings — the fields net/http's side gathers them from
// (ReverseProxy has removed the hop-by-hop ones and editResponse has
// applied the edits before modifyResponse compresses).
func (res *fastResponse) facts(p *policies) answerFacts {
	f := answerFacts{clen: res.clen}
	if res.chunked {
		f.clen = -1
	}
	for i := range res.hdrs {
		l := &res.hdrs[i]
		if l.kind != rkOther || len(res.conn) > 0 && res.namedByConnection(l.name) || p.editsResponseField(l.name) {
			continue
		}
		f.note(l.name, l.value)
	}
	for _, s := range p.setResp {
		f.note(sbytes(s[0]), sbytes(s[1]))
	}
	return f
}
