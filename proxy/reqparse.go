package proxy

import (
	"bytes"
	"net/http"
	"os"
	"strings"
	"unsafe"
)

// fastRequest is a request head parsed in place: every slice points into
// the connection's read buffer and is valid until the request is served.
type fastRequest struct {
	method    string // one of the constants of fastMethod
	target    []byte // the request target as sent
	path      []byte // decoded: in pathBuf when the target has escapes
	rawPath   []byte // the path as sent when it has escapes, else nil
	pathBuf   []byte // reused for decoding
	query     []byte // after '?', when hasQuery
	hasQuery  bool
	host      []byte
	close     bool  // Connection: close, or HTTP/1.0
	http10    bool  // HTTP/1.0: keep-alive only when asked for, no chunked framing
	keepAlive bool  // a Connection: keep-alive option
	te        bool  // "Te: trailers"
	idemKey   bool  // an Idempotency-Key or X-Idempotency-Key field
	clen      int64 // the body's length; for a chunked body, decoded, once read
	chunked   bool  // Transfer-Encoding: chunked
	// upgrade is the protocol a fast-path upgrade asks for (a WebSocket
	// handshake: judgeHead's rules), else nil; connUpgrade is an
	// "upgrade" option of Connection.
	upgrade     []byte
	connUpgrade bool
	hdrs        []hdrLine
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
	hkHandoff // a field that makes the request net/http's: 100-continue, trailers
	hkUpgrade // Upgrade: a protocol switch, fast only as judgeHead allows
	hkConnection
	hkHop // a hop-by-hop field removed before forwarding
	hkTe
	hkForwarded // Forwarded: removed
	hkXForwardedFor
	hkXForwardedHost
	hkXForwardedProto
	hkXForwardedPrefix
	hkXRealIP
	hkUserAgent
	hkContentLength
	hkIdempotencyKey
	hkTransferEncoding // "chunked" alone is the fast path's; anything else is net/http's
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

// kindTable maps header field names, compared case-insensitively, to
// their kinds; unlisted names are kind 0 (hkOther, rkOther). It is indexed
// by name length, so a lookup compares only names of the same length.
type kindTable [20][]namedKind

type namedKind struct {
	name []byte
	kind hdrKind
}

func newKindTable(kinds map[string]hdrKind) *kindTable {
	t := new(kindTable)
	for name, k := range kinds {
		t[len(name)] = append(t[len(name)], namedKind{[]byte(name), k})
	}
	return t
}

func (t *kindTable) kind(name []byte) hdrKind {
	if len(name) >= len(t) {
		return 0
	}
	for _, nk := range t[len(name)] {
		if bytes.EqualFold(name, nk.name) {
			return nk.kind
		}
	}
	return 0
}

// requestKinds are the request header fields the fast path treats
// specially: every hop-by-hop field is dropped, those that change the
// protocol are handed off, and the framing and forwarding fields are read.
var requestKinds = newKindTable(fieldKinds(hkHop, map[string]hdrKind{
	"Host":               hkHost,
	"Expect":             hkHandoff,
	"Upgrade":            hkUpgrade,
	"Trailer":            hkHandoff,
	"Transfer-Encoding":  hkTransferEncoding,
	"Connection":         hkConnection,
	"Te":                 hkTe,
	"Forwarded":          hkForwarded,
	"X-Forwarded-For":    hkXForwardedFor,
	"X-Forwarded-Host":   hkXForwardedHost,
	"X-Forwarded-Proto":  hkXForwardedProto,
	"X-Forwarded-Prefix": hkXForwardedPrefix,
	"X-Real-Ip":          hkXRealIP,
	"User-Agent":         hkUserAgent,
	"Content-Length":     hkContentLength,
	"Idempotency-Key":    hkIdempotencyKey,
	"X-Idempotency-Key":  hkIdempotencyKey,
}))

// fieldKinds returns special with every hop-by-hop field it does not name
// added as hop.
func fieldKinds(hop hdrKind, special map[string]hdrKind) map[string]hdrKind {
	for _, name := range hopByHop {
		if _, ok := special[name]; !ok {
			special[name] = hop
		}
	}
	return special
}

// reset empties r for the next request head (parseRequest fills it; a
// head refused before it is parsed is logged with what it holds).
func (r *fastRequest) reset() {
	r.method, r.target, r.host, r.hdrs = "", nil, nil, r.hdrs[:0]
	r.close, r.http10, r.keepAlive, r.te, r.idemKey, r.chunked = false, false, false, false, false, false
	r.clen, r.upgrade, r.connUpgrade = 0, nil, false
}

// parseRequest parses the request head b (through its empty line, every
// line ending in CRLF: readHead checked that) into c.req, which reset
// emptied, and decides on
// it: serveFast, handOff (net/http serves the request, then closes the
// connection), or a status that rejects it, the connection closed (see
// reject). The whole head is checked before a hand-off, so that net/http,
// whose parser is more lenient (it takes Content-Length with
// Transfer-Encoding, obs-fold, bare LF line ends), only ever parses heads
// these rules accept. The rules:
//
//	request line       method SP target SP version, single spaces
//	 method            not a token: 400. GET HEAD POST PUT PATCH DELETE
//	                   OPTIONS: fast; any other token (PURGE, CONNECT): handOff
//	 target            longer than MaxTargetBytes: 414. A control byte,
//	                   space or DEL: 400. "*" (asterisk-form): 400. A clean
//	                   origin-form path and query: fast; absolute-form, bytes
//	                   past ASCII, an escaped slash, an unclean path or
//	                   query: handOff (net/http and the Handler decide);
//	                   anything else: 400
//	 version           HTTP/1.1 or HTTP/1.0; another HTTP/d.d: 505; else 400
//	field lines        more than MaxHeaderCount: 431 (readHead: the head
//	                   past MaxHeaderBytes: 431, its request line: 414)
//	 obs-fold          a line starting with SP or HTAB: 400
//	 name              empty, not a token (white space before ':'): 400
//	 value             a control byte but HTAB (bare CR, NUL), DEL: 400
//	 '_' in a name     a name that, '_' read as '-', is one the gateway
//	                   acts on (framing, Host, Connection, hop-by-hop,
//	                   forwarding: X_Forwarded_For, Transfer_Encoding): 400 —
//	                   backends that fold '_' into '-' (CGI, PHP, Rack) would
//	                   read it as the real field
//	Host               two, or not host[:port]: 400; none: 400 on HTTP/1.1,
//	                   handOff on HTTP/1.0
//	Content-Length     not 1 to 18 digits, or a second one (even equal): 400;
//	                   above MaxBodyBytes: 413
//	Transfer-Encoding  a second one, or any on HTTP/1.0: 400. With
//	                   Content-Length: 400 (RFC 9112 §6.3 allows it to be
//	                   read as chunked with the connection closed after the
//	                   answer; refusing it, as nginx does, forwards nothing
//	                   a length-reading hop before us may have split
//	                   differently). Other than "chunked": 501
//	Expect, Trailer    handOff (100-continue, announced trailers);
//	                   Connection naming other options than close,
//	                   keep-alive and upgrade: handOff
//	Upgrade            served here (a tunnel once the endpoint answers
//	                   101, tunnel.go) only when it is one field naming
//	                   one protocol token, Connection names upgrade, the
//	                   method is GET on HTTP/1.1, and there is no body
//	                   (Content-Length or Transfer-Encoding): a WebSocket
//	                   handshake. Any other use of Upgrade, or a
//	                   Connection naming upgrade without it: handOff
//
// The chunked body's rules are chunkScan's.
func (c *fconn) parseRequest(b []byte) int {
	line, b := cutLine(b)
	handoff, v := c.parseRequestLine(line)
	if v != serveFast {
		return v
	}
	var n fieldCounts
	fieldsHandoff, v := c.parseFields(b, &n)
	if v != serveFast {
		return v
	}
	return c.judgeHead(n, handoff || fieldsHandoff)
}

// parseRequestLine parses the request line (without its CRLF) into c.req:
// a verdict other than serveFast refuses the request; handoff reports a
// method or target net/http serves.
func (c *fconn) parseRequestLine(line []byte) (handoff bool, verdict int) {
	r := &c.req
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !validFieldName(line[:sp]) {
		return false, c.refuseHead(http.StatusBadRequest, "bad method")
	}
	method := line[:sp]
	var fast bool
	if r.method, fast = fastMethod(method); !fast {
		handoff = true
	}
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp < 0 {
		return false, c.refuseHead(http.StatusBadRequest, "bad request line")
	}
	switch v := rest[sp+1:]; {
	case string(v) == "HTTP/1.1":
	case string(v) == "HTTP/1.0":
		r.http10 = true
	case len(v) == 8 && string(v[:5]) == "HTTP/" && isDigit(v[5]) && v[6] == '.' && isDigit(v[7]):
		return false, c.refuseHead(http.StatusHTTPVersionNotSupported, "unsupported HTTP version")
	default:
		return false, c.refuseHead(http.StatusBadRequest, "bad HTTP version")
	}
	r.target = rest[:sp]
	if v := c.checkTarget(string(method) == http.MethodConnect); v != serveFast {
		if v != handOff {
			return false, v
		}
		handoff = true
	}
	return handoff, serveFast
}

// fieldCounts counts the fields parseFields allows once at most.
type fieldCounts struct{ hosts, lengths, codings, upgrades int }

// parseFields parses the field lines b (through the empty line) into
// c.req, counting in n: a verdict other than serveFast refuses the
// request; handoff reports a field that makes the request net/http's.
func (c *fconn) parseFields(b []byte, n *fieldCounts) (handoff bool, verdict int) {
	r := &c.req
	for len(b) > 2 {
		if len(r.hdrs) == c.s.cfg.MaxHeaderCount {
			return false, c.refuseHead(http.StatusRequestHeaderFieldsTooLarge, "too many header fields")
		}
		var line []byte
		line, b = cutLine(b)
		name, value, ok := splitField(line)
		if !ok {
			return false, c.refuseHead(http.StatusBadRequest, "bad header field") // no name, a space before ':', obs-fold, bad bytes
		}
		kind := requestKinds.kind(name)
		if kind == hkOther && bytes.IndexByte(name, '_') >= 0 && underscoreAlias(name) {
			return false, c.refuseHead(http.StatusBadRequest, "underscore alias of a header field the gateway acts on")
		}
		switch kind {
		case hkHandoff:
			handoff = true
		case hkUpgrade:
			n.upgrades++
			r.upgrade = value
		case hkHost:
			n.hosts++
			if n.hosts > 1 || !validHost(value) {
				return false, c.refuseHead(http.StatusBadRequest, "bad or repeated Host")
			}
			r.host = value
		case hkConnection:
			if !r.parseConnection(value) {
				handoff = true
			}
		case hkTe:
			if hasTokenBytes(value, "trailers") {
				r.te = true
			}
		case hkContentLength:
			n.lengths++
			if n.lengths > 1 || !r.parseContentLength(value) {
				return false, c.refuseHead(http.StatusBadRequest, "bad or repeated Content-Length")
			}
		case hkIdempotencyKey:
			r.idemKey = true
		case hkTransferEncoding:
			n.codings++
			if n.codings > 1 || r.http10 {
				return false, c.refuseHead(http.StatusBadRequest, "repeated Transfer-Encoding, or one on HTTP/1.0")
			}
			r.chunked = bytes.EqualFold(value, []byte("chunked"))
		}
		r.hdrs = append(r.hdrs, hdrLine{name: name, value: value, kind: kind})
	}
	return handoff, serveFast
}

// parseContentLength sets r.clen from a Content-Length value: 1 to 18
// digits, nothing else.
func (r *fastRequest) parseContentLength(value []byte) bool {
	if len(value) == 0 || len(value) > 18 {
		return false
	}
	for _, d := range value {
		if !isDigit(d) {
			return false
		}
		r.clen = r.clen*10 + int64(d-'0')
	}
	return true
}

// judgeHead decides on a head whose fields were parsed and counted in n:
// the rules across fields, then serveFast or handOff.
func (c *fconn) judgeHead(n fieldCounts, handoff bool) int {
	r := &c.req
	switch {
	case n.codings > 0 && n.lengths > 0:
		return c.refuseHead(http.StatusBadRequest, "Content-Length with Transfer-Encoding")
	case n.codings > 0 && !r.chunked:
		return c.refuseHead(http.StatusNotImplemented, "transfer coding other than chunked")
	case n.hosts == 0 && !r.http10:
		return c.refuseHead(http.StatusBadRequest, "missing Host")
	case r.clen > c.s.cfg.MaxBodyBytes:
		return c.refuseHead(http.StatusRequestEntityTooLarge, "Content-Length over the body limit")
	}
	if r.http10 {
		// HTTP/1.0 closes unless asked to keep alive; net/http keeps it
		// alive then even when "close" is named too.
		r.close = !r.keepAlive
	}
	if handoff || n.hosts == 0 {
		return handOff
	}
	if n.upgrades > 0 || r.connUpgrade {
		if n.upgrades != 1 || !r.connUpgrade || r.method != http.MethodGet || r.http10 ||
			n.lengths > 0 || n.codings > 0 || !isProtocol(r.upgrade) || c.cc == nil || !c.cc.parkable {
			return handOff
		}
	}
	return serveFast
}

// isProtocol reports whether v is one protocol of an Upgrade field: a
// token, optionally "/" and a version token (RFC 9110 §7.8).
func isProtocol(v []byte) bool {
	name, version, versioned := bytes.Cut(v, []byte("/"))
	return validFieldName(name) && (!versioned || validFieldName(version))
}

// checkTarget applies the request target's rules (parseRequest) and, for
// a clean origin-form target, splits it (parseTarget).
func (c *fconn) checkTarget(connect bool) int {
	t := c.req.target
	switch {
	case len(t) > c.s.cfg.MaxTargetBytes:
		return c.refuseHead(http.StatusRequestURITooLong, "request target too long")
	case len(t) == 0:
		return c.refuseHead(http.StatusBadRequest, "empty request target")
	}
	ascii := true
	for _, ch := range t {
		switch {
		case ch <= ' ' || ch == 0x7f:
			return c.refuseHead(http.StatusBadRequest, "control byte or space in the request target")
		case ch >= 0x80:
			ascii = false
		}
	}
	switch {
	case t[0] == '/':
		if ascii && c.req.parseTarget() {
			return serveFast
		}
		return handOff
	case hasPrefixFold(t, "http://") || hasPrefixFold(t, "https://"):
		return handOff // absolute-form: the Handler routes it by our routes only
	case connect && !bytes.ContainsAny(t, "/?#"):
		return handOff // authority-form: the Handler refuses CONNECT
	}
	return c.refuseHead(http.StatusBadRequest, "request target form not supported")
}

func isDigit(ch byte) bool { return '0' <= ch && ch <= '9' }

// hasPrefixFold reports whether b starts with prefix, ignoring ASCII case.
func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && bytes.EqualFold(b[:len(prefix)], []byte(prefix))
}

// underscoreAlias reports whether the field name, which holds a '_', names
// a field the gateway acts on once each '_' is read as '-'.
func underscoreAlias(name []byte) bool {
	var buf [24]byte
	if len(name) > len(buf) {
		return false // longer than every name in requestKinds
	}
	alias := buf[:len(name)]
	for i, ch := range name {
		if ch == '_' {
			ch = '-'
		}
		alias[i] = ch
	}
	switch requestKinds.kind(alias) {
	case hkOther, hkUserAgent, hkIdempotencyKey:
		return false
	}
	return true
}

// parseTarget splits an origin-form target into a clean path and a query
// that the Handler would forward unchanged, or reports false. A path with
// escapes is decoded for routing and forwarded as sent, as the Handler
// forwards a URL whose RawPath is a valid encoding of its Path; one with an
// escaped slash is net/http's, whose segment-wise cleaning of both forms
// decides on it.
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
	escaped := false
	for _, ch := range p {
		if !pathByte[ch] {
			if ch != '%' {
				return false
			}
			escaped = true
		}
	}
	r.rawPath = nil
	if escaped {
		d, ok := unescapePath(r.pathBuf[:0], p)
		if !ok {
			return false
		}
		r.pathBuf, r.rawPath, p = d, p, d
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

// unescapePath appends the decoding of the escaped path p to dst. It
// reports false for a malformed escape and for an escaped slash.
func unescapePath(dst, p []byte) ([]byte, bool) {
	for i := 0; i < len(p); i++ {
		ch := p[i]
		if ch == '%' {
			if i+2 >= len(p) {
				return dst, false
			}
			hi, ok1 := unhex(p[i+1])
			lo, ok2 := unhex(p[i+2])
			if !ok1 || !ok2 {
				return dst, false
			}
			ch = hi<<4 | lo
			if ch == '/' {
				return dst, false
			}
			i += 2
		}
		dst = append(dst, ch)
	}
	return dst, true
}

// parseConnection reads a Connection value naming only "keep-alive" and
// "close"; it reports false for other options, which name hop-by-hop
// fields net/http removes.
func (r *fastRequest) parseConnection(v []byte) bool {
	for len(v) > 0 {
		var item []byte
		item, v = cutItem(v)
		switch {
		case len(item) == 0:
		case bytes.EqualFold(item, []byte("close")):
			r.close = true
		case bytes.EqualFold(item, []byte("keep-alive")):
			r.keepAlive = true
		case bytes.EqualFold(item, []byte("upgrade")):
			r.connUpgrade = true
		default:
			return false
		}
	}
	return true
}

// pathByte holds the bytes a fast-path path may contain besides escapes:
// unreserved, sub-delims, ':', '@' and '/'.
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

// cutLine returns the first line of a head headEnd accepted (every line
// ends in CRLF) without its CRLF, and the rest.
func cutLine(b []byte) (line, rest []byte) {
	eol := bytes.IndexByte(b, '\n')
	return b[:eol-1], b[eol+1:]
}

// splitField splits a header line (without its CRLF) into its name and
// its value without surrounding white space. ok is false when the line has
// no valid name before ':' (a space before it, a folded line) or its value
// holds bytes a field may not.
func splitField(line []byte) (name, value []byte, ok bool) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 || !validFieldName(line[:colon]) {
		return nil, nil, false
	}
	name, value = line[:colon], trimOWS(line[colon+1:])
	return name, value, validFieldValue(value)
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
		var item []byte
		item, v = cutItem(v)
		if i := bytes.IndexByte(item, ';'); i >= 0 {
			item = trimOWS(item[:i])
		}
		if bytes.EqualFold(item, []byte(token)) {
			return true
		}
	}
	return false
}

// cutItem returns the first item of a comma-separated list, without its
// surrounding white space, and the rest of the list.
func cutItem(v []byte) (item, rest []byte) {
	if i := bytes.IndexByte(v, ','); i >= 0 {
		return trimOWS(v[:i]), v[i+1:]
	}
	return trimOWS(v), nil
}

// sameName reports whether the field name a is b, compared
// case-insensitively.
func sameName(a []byte, b string) bool {
	return len(a) == len(b) && bytes.EqualFold(a, []byte(b))
}

// bstr views b as a string without copying. The string must not outlive
// the request: b points into the connection's read buffer.
func bstr(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// sbytes views s as bytes without copying, for functions that take bytes
// and neither keep nor modify them.
func sbytes(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// has and value make a fastRequest a headerSource.
func (r *fastRequest) has(name, value string) bool {
	for i := range r.hdrs {
		if l := &r.hdrs[i]; sameName(l.name, name) && (value == "" || string(l.value) == value) {
			return true
		}
	}
	return false
}

func (r *fastRequest) value(name string, i int) (string, bool) {
	for k := range r.hdrs {
		if sameName(r.hdrs[k].name, name) {
			if i == 0 {
				return bstr(r.hdrs[k].value), true
			}
			i--
		}
	}
	return "", false
}

// queryReencoded is set when GODEBUG changes urlmaxqueryparams: then
// ReverseProxy re-encodes every query, and requests with one take it.
var queryReencoded = strings.Contains(os.Getenv("GODEBUG"), "urlmaxqueryparams")

// maxQueryParams is the number of query parameters past which ReverseProxy
// re-encodes a query (net/url's default limit).
const maxQueryParams = 10000

// cleanQuery reports whether ReverseProxy would send query q unchanged: no
// ';', only valid %-escapes, not too many parameters.
func cleanQuery(q string) bool {
	if queryReencoded || strings.Count(q, "&")+1 > maxQueryParams {
		return false
	}
	for i := 0; i < len(q); {
		switch q[i] {
		case ';':
			return false
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				return false
			}
			i += 3
		default:
			i++
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
