package proxy

import (
	"net/http"
	"strconv"
)

// buildOutbound writes the outbound request head into c.out, with the
// Host value left out at c.hostAt when it may differ per attempt (see
// fconn.out). It applies
// what ReverseProxy, shape and setForwarded do on the net/http side: the
// request line and framing, the inbound fields without the hop-by-hop and
// forwarding ones, then the forwarding fields and the route's settings
// (headerPlan).
func (c *fconn) buildOutbound(e *entry, ex *exchange, path string) {
	b := c.appendRequestLine(c.out[:0], e, path)
	b, fwd := c.appendInbound(b, e, ex)
	b = c.appendForwarding(b, e, ex, fwd)
	if ex.claims != nil {
		b = appendClaims(b, e.pol, ex.claims)
	}
	c.out = append(b, "\r\n"...)
}

// appendClaims appends the verified claims the route forwards, each in its
// header (whose inbound fields the plan removed).
func appendClaims(b []byte, p *policies, claims Claims) []byte {
	for _, cl := range p.claims {
		if v, ok := claims.String(cl[0]); ok && validFieldValue(sbytes(v)) {
			b = appendField(b, cl[1], v)
		}
	}
	return b
}

// appendRequestLine appends the request line with the path the route
// sends, the Host field (the client's value when the route passes it,
// else left out at c.hostAt) and the framing.
func (c *fconn) appendRequestLine(b []byte, e *entry, path string) []byte {
	r := &c.req
	b = append(b, r.method...)
	b = append(b, ' ')
	stripping := e.plan.prefix != nil
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
	if e.route.Upstream.PassHostHeader {
		b = append(b, r.host...)
		c.hostAt = -1
	} else {
		c.hostAt = len(b)
	}
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
	return b
}

// inboundForwarding is what the client's forwarding fields said: read
// only when the peer is a trusted proxy.
type inboundForwarding struct {
	xff     int // X-Forwarded-For fields
	xfHost  []byte
	xfProto []byte
}

// appendInbound appends the inbound fields that are forwarded as they
// are: not the framing, Host, hop-by-hop or forwarding fields, not a
// second or empty User-Agent (net/http sends the first), not those the
// route removes or sets. It returns the inbound forwarding values.
func (c *fconn) appendInbound(b []byte, e *entry, ex *exchange) ([]byte, inboundForwarding) {
	var fwd inboundForwarding
	uaSeen := false
	for i := range c.req.hdrs {
		l := &c.req.hdrs[i]
		switch l.kind {
		case hkHost, hkConnection, hkHop, hkTe, hkForwarded, hkXRealIP, hkContentLength, hkTransferEncoding, hkUpgrade:
			continue
		case hkXForwardedFor:
			fwd.xff++
			continue
		case hkXForwardedHost:
			if fwd.xfHost == nil {
				fwd.xfHost = l.value
			}
			continue
		case hkXForwardedProto:
			if fwd.xfProto == nil {
				fwd.xfProto = l.value
			}
			continue
		case hkXForwardedPrefix:
			if !ex.trusted || e.plan.prefix != nil {
				continue
			}
		case hkUserAgent:
			skip := uaSeen || len(l.value) == 0
			uaSeen = true
			if skip {
				continue
			}
		}
		if e.plan.edits(bstr(l.name)) {
			continue
		}
		b = appendField(b, l.name, l.value)
	}
	if c.req.te {
		b = append(b, "Te: trailers\r\n"...)
	}
	if c.req.upgrade != nil {
		// As ReverseProxy forwards a protocol switch.
		b = append(b, "Connection: Upgrade\r\n"...)
		b = appendField(b, "Upgrade", c.req.upgrade)
	}
	return b, fwd
}

// appendForwarding appends the forwarding fields the route's plan sends
// (setForwarded's rules: inbound values only from a trusted peer), then
// the route's settings.
func (c *fconn) appendForwarding(b []byte, e *entry, ex *exchange, fwd inboundForwarding) []byte {
	plan := &e.plan
	if c.peer != "" && plan.sends(genXFF) {
		b = append(b, "X-Forwarded-For: "...)
		if ex.trusted && fwd.xff > 0 {
			// The prior values, joined, then the peer.
			for i := range c.req.hdrs {
				if l := &c.req.hdrs[i]; l.kind == hkXForwardedFor {
					b = append(append(b, l.value...), ", "...)
				}
			}
		}
		b = append(append(b, c.peer...), "\r\n"...)
	}
	host := c.req.host
	if ex.trusted && len(fwd.xfHost) > 0 {
		host = fwd.xfHost
	}
	if plan.sends(genXFHost) {
		b = appendField(b, "X-Forwarded-Host", host)
	}
	proto := "http"
	if c.cc != nil && c.cc.tls {
		proto = "https"
	}
	if ex.trusted && len(fwd.xfProto) > 0 {
		proto = bstr(fwd.xfProto)
	}
	if plan.sends(genXFProto) {
		b = appendField(b, "X-Forwarded-Proto", proto)
	}
	if ex.clientIP != "" && plan.sends(genRealIP) {
		b = appendField(b, "X-Real-Ip", ex.clientIP)
	}
	if plan.prefix != nil && plan.sends(genPrefix) {
		b = appendField(b, "X-Forwarded-Prefix", plan.prefix[0])
	}
	for i := range plan.set {
		if s := &plan.set[i]; !s.none {
			b = appendField(b, s.name, s.value[0])
		}
	}
	return b
}

// appendField appends the header line "name: value".
func appendField[N, V string | []byte](b []byte, name N, value V) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}
