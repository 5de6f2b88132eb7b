package proxy

import (
	"bytes"
	"net/http"
	"unsafe"
)

// fastRequest is a request head parsed in place: every slice points into
// the connection's read buffer and is valid until the request is served.
type fastRequest struct {
	method   string // one of the constants of fastMethod
	target   []byte // the request target as sent
	path     []byte
	query    []byte // after '?', when hasQuery
	hasQuery bool
	host     []byte
	close    bool // Connection: close
	te       bool // "Te: trailers"
	idemKey  bool // an Idempotency-Key or X-Idempotency-Key field
	clen     int64
	hdrs     []hdrLine
}

// hdrLine is one request header field.
type hdrLine struct {
	name, value []byte
	kind        hdrKind
}

// hdrKind classifies the request header fields the fast path treats
// specially.
type hdrKind uint8

const (
	hkOther hdrKind = iota
	hkHost
	hkHandoff // a field that makes the request net/http's: a body, an upgrade, 100-continue, trailers
	hkConnection
	hkHop // a hop-by-hop field removed before forwarding
	hkTe
	hkForwarded // Forwarded: removed
	hkXFF
	hkXFHost
	hkXFProto
	hkXFPrefix
	hkXRealIP
	hkUserAgent
	hkContentLength
	hkIdempotencyKey
)

// fastMethod returns the method of a request line's first word when the
// fast path serves it (the common methods; CONNECT and TRACE are
// net/http's), as a constant string.
func fastMethod(m []byte) (string, bool) {
	switch string(m) {
	case http.MethodGet:
		return http.MethodGet, true
	case http.MethodHead:
		return http.MethodHead, true
	case http.MethodPost:
		return http.MethodPost, true
	case http.MethodPut:
		return http.MethodPut, true
	case http.MethodPatch:
		return http.MethodPatch, true
	case http.MethodDelete:
		return http.MethodDelete, true
	case http.MethodOptions:
		return http.MethodOptions, true
	}
	return "", false
}

// classifyHeader returns the kind of a header field name, compared
// case-insensitively.
func classifyHeader(name []byte) hdrKind {
	switch len(name) {
	case 2:
		if bytes.EqualFold(name, []byte("Te")) {
			return hkTe
		}
	case 4:
		if bytes.EqualFold(name, []byte("Host")) {
			return hkHost
		}
	case 6:
		if bytes.EqualFold(name, []byte("Expect")) {
			return hkHandoff
		}
	case 7:
		if bytes.EqualFold(name, []byte("Upgrade")) || bytes.EqualFold(name, []byte("Trailer")) {
			return hkHandoff
		}
	case 9:
		switch {
		case bytes.EqualFold(name, []byte("Forwarded")):
			return hkForwarded
		case bytes.EqualFold(name, []byte("X-Real-Ip")):
			return hkXRealIP
		}
	case 10:
		switch {
		case bytes.EqualFold(name, []byte("Connection")):
			return hkConnection
		case bytes.EqualFold(name, []byte("Keep-Alive")):
			return hkHop
		case bytes.EqualFold(name, []byte("User-Agent")):
			return hkUserAgent
		}
	case 14:
		if bytes.EqualFold(name, []byte("Content-Length")) {
			return hkContentLength
		}
	case 15:
		switch {
		case bytes.EqualFold(name, []byte("X-Forwarded-For")):
			return hkXFF
		case bytes.EqualFold(name, []byte("Idempotency-Key")):
			return hkIdempotencyKey
		}
	case 16:
		switch {
		case bytes.EqualFold(name, []byte("X-Forwarded-Host")):
			return hkXFHost
		case bytes.EqualFold(name, []byte("Proxy-Connection")):
			return hkHop
		}
	case 17:
		switch {
		case bytes.EqualFold(name, []byte("X-Forwarded-Proto")):
			return hkXFProto
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return hkHandoff
		case bytes.EqualFold(name, []byte("X-Idempotency-Key")):
			return hkIdempotencyKey
		}
	case 18:
		switch {
		case bytes.EqualFold(name, []byte("X-Forwarded-Prefix")):
			return hkXFPrefix
		case bytes.EqualFold(name, []byte("Proxy-Authenticate")):
			return hkHop
		}
	case 19:
		if bytes.EqualFold(name, []byte("Proxy-Authorization")) {
			return hkHop
		}
	}
	return hkOther
}

// parseRequest parses the request head b (through its empty line) into
// c.req and reports whether the fast path may serve it. Anything it does
// not fully understand — other methods and versions, absolute-form or
// escaped targets, bodies, upgrades, Connection options, unusual bytes in
// names, values or the host — is left to net/http, which serves it or
// rejects it with the right status.
func (c *fconn) parseRequest(b []byte) bool {
	r := &c.req
	r.hdrs = r.hdrs[:0]
	r.host, r.close, r.te, r.idemKey, r.clen = nil, false, false, false, 0
	lengths := 0

	eol := bytes.IndexByte(b, '\n')
	line := b[:eol-1]
	b = b[eol+1:]
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return false
	}
	var ok bool
	if r.method, ok = fastMethod(line[:sp]); !ok {
		return false
	}
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp < 0 || string(rest[sp+1:]) != "HTTP/1.1" {
		return false
	}
	r.target = rest[:sp]
	if !r.parseTarget() {
		return false
	}

	hosts := 0
	for len(b) > 2 {
		eol = bytes.IndexByte(b, '\n')
		line = b[:eol-1]
		b = b[eol+1:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validFieldName(line[:colon]) {
			return false // no name, a space before ':', obs-fold, bad bytes
		}
		name := line[:colon]
		value := trimOWS(line[colon+1:])
		if !validFieldValue(value) {
			return false
		}
		kind := classifyHeader(name)
		switch kind {
		case hkHandoff:
			return false
		case hkHost:
			hosts++
			if hosts > 1 || !validHost(value) {
				return false
			}
			r.host = value
		case hkConnection:
			if !r.parseConnection(value) {
				return false
			}
		case hkTe:
			if hasTokenBytes(value, "trailers") {
				r.te = true
			}
		case hkContentLength:
			// One plain decimal length; anything else (a list, a sign,
			// repeats) is net/http's to accept or refuse.
			lengths++
			if lengths > 1 || len(value) == 0 || len(value) > 18 {
				return false
			}
			for _, d := range value {
				if d < '0' || d > '9' {
					return false
				}
				r.clen = r.clen*10 + int64(d-'0')
			}
		case hkIdempotencyKey:
			r.idemKey = true
		}
		r.hdrs = append(r.hdrs, hdrLine{name: name, value: value, kind: kind})
	}
	return hosts == 1
}

// parseTarget splits an origin-form target into a clean path and a query
// that the Handler would forward unchanged, or reports false.
func (r *fastRequest) parseTarget() bool {
	t := r.target
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	p := t
	r.query, r.hasQuery = nil, false
	if i := bytes.IndexByte(t, '?'); i >= 0 {
		p, r.query, r.hasQuery = t[:i], t[i+1:], true
	}
	for _, ch := range p {
		if !pathByte[ch] {
			return false
		}
	}
	r.path = p
	if !isCleanPath(bstr(p)) {
		return false
	}
	if r.hasQuery {
		for _, ch := range r.query {
			if !queryByte[ch] {
				return false
			}
		}
		if !cleanQuery(bstr(r.query)) {
			return false
		}
	}
	return true
}

// parseConnection accepts a Connection value naming only "keep-alive" and
// "close"; other options name hop-by-hop fields, which net/http removes.
func (r *fastRequest) parseConnection(v []byte) bool {
	for len(v) > 0 {
		item := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		item = trimOWS(item)
		switch {
		case len(item) == 0:
		case bytes.EqualFold(item, []byte("close")):
			r.close = true
		case bytes.EqualFold(item, []byte("keep-alive")):
		default:
			return false
		}
	}
	return true
}

// pathByte holds the bytes a fast-path path may contain: unreserved,
// sub-delims, ':', '@' and '/'. A '%' (an escape) sends the request to
// net/http, whose URL parsing the Handler's path cleaning relies on.
var pathByte = byteTable("-._~!$&'()*+,;=:@/")

// queryByte holds the bytes a fast-path query may contain: those of a path,
// '?' and '%' (cleanQuery checks the escapes).
var queryByte = func() (t [256]bool) {
	t = pathByte
	t['?'] = true
	t['%'] = true
	return t
}()

// tokenByte holds the bytes of an RFC 9110 token (field names).
var tokenByte = byteTable("!#$%&'*+-.^_`|~")

// byteTable returns the table of ASCII letters, digits and the bytes of
// extra.
func byteTable(extra string) (t [256]bool) {
	for c := range t {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	for i := 0; i < len(extra); i++ {
		t[extra[i]] = true
	}
	return t
}

func validFieldName(b []byte) bool {
	for _, ch := range b {
		if !tokenByte[ch] {
			return false
		}
	}
	return true
}

// validFieldValue reports whether a trimmed field value holds only visible
// characters, spaces, tabs and obs-text.
func validFieldValue(b []byte) bool {
	for _, ch := range b {
		if ch < ' ' && ch != '\t' || ch == 0x7f {
			return false
		}
	}
	return true
}

// validHost reports whether a Host value is a plain host[:port]: letters,
// digits, '.', '-', '_', ':' and brackets for IPv6 literals.
func validHost(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, ch := range b {
		switch {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9':
		case ch == '.' || ch == '-' || ch == '_' || ch == ':' || ch == '[' || ch == ']':
		default:
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// hasTokenBytes is hasToken for one value held as bytes.
func hasTokenBytes(v []byte, token string) bool {
	for len(v) > 0 {
		item := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		if i := bytes.IndexByte(item, ';'); i >= 0 {
			item = item[:i]
		}
		if bytes.EqualFold(trimOWS(item), []byte(token)) {
			return true
		}
	}
	return false
}

// bstr views b as a string without copying. The string must not outlive
// the request: b points into the connection's read buffer.
func bstr(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// lookup returns the value of the first field called name (canonical or
// not; compared case-insensitively), and whether there is one.
func (r *fastRequest) lookup(name string) ([]byte, bool) {
	for i := range r.hdrs {
		if len(r.hdrs[i].name) == len(name) && bytes.EqualFold(r.hdrs[i].name, []byte(name)) {
			return r.hdrs[i].value, true
		}
	}
	return nil, false
}

// values returns every value of the fields called name, as strings that
// must not outlive the request; it allocates only for a second value.
func (r *fastRequest) values(name string, into []string) []string {
	for i := range r.hdrs {
		if len(r.hdrs[i].name) == len(name) && bytes.EqualFold(r.hdrs[i].name, []byte(name)) {
			into = append(into, bstr(r.hdrs[i].value))
		}
	}
	return into
}
