package proxy

import (
	"net/http"
	"strconv"
)

// buildOutbound writes the outbound request head into c.out, with the
// Host value left out at c.hostAt: it may differ per attempt. It applies
// what ReverseProxy, shape and setForwarded do on the net/http side.
func (c *fconn) buildOutbound(e *entry, ex *exchange, path string) {
	r := &c.req
	b := c.out[:0]
	b = append(b, r.method...)
	b = append(b, ' ')
	plan := &e.plan
	stripping := plan.prefix != nil
	switch {
	case stripping && r.rawPath != nil:
		_, raw := stripPrefix(path, bstr(r.rawPath), e.prefix)
		b = append(b, raw...)
	case stripping:
		p, _ := stripPrefix(path, "", e.prefix)
		b = append(b, p...)
	case r.rawPath != nil:
		b = append(b, r.rawPath...)
	default:
		b = append(b, path...)
	}
	if r.hasQuery {
		b = append(b, '?')
		b = append(b, r.query...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	c.hostAt = len(b)
	b = append(b, "\r\n"...)
	switch {
	case r.chunked:
		// The body goes as it came, its framing checked.
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case r.clen > 0, r.method == http.MethodPost, r.method == http.MethodPut, r.method == http.MethodPatch:
		// As net/http's transport: a length whenever there is a body or
		// the method expects one.
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, r.clen, 10)
		b = append(b, "\r\n"...)
	}

	var xffPrior, xfHost, xfProto []byte
	nPrior := 0
	uaSeen := false
	for i := range r.hdrs {
		l := &r.hdrs[i]
		switch l.kind {
		case hkHost, hkConnection, hkHop, hkTe, hkForwarded, hkXRealIP, hkContentLength, hkTransferEncoding:
			continue
		case hkXForwardedFor:
			if nPrior > 0 {
				xffPrior = append(xffPrior, ", "...)
			}
			xffPrior = append(xffPrior, l.value...)
			nPrior++
			continue
		case hkXForwardedHost:
			if xfHost == nil {
				xfHost = l.value
			}
			continue
		case hkXForwardedProto:
			if xfProto == nil {
				xfProto = l.value
			}
			continue
		case hkXForwardedPrefix:
			if !ex.trusted || stripping {
				continue
			}
		case hkUserAgent:
			// The first User-Agent decides, as in writeRequest: an
			// empty one is sent as none.
			if uaSeen || len(l.value) == 0 {
				uaSeen = true
				continue
			}
			uaSeen = true
		}
		if plan.edits(bstr(l.name)) {
			continue
		}
		b = appendField(b, l.name, l.value)
	}
	if r.te {
		b = append(b, "Te: trailers\r\n"...)
	}
	// setForwarded.
	if c.peer != "" && plan.sends(genXFF) {
		if ex.trusted && nPrior > 0 {
			xffPrior = append(append(xffPrior, ", "...), c.peer...)
			b = appendField(b, "X-Forwarded-For", xffPrior)
		} else {
			b = appendField(b, "X-Forwarded-For", c.peer)
		}
	}
	host := r.host
	if ex.trusted && len(xfHost) > 0 {
		host = xfHost
	}
	if plan.sends(genXFHost) {
		b = appendField(b, "X-Forwarded-Host", host)
	}
	proto := []byte("http")
	if ex.trusted && len(xfProto) > 0 {
		proto = xfProto
	}
	if plan.sends(genXFProto) {
		b = appendField(b, "X-Forwarded-Proto", proto)
	}
	if ex.clientIP != "" && plan.sends(genRealIP) {
		b = appendField(b, "X-Real-Ip", ex.clientIP)
	}
	if stripping && plan.sends(genPrefix) {
		b = appendField(b, "X-Forwarded-Prefix", plan.prefix[0])
	}
	for i := range plan.set {
		if s := &plan.set[i]; !s.none {
			b = appendField(b, s.name, s.value[0])
		}
	}
	b = append(b, "\r\n"...)
	c.out = b
}

// appendField appends the header line "name: value".
func appendField[N, V string | []byte](b []byte, name N, value V) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}
