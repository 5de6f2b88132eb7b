package proxy

import (
	"fmt"
	"net/textproto"
	"strings"
)

// headerPlan is a route's edits of the outbound request's header fields,
// decided once when the route is compiled and applied by both paths
// (entry.shape on the net/http side, fconn.buildOutbound on the fast
// path): the fields the route removes and sets, and which of the
// forwarding fields the gateway generates are sent — those the route
// neither removes nor sets.
type headerPlan struct {
	remove []string        // canonical names
	set    []headerSetting // canonical names, values trimmed as net/http writes them
	// prefix is the X-Forwarded-Prefix value of a route that strips its
	// path prefix (nil: it does not), shared by every request: never
	// modified.
	prefix []string
	gen    genField // the generated fields sent
}

type headerSetting struct {
	name  string   // canonical
	value []string // shared by every request: len 1, cap 1, never modified
	// none: the setting is an empty User-Agent, which means "send no
	// User-Agent" (net/http's rule; the fast path writes nothing).
	none bool
}

// genField is a set of the forwarding fields the gateway generates.
type genField uint8

const (
	genXFF genField = 1 << iota
	genXFHost
	genXFProto
	genRealIP
	genPrefix
)

// generated names the generated fields.
var generated = []struct {
	name string
	f    genField
}{
	{"X-Forwarded-For", genXFF},
	{"X-Forwarded-Host", genXFHost},
	{"X-Forwarded-Proto", genXFProto},
	{"X-Real-Ip", genRealIP},
	{"X-Forwarded-Prefix", genPrefix},
}

// compileHeaderPlan validates and compiles r's header edits; prefix is
// its compiled path prefix.
func compileHeaderPlan(r *Route, prefix string, pol *policies) (headerPlan, []error) {
	var p headerPlan
	var errs []error
	if pol != nil {
		// The credential stays at the gateway unless forwarded; headers
		// claims go in are the gateway's, whatever the client sent.
		if pol.auth != nil && !pol.auth.ForwardCredentials {
			p.remove = append(p.remove, pol.authHeader)
		}
		for _, c := range pol.claims {
			p.remove = append(p.remove, c[1])
		}
	}
	for _, name := range r.RemoveHeaders {
		canon := textproto.CanonicalMIMEHeaderKey(name)
		switch {
		case !isToken(name):
			errs = append(errs, fmt.Errorf("remove header %q is not a valid header name", name))
		case reservedField(canon):
			errs = append(errs, fmt.Errorf("remove header %q: a hop-by-hop, framing, Host or Expect field is the proxy's to decide", name))
		default:
			p.remove = append(p.remove, canon)
		}
	}
	for _, name := range sortedKeys(r.SetHeaders) {
		v := r.SetHeaders[name]
		canon := textproto.CanonicalMIMEHeaderKey(name)
		switch {
		case !isToken(name):
			errs = append(errs, fmt.Errorf("set header %q is not a valid header name", name))
		case reservedField(canon):
			errs = append(errs, fmt.Errorf("set header %q: a hop-by-hop, framing, Host or Expect field is the proxy's to decide (Host: pass_host_header)", name))
		case strings.ContainsAny(v, "\r\n\x00"):
			errs = append(errs, fmt.Errorf("set header %q: value contains CR, LF or NUL", name))
		default:
			v = textproto.TrimString(v)
			p.set = append(p.set, headerSetting{name: canon, value: []string{v}, none: canon == "User-Agent" && v == ""})
		}
	}
	if r.StripPrefix && prefix != "" {
		p.prefix = []string{prefix}
	}
	for _, g := range generated {
		if !p.edits(g.name) {
			p.gen |= g.f
		}
	}
	return p, errs
}

// sends reports whether the generated field f is sent.
func (p *headerPlan) sends(f genField) bool { return p.gen&f != 0 }

// edits reports whether the route removes or sets the field called name,
// so that the inbound or generated field is not sent.
func (p *headerPlan) edits(name string) bool {
	for _, n := range p.remove {
		if strings.EqualFold(name, n) {
			return true
		}
	}
	for i := range p.set {
		if strings.EqualFold(name, p.set[i].name) {
			return true
		}
	}
	return false
}
