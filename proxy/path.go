package proxy

import (
	"net/url"
	"path"
	"strings"
)

// Path normalisation. The route is chosen on the cleaned, decoded path and
// the prefix is stripped from it, so a request cannot reach around a route
// with dot segments ("/api/../admin", "/api/%2e%2e/admin") or doubled
// slashes ("//admin"). When the request's escaped form matters (url.URL's
// RawPath is set, e.g. for "%2F" or "%2e"), it is cleaned the same way,
// segment by segment on literal slashes, and the request is rejected if the
// two cleanings disagree ("/api%2F..%2Fadmin" is one segment to a server
// that routes on the escaped path and three to one that decodes first).
// So the backend receives a path whose decoding is exactly the path that
// was routed.

// normalizePath returns the cleaned form of a request path p and its
// escaped form raw (url.URL's Path and RawPath), or ok false when the path
// is not origin-form or its escaped form is ambiguous. It allocates nothing
// when the path is already clean.
func normalizePath(p, raw string) (cleanP, cleanRaw string, ok bool) {
	if p == "" && raw == "" {
		return "/", "", true
	}
	if p == "" || p[0] != '/' {
		return "", "", false
	}
	cp := cleanPath(p)
	if cp == p {
		return p, raw, true
	}
	if raw == "" {
		return cp, "", true
	}
	cr := cleanRawPath(raw)
	if u, err := url.PathUnescape(cr); err != nil || u != cp {
		return "", "", false
	}
	if cr == cp {
		cr = "" // nothing escaped is left
	}
	return cp, cr, true
}

// cleanPath returns p, which starts with '/', with doubled slashes collapsed
// and "." and ".." segments resolved (path.Clean), keeping a trailing slash
// because backends may tell "/dir/" from "/dir". It returns p itself when p
// is already clean.
func cleanPath(p string) string {
	if isCleanPath(p) {
		return p
	}
	np := path.Clean(p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np
}

// isCleanPath reports whether p starts with '/' and has no empty, "." or
// ".." segment, except an empty last one (a trailing slash).
func isCleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	rest := p[1:]
	for {
		seg, tail, more := strings.Cut(rest, "/")
		if seg == "." || seg == ".." {
			return false
		}
		if !more {
			return true
		}
		if seg == "" {
			return false
		}
		rest = tail
	}
}

// cleanRawPath cleans an escaped path like cleanPath, splitting segments on
// literal slashes only and recognising escaped dot segments ("%2e", "%2E.").
func cleanRawPath(raw string) string {
	segs := strings.Split(strings.TrimPrefix(raw, "/"), "/")
	out := segs[:0]
	for _, s := range segs {
		switch dotSegment(s) {
		case 1:
			continue
		case 2:
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			continue
		}
		if s != "" {
			out = append(out, s)
		}
	}
	res := "/" + strings.Join(out, "/")
	if strings.HasSuffix(raw, "/") && res != "/" {
		res += "/"
	}
	return res
}

// dotSegment returns 1 for a "." segment, 2 for a ".." segment, either
// possibly escaped, and 0 otherwise.
func dotSegment(s string) int {
	dots := 0
	for i := 0; i < len(s); {
		switch {
		case s[i] == '.':
			i++
		case len(s)-i >= 3 && s[i] == '%' && s[i+1] == '2' && (s[i+2] == 'e' || s[i+2] == 'E'):
			i += 3
		default:
			return 0
		}
		dots++
	}
	if dots > 2 {
		return 0
	}
	return dots
}

// stripPrefix removes prefix, a segment-wise prefix of the clean path p
// (see hasPathPrefix), from p and from its escaped form raw: "/api/x" →
// "/x", "/api" → "/". When the boundary of the prefix falls inside an
// escape or on an escaped slash in raw, the escaped form is dropped (the
// backend then receives p's default escaping).
func stripPrefix(p, raw, prefix string) (string, string) {
	if prefix == "" {
		return p, raw
	}
	rest := p[len(prefix):]
	if rest == "" {
		rest = "/"
	}
	if raw == "" {
		return rest, ""
	}
	i := 0
	for n := 0; n < len(prefix) && i < len(raw); n++ {
		if raw[i] == '%' {
			i += 3
		} else {
			i++
		}
	}
	if i > len(raw) {
		return rest, ""
	}
	rawRest := raw[i:]
	if rawRest == "" {
		rawRest = "/"
	}
	if rawRest[0] != '/' || !unescapesTo(rawRest, rest) {
		return rest, ""
	}
	return rest, rawRest
}

// unescapesTo reports whether the escaped path raw is well formed and
// decodes to p, as url.PathUnescape(raw) == p, without allocating.
func unescapesTo(raw, p string) bool {
	j := 0
	for i := 0; i < len(raw); i++ {
		ch := raw[i]
		if ch == '%' {
			if i+2 >= len(raw) {
				return false
			}
			hi, ok1 := unhex(raw[i+1])
			lo, ok2 := unhex(raw[i+2])
			if !ok1 || !ok2 {
				return false
			}
			ch = hi<<4 | lo
			i += 2
		}
		if j >= len(p) || p[j] != ch {
			return false
		}
		j++
	}
	return j == len(p)
}
