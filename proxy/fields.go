package proxy

// hopByHop are the hop-by-hop fields (RFC 9110 §7.6.1, and those
// httputil.ReverseProxy removes): they describe one connection, so neither
// path forwards them in either direction ("Te: trailers" is passed on by
// both). The fast path's field tables (requestKinds, responseKinds) are
// built from this list; ReverseProxy applies its own, the same.
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// reservedField reports whether a route may not set or remove the field
// called name (canonical): a hop-by-hop field, the framing (Content-Length),
// Host (Upstream.PassHostHeader decides it) or Expect. Setting one would
// change how the message is delimited or which protocol is spoken, and
// each path would do it differently.
func reservedField(name string) bool {
	switch name {
	case "Content-Length", "Host", "Expect":
		return true
	}
	return isHopByHop(name)
}

// fastRoute reports whether the fast path may serve route r's requests at
// all: its upstream's transport is a *Transport speaking plain HTTP/1.1,
// whose connection pools the fast path writes to. Which of those requests it serves is parseRequest's
// decision, per request.
func fastRoute(r *Route) bool {
	t, ok := r.Upstream.Transport.(*Transport)
	return ok && t.fast()
}

// isHopByHop reports whether the canonical name is in hopByHop.
func isHopByHop(name string) bool {
	for _, h := range hopByHop {
		if name == h {
			return true
		}
	}
	return false
}
