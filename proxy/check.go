package proxy

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
