package proxy

import (
	"fmt"
	"net/textproto"
)

// The checks NewRouter makes of single Route fields, exported so that a
// configuration loader reports the same verdict under its own key paths
// instead of keeping copies of the rules.

// ValidToken reports whether s is a non-empty RFC 9110 token: the syntax of
// a method, a header field name and a cookie name.
func ValidToken(s string) bool { return isToken(s) }

// CheckHashOn returns why s is not a valid Route.HashOn ("client_ip",
// "header:NAME", "cookie:NAME", "path" or ""), or nil.
func CheckHashOn(s string) error {
	_, err := parseHashOn(s)
	return err
}

// CheckEditableField returns why a route may not set or remove the header
// field called name (a hop-by-hop or framing field, Host or Expect), or
// nil.
func CheckEditableField(name string) error {
	if reservedField(textproto.CanonicalMIMEHeaderKey(name)) {
		return fmt.Errorf("%q is a hop-by-hop, framing, Host or Expect field: the proxy decides it", name)
	}
	return nil
}
