package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// fastResponse is an upstream response head parsed in place in the
// upstream connection's read buffer.
type fastResponse struct {
	n       int    // the head's length
	code    []byte // the three status digits
	reason  []byte
	status  int
	hdrs    []hdrLine
	conn    [][]byte // the Connection values, naming hop-by-hop fields
	clen    int64    // -1: none
	chunked bool
	close   bool // the upstream connection cannot be reused
	http10  bool // the status line says HTTP/1.0
}

// errBadResponse is a response head the fast path refuses: the client gets
// 502 and the upstream connection is closed (see parse for the rules).
var errBadResponse = errors.New("proxy: malformed response from upstream")

// errBigHead is a response head larger than the connection's read buffer
// (connReadBufferSize): 502, as nginx answers a head past its
// proxy_buffer_size.
var errBigHead = errors.New("proxy: response head larger than the buffer")

// readResponseHead reads until br holds a whole response head and returns
// its length; errBigHead when it does not fit, errBadResponse for a line
// that does not end in CRLF or an empty first line.
func readResponseHead(br *bufio.Reader) (int, error) {
	from := 0
	for {
		buf, _ := br.Peek(br.Buffered())
		switch n := headEnd(buf, &from); {
		case n > 0:
			return n, nil
		case n < 0:
			return 0, errBadResponse
		}
		if len(buf) == br.Size() {
			return 0, errBigHead
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			if err == io.EOF && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
	}
}

// responseKinds are the response header fields the fast path treats
// specially: every hop-by-hop field is dropped, the framing read.
var responseKinds = newKindTable(fieldKinds(rkHop, map[string]hdrKind{
	"Connection":        rkConnection,
	"Transfer-Encoding": rkTransferEncoding,
	"Content-Length":    rkContentLength,
	"Trailer":           rkTrailer,
	"Date":              rkDate,
}))

// parse parses the response head, the first n bytes of br, strictly:
// anything ambiguous is errBadResponse, and the exchange fails with 502
// (the upstream connection closed, the client's kept). The rules, with
// readResponseHead's:
//
//	status line       "HTTP/1.0" or "HTTP/1.1", SP, three digits >= 100,
//	                  then nothing or SP and a reason of HTAB, SP, VCHAR and
//	                  obs-text: a bare CR or other control byte is refused
//	line ends         CRLF only: a bare LF or CR is refused
//	field line        a token name, ':' right after it (no white space
//	                  before), a value without control bytes but HTAB; a
//	                  line starting with white space (obs-fold) is refused
//	Content-Length    digits; repeats must agree
//	Transfer-Encoding "chunked" alone, once, never with Content-Length
//	                  (RFC 9112 §6.3: such a message is an error) nor on
//	                  HTTP/1.0 (§6.1: faulty framing)
//	size              the whole head within connReadBufferSize (errBigHead)
func (res *fastResponse) parse(br *bufio.Reader, n int) error {
	b, _ := br.Peek(n)
	res.n = n
	res.hdrs = res.hdrs[:0]
	res.conn = res.conn[:0]
	res.clen, res.chunked, res.close = -1, false, false

	line, b := cutLine(b)
	// "HTTP/1.x NNN[ reason]"
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' {
		return errBadResponse
	}
	http10 := line[7] == '0'
	res.http10 = http10
	res.code = line[9:12]
	res.status = 0
	for _, d := range res.code {
		if d < '0' || d > '9' {
			return errBadResponse
		}
		res.status = res.status*10 + int(d-'0')
	}
	if res.status < 100 {
		return errBadResponse
	}
	res.reason = nil
	if len(line) > 12 {
		if line[12] != ' ' {
			return errBadResponse
		}
		res.reason = line[13:]
		if !validFieldValue(res.reason) {
			return errBadResponse
		}
	}

	keepAlive := false
	for len(b) > 2 {
		line, b = cutLine(b)
		name, value, ok := splitField(line)
		if !ok {
			return errBadResponse
		}
		kind := responseKinds.kind(name)
		switch kind {
		case rkConnection:
			res.conn = append(res.conn, value)
			if hasTokenBytes(value, "close") {
				res.close = true
			}
			if hasTokenBytes(value, "keep-alive") {
				keepAlive = true
			}
		case rkTransferEncoding:
			if res.chunked || !bytes.EqualFold(value, []byte("chunked")) {
				return errBadResponse // net/http's client refuses other codings too
			}
			res.chunked = true
		case rkContentLength:
			v, err := strconv.ParseUint(bstr(value), 10, 63)
			if err != nil || len(value) == 0 || value[0] == '+' || (res.clen >= 0 && int64(v) != res.clen) {
				return errBadResponse
			}
			res.clen = int64(v)
		}
		res.hdrs = append(res.hdrs, hdrLine{name: name, value: value, kind: kind})
	}
	if res.chunked && (res.clen >= 0 || http10) {
		return errBadResponse // RFC 9112 §6.1: faulty framing on HTTP/1.0
	}
	if http10 && !keepAlive {
		res.close = true
	}
	return nil
}

// namedByConnection reports whether a Connection field of the response
// names the field name.
func (res *fastResponse) namedByConnection(name []byte) bool {
	for _, v := range res.conn {
		for len(v) > 0 {
			var item []byte
			item, v = cutItem(v)
			if bytes.EqualFold(item, name) {
				return true
			}
		}
	}
	return false
}

// forwardable reports whether the answer's field l is passed on as it
// came: not hop-by-hop, not named by the answer's Connection field, and not
// its framing (Content-Length, Transfer-Encoding, Trailer), which the
// writer of the passed-on answer sets itself.
func (res *fastResponse) forwardable(l *hdrLine) bool {
	switch l.kind {
	case rkHop, rkConnection, rkTransferEncoding, rkContentLength, rkTrailer:
		return false
	}
	return len(res.conn) == 0 || !res.namedByConnection(l.name)
}

// hasBody reports whether the final response carries a body for a
// request with method.
func (res *fastResponse) hasBody(method string) bool {
	return method != http.MethodHead && res.status != http.StatusNoContent && res.status != http.StatusNotModified
}
