package proxy

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"time"
)

// maxBufferedBody is the largest request body (a chunked one with its
// framing) the fast path reads whole before contacting an endpoint, as
// nginx buffers request bodies; the input buffer grows by size classes as
// it comes, so a client holds only as much memory as it has sent. A
// larger body goes to net/http, which streams it (bounded by BodyTimeout
// and MinBodyRate: streamBody).
const maxBufferedBody = 64 << 10

// readBody reads the body of the request whose head is the first n unread
// bytes into the input buffer, after the head, and sets c.body to it (a
// chunked body with its framing, checked; c.req.clen then its decoded
// size). limit, when positive, bounds the decoded size. Bytes read past
// the body stay unread for the next request. It returns serveFast when the
// body is whole; handOff when it is net/http's to stream (larger than
// maxBufferedBody, or chunked with trailer fields), the bytes read so far
// left unread for it; clientGone when the client closed the connection
// midway; or the status to reject the request with: 400 for malformed
// chunked framing, 413 past limit, 408 when the body is not whole within
// BodyTimeout.
func (c *fconn) readBody(n int, limit int64) int {
	r := &c.req
	c.body = nil
	if !r.chunked && r.clen == 0 {
		return serveFast
	}
	if limit > 0 && r.clen > limit {
		return http.StatusRequestEntityTooLarge
	}
	want := n + int(r.clen)
	if r.chunked {
		want = n + maxBufferedBody
	} else if r.clen > maxBufferedBody {
		return handOff
	}
	var cs chunkScan
	timed := false
	for {
		b := c.in.unread()[n:]
		if !r.chunked {
			if len(b) >= int(r.clen) {
				c.body = b[:r.clen]
				return c.bodyRead(timed)
			}
		} else {
			end, st := cs.scan(b)
			switch {
			case st == chunkedBad:
				return http.StatusBadRequest
			case limit > 0 && cs.size > limit:
				return http.StatusRequestEntityTooLarge
			case st == chunkedTrailers, st == chunkedDone && end > maxBufferedBody:
				return handOff
			case st == chunkedDone:
				c.body = b[:end]
				r.clen = cs.size
				return c.bodyRead(timed)
			case len(b) >= maxBufferedBody:
				return handOff
			}
		}
		if !timed {
			timed = true
			c.readDeadline = c.now.Add(c.s.cfg.BodyTimeout)
			_ = c.nc.SetReadDeadline(c.readDeadline)
		}
		if err := c.fill(want, false); err != nil {
			var ne net.Error
			switch {
			case err == errInputFull:
				return handOff
			case errors.As(err, &ne) && ne.Timeout():
				return http.StatusRequestTimeout
			}
			return clientGone
		}
	}
}

// bodyRead ends a readBody that has the whole body: when the body was
// awaited, the endpoint's deadlines count from now.
func (c *fconn) bodyRead(waited bool) int {
	if waited {
		c.now = time.Now()
	}
	return serveFast
}

// releaseBody consumes the request whose head is n bytes long, and its
// body, from the input buffer.
func (c *fconn) releaseBody(n int) {
	c.in.consume(n + len(c.body))
	c.body = nil
}

// chunkScan checks a chunked body as it arrives. It accepts a strict
// subset of RFC 9112 §7.1 (and of what net/http reads): sizes of 1 to 15
// hexadecimal digits with no white space, extensions of at most 32 visible
// ASCII bytes, CRLF line ends only and CRLF after each chunk's data.
// Trailer fields are left to net/http, which drops the forbidden ones
// (dropForbiddenTrailers). pos is where the next size line starts, size
// the decoded bytes so far: a scan resumes there, so data is never
// scanned twice.
type chunkScan struct {
	pos  int
	size int64
}

// scan continues checking the chunked body at the start of b, and returns
// its end (through the empty line ending it) once it is complete.
func (s *chunkScan) scan(b []byte) (end, st int) {
	for {
		rest := b[s.pos:]
		j := bytes.IndexByte(rest, '\n')
		if j < 0 {
			if len(rest) > 64 {
				return 0, chunkedBad // no size line is that long
			}
			return 0, chunkedMore
		}
		n, ok := chunkLineSize(rest[:j+1])
		if !ok {
			return 0, chunkedBad
		}
		if n == 0 {
			rest = rest[j+1:]
			switch {
			case len(rest) < 2:
				return 0, chunkedMore
			case rest[0] == '\r' && rest[1] == '\n':
				return s.pos + j + 3, chunkedDone
			}
			return 0, chunkedTrailers
		}
		if int64(len(rest)-j-1) < n+2 {
			return 0, chunkedMore
		}
		data := j + 1 + int(n)
		if rest[data] != '\r' || rest[data+1] != '\n' {
			return 0, chunkedBad
		}
		s.pos += data + 2
		s.size += n
	}
}

// chunkLineSize parses a chunk-size line, CRLF included, strictly: the
// size's hexadecimal digits, then at most a ';' and an extension of 32
// visible ASCII bytes.
func chunkLineSize(line []byte) (int64, bool) {
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return 0, false
	}
	line = line[:len(line)-2]
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		ext := line[i+1:]
		if len(ext) > 32 {
			return 0, false
		}
		for _, ch := range ext {
			if ch <= ' ' || ch >= 0x7f {
				return 0, false
			}
		}
		line = line[:i]
	}
	return parseHex(line)
}

// parseHex parses a chunk size: 1 to 15 hexadecimal digits.
func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, ch := range b {
		d, ok := unhex(ch)
		if !ok {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

// unhex returns the value of the hexadecimal digit c.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// The outcomes of chunkScan.scan.
const (
	chunkedMore     = iota // well formed so far, not complete
	chunkedDone            // complete, without trailer fields
	chunkedTrailers        // well formed up to trailer fields: net/http's
	chunkedBad             // malformed
)
