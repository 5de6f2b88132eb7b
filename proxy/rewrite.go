package proxy

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
)

// Shared header values. They are never modified: a Header.Add on them
// appends to a copy, as their capacity is 1.
var (
	protoHTTP  = []string{"http"}
	protoHTTPS = []string{"https"}
)

// rewrite is a forwarded request's ReverseProxy.Rewrite: it shapes the outbound
// request. ReverseProxy has already removed hop-by-hop headers (including
// those named by Connection) and every inbound Forwarded and X-Forwarded-*
// header from pr.Out. The outbound URL's scheme and host are set per attempt
// by RoundTrip from the picked endpoint; until then the host is empty, so a
// request can never go to a host taken from the request.
func (e *entry) rewrite(pr *httputil.ProxyRequest, ex *exchange) {
	out := pr.Out
	out.URL.Scheme = "http"
	out.URL.Host = ""
	out.URL.User = nil // userinfo of an absolute-form target is not forwarded
	if pr.In.Trailer != nil {
		// The server fills the inbound trailer map in place when the body
		// is read to its end, which the transport does before it writes
		// trailers; the clone ReverseProxy made holds only the keys.
		out.Trailer = pr.In.Trailer
	}
	e.shape(out, pr.In, ex)
}

// shape applies the route's edits to the outbound request out of in, whose
// hop-by-hop and inbound forwarding headers are already gone: the
// forwarding headers, the prefix strip, the header removals and settings,
// and the Host.
func (e *entry) shape(out, in *http.Request, ex *exchange) {
	p := &e.plan
	setForwarded(out.Header, in, ex, p)
	if p.prefix != nil {
		out.URL.Path, out.URL.RawPath = stripPrefix(out.URL.Path, out.URL.RawPath, e.prefix)
		if p.sends(genPrefix) {
			out.Header["X-Forwarded-Prefix"] = p.prefix
		}
	}
	for _, name := range p.remove {
		delete(out.Header, name)
	}
	for _, s := range p.set {
		out.Header[s.name] = s.value
	}
	if ex.claims != nil {
		for _, c := range e.pol.claims {
			if v, ok := ex.claims.String(c[0]); ok && validFieldValue(sbytes(v)) {
				out.Header[c[1]] = []string{v}
			}
		}
	}
	if e.route.Upstream.PassHostHeader {
		out.Host = in.Host
	} else {
		out.Host = "" // the transport sends the URL's host: the endpoint
	}
}

// setForwarded sets X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto and
// X-Real-IP on the outbound header h. The inbound values are kept (and
// X-Forwarded-For appended to) only when the direct peer is a trusted proxy;
// otherwise a client could claim any address. An untrusted
// X-Forwarded-Prefix (which backends use to build links) is removed too; a
// route that strips its prefix then sets its own. A field the route's plan
// p does not send (the route removes or sets it) is not generated.
func setForwarded(h http.Header, in *http.Request, ex *exchange, p *headerPlan) {
	peer := peerHost(in.RemoteAddr)
	// One backing array for the four values: one allocation, and each
	// value's capacity is 1 so that an append cannot overwrite the next.
	vals := make([]string, 4)
	xff := peer
	host := in.Host
	proto := protoHTTP
	if in.TLS != nil {
		proto = protoHTTPS
	}
	if !ex.trusted {
		delete(h, "X-Forwarded-Prefix")
	} else {
		if prior := in.Header["X-Forwarded-For"]; len(prior) > 0 {
			xff = strings.Join(prior, ", ") + ", " + peer
		}
		if v := in.Header["X-Forwarded-Host"]; len(v) > 0 && v[0] != "" {
			host = v[0]
		}
		if v := in.Header["X-Forwarded-Proto"]; len(v) > 0 && v[0] != "" {
			proto = v[:1:1]
		}
	}
	if peer != "" && p.sends(genXFF) {
		vals[0] = xff
		h["X-Forwarded-For"] = vals[0:1:1]
	}
	if host != "" && p.sends(genXFHost) {
		vals[1] = host
		h["X-Forwarded-Host"] = vals[1:2:2]
	}
	if p.sends(genXFProto) {
		h["X-Forwarded-Proto"] = proto
	}
	if ex.clientIP != "" && p.sends(genRealIP) {
		vals[2] = ex.clientIP
		h["X-Real-Ip"] = vals[2:3:3]
	} else {
		delete(h, "X-Real-Ip")
	}
}

// peerHost returns the IP of a "ip:port" RemoteAddr, or "" if it has none.
func peerHost(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return ""
	}
	return host
}

// clientIP returns the address of the client whose direct peer is peer
// and whose header fields are src, and whether peer is a trusted proxy, on
// either path. When it is, the client is the rightmost X-Forwarded-For
// entry that is not itself a trusted proxy (each trusted proxy appended the
// address it received the request from); an entry that is not an IP
// address ends the walk. Otherwise the client is the peer. It allocates
// nothing.
func clientIP(peer string, src headerSource, trusted []netip.Prefix) (string, bool) {
	if len(trusted) == 0 || !isTrusted(peer, trusted) {
		return peer, false
	}
	n := 0
	for _, ok := src.value("X-Forwarded-For", n); ok; _, ok = src.value("X-Forwarded-For", n) {
		n++
	}
	client := peer
	for i := n - 1; i >= 0; i-- {
		v, _ := src.value("X-Forwarded-For", i)
		for v != "" {
			item := v
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				item, v = v[j+1:], v[:j]
			} else {
				v = ""
			}
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			if _, err := netip.ParseAddr(item); err != nil {
				return client, true
			}
			client = item
			if !isTrusted(item, trusted) {
				return client, true
			}
		}
	}
	return client, true
}

func isTrusted(ip string, trusted []netip.Prefix) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
