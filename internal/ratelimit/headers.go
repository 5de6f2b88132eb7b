package ratelimit

import (
	"strconv"
	"time"
)

// The header values follow draft-ietf-httpapi-ratelimit-headers-11 (23 May
// 2026), "RateLimit header fields for HTTP": a RateLimit-Policy field
// (section 3) that describes the policy and a RateLimit field (section 4)
// with the key's current service limit, both Structured Field Lists (RFC
// 9651) of one item named by the policy's identifier. No partition key
// ("pk") is sent: the key is a client address or a header's value, which
// section 6.1 asks servers not to echo.

// AppendPolicy appends the RateLimit-Policy field value to b, e.g.
// `"api";q=200;w=2` for 100 per second with a burst of 200: q is the bucket
// (Burst) and w the seconds an empty bucket takes to fill, so q/w is the
// sustained rate. The draft's w is whole seconds (section 3.1.3): it is
// rounded up, which never advertises more than the limiter admits. The
// value is the same for every response of the policy.
func (l *Limiter) AppendPolicy(b []byte) []byte { return append(b, l.policy...) }

// AppendRateLimit appends the RateLimit field value for d to b, e.g.
// `"api";r=57;t=1`. r is d.Remaining. t, the effective window in whole
// seconds rounded up, is d.Reset (the time until the bucket is full again)
// for an allowed request, and d.RetryAfter for a refused one: the draft's
// section 6 asks that Retry-After not point before the end of the
// effective window, and within RetryAfter the key can indeed make no
// request (r=0).
func (l *Limiter) AppendRateLimit(b []byte, d Decision) []byte {
	w := d.Reset
	if !d.Allowed {
		w = d.RetryAfter
	}
	b = append(b, l.item...)
	b = append(b, ";r="...)
	b = strconv.AppendInt(b, int64(d.Remaining), 10)
	b = append(b, ";t="...)
	return strconv.AppendInt(b, seconds(w), 10)
}

// AppendRetryAfter appends the Retry-After value (delay-seconds, RFC 9110
// section 10.2.3) for a refused d to b: d.RetryAfter rounded up to whole
// seconds, so that a client that waits that long finds a token. It is the
// same number as the t of AppendRateLimit.
func (l *Limiter) AppendRetryAfter(b []byte, d Decision) []byte {
	return strconv.AppendInt(b, seconds(d.RetryAfter), 10)
}

// seconds rounds d up to whole seconds; zero or less is 0.
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d-1)/time.Second) + 1
}

// appendPolicy appends the RateLimit-Policy value of p to b.
func appendPolicy(b []byte, p params) []byte {
	b = appendString(b, p.name)
	b = append(b, ";q="...)
	b = strconv.AppendInt(b, int64(p.burst), 10)
	b = append(b, ";w="...)
	return strconv.AppendInt(b, max(1, seconds(time.Duration(p.tau))), 10)
}

// appendString appends s, printable ASCII, as a Structured Field String
// (RFC 9651 section 4.1.6): quoted, with '"' and '\' escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}
