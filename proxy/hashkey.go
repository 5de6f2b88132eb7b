package proxy

import (
	"fmt"
	"net/textproto"
	"strings"
)

// hashKind is what a route's balancer key is taken from (Route.HashOn).
type hashKind uint8

const (
	hashNone hashKind = iota
	hashClientIP
	hashHeader
	hashCookie
	hashPath
)

// hashSpec is a parsed Route.HashOn.
type hashSpec struct {
	kind hashKind
	name string // canonical header name, or cookie name
}

// parseHashOn parses "client_ip", "header:NAME", "cookie:NAME", "path" or "".
func parseHashOn(s string) (hashSpec, error) {
	kind, name, hasName := strings.Cut(s, ":")
	switch kind {
	case "":
		if hasName {
			break
		}
		return hashSpec{}, nil
	case "client_ip", "path":
		if hasName {
			return hashSpec{}, fmt.Errorf("hash_on %q: %q takes no name", s, kind)
		}
		if kind == "path" {
			return hashSpec{kind: hashPath}, nil
		}
		return hashSpec{kind: hashClientIP}, nil
	case "header", "cookie":
		if !isToken(name) {
			return hashSpec{}, fmt.Errorf("hash_on %q: want %s:NAME with a valid %s name", s, kind, kind)
		}
		if kind == "header" {
			return hashSpec{kind: hashHeader, name: textproto.CanonicalMIMEHeaderKey(name)}, nil
		}
		return hashSpec{kind: hashCookie, name: name}, nil
	}
	return hashSpec{}, fmt.Errorf("hash_on %q is not a hash key (valid: client_ip, header:NAME, cookie:NAME, path)", s)
}

// key returns the balancer key of a request with header fields src, whose
// cleaned path is path and whose client address is clientIP, on either
// path. It allocates nothing; the key may point into src's buffer.
func (h hashSpec) key(src headerSource, path, clientIP string) string {
	switch h.kind {
	case hashClientIP:
		return clientIP
	case hashHeader:
		v, _ := src.value(h.name, 0)
		return v
	case hashCookie:
		return cookieValue(src, h.name)
	case hashPath:
		return path
	}
	return ""
}

// cookieValue returns the value of the first cookie called name in the
// Cookie fields of src, without its optional double quotes, or "". Unlike
// http.Request.Cookie it parses nothing else and allocates nothing.
func cookieValue(src headerSource, name string) string {
	for i := 0; ; i++ {
		line, ok := src.value("Cookie", i)
		if !ok {
			return ""
		}
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = textproto.TrimString(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok || k != name {
				continue
			}
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v
		}
	}
}
