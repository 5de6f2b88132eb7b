package proxy

import "unicode/utf8"

const hexDigits = "0123456789abcdef"

// jsonPlain holds the bytes appendJSONString copies as they are: printable
// ASCII, and neither a quote, a backslash nor one of "<>&" (escaped as
// encoding/json escapes them for HTML). Bytes from utf8.RuneSelf up are
// not, so that one lookup per byte decides the common case.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()

// appendJSONString appends s to b as a JSON string. Unlike
// strconv.AppendQuote, whose \x escapes JSON does not have, it escapes
// control characters as \u00XX and replaces invalid UTF-8 with U+FFFD, so
// the output is valid JSON (RFC 8259 section 7) whatever the request held.
// It also escapes '<', '>' and '&', as encoding/json does, so that a log
// line viewed in a browser cannot carry markup.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if jsonPlain[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but end lines in JavaScript.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
