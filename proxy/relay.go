package proxy

import (
	"bytes"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// The kinds of response header fields (hdrLine.kind).
const (
	rkOther hdrKind = iota
	rkHop           // removed: hop-by-hop
	rkConnection
	rkTransferEncoding
	rkContentLength
	rkTrailer
	rkDate
)

// writeHead writes the response head in c.res to the client, filtered as
// ReverseProxy filters it: hop-by-hop fields and those Connection
// names removed, the framing of the relayed body, a Date when none went
// out (the upstream sent none, its Connection named it, or the route
// removes it: net/http's server then adds its own), and Connection: close
// when the client connection ends after it.
func (c *fconn) writeHead(final bool) {
	res := &c.res
	w := c.bw
	_, _ = w.WriteString(statusProto(c.req.http10))
	_, _ = w.Write(res.code)
	_ = w.WriteByte(' ')
	_, _ = w.Write(res.reason)
	_, _ = w.WriteString("\r\n")
	var pol *policies
	if e := c.ex.e; e != nil {
		pol = e.pol
	}
	body := final && res.hasBody(c.req.method)
	bodyless := res.status < 200 || res.status == http.StatusNoContent || res.status == http.StatusNotModified
	var enc encoding // the body's coding, when the route compresses it
	vary := false    // the answer gets Vary: Accept-Encoding
	if body && pol != nil && pol.compress != nil {
		f := res.facts(pol)
		if vary = pol.compress.eligible(c.req.method, res.status, &f); vary {
			if c.ex.enc != encNone {
				c.z = pol.compress.get(c.ex.enc, encSink{cw: w, chunked: !c.req.http10, n: &c.ex.sw.size})
			}
			if c.z != nil {
				enc = c.ex.enc
			}
			vary = !f.varies
		}
	}
	clSent := false
	dateSent := false
	for i := range res.hdrs {
		l := &res.hdrs[i]
		switch l.kind {
		case rkHop, rkConnection, rkTransferEncoding:
			continue
		case rkContentLength:
			if res.chunked || bodyless || clSent || enc != encNone {
				// Transfer-Encoding wins; a status without a body has no
				// length (net/http's server drops it); equal repeats
				// are one; a compressed body's length is not known.
				continue
			}
			clSent = true
		case rkTrailer:
			if !res.chunked {
				continue // net/http keeps trailers of chunked bodies only
			}
		}
		if len(res.conn) > 0 && res.namedByConnection(l.name) {
			continue
		}
		if pol != nil && final && pol.editsResponseField(l.name) {
			continue
		}
		if enc != encNone && writeCodedField(w, l.name, l.value) {
			continue
		}
		dateSent = dateSent || l.kind == rkDate
		w.line(l)
	}
	if !final {
		_, _ = w.WriteString("\r\n")
		return
	}
	if pol != nil {
		pol.writeResponseFields(w, c.ex.origin, enc != encNone)
		dateSent = dateSent || pol.setsResponseField("Date")
	}
	if vary {
		w.field("Vary", "Accept-Encoding")
	}
	if enc != encNone {
		w.field("Content-Encoding", enc.token())
	}
	framed := !body || (enc == encNone && !res.chunked && res.clen >= 0)
	if !framed && !c.req.http10 {
		_, _ = w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	c.endHead(dateSent, framed)
}

// endHead ends a final response head: a Date when the upstream sent none,
// the Connection field, and the empty line. framed says whether the client
// can tell where the body ends without the connection closing (a length,
// chunks, or no body). As net/http: an HTTP/1.1 client is told
// "Connection: close" when the connection ends after the answer; an
// HTTP/1.0 client that asked for keep-alive is told "keep-alive" when it
// gets one, and nothing otherwise, the connection then closing after the
// answer.
func (c *fconn) endHead(hasDate, framed bool) {
	w := c.bw
	if !hasDate {
		_, _ = w.WriteString("Date: ")
		_, _ = w.Write(httpDate())
		_, _ = w.WriteString("\r\n")
	}
	switch {
	case c.req.http10:
		if !c.req.close && framed && !c.s.closing.Load() {
			_, _ = w.WriteString("Connection: keep-alive\r\n")
		} else {
			c.req.close = true
		}
	case c.req.close || c.s.closing.Load():
		_, _ = w.WriteString("Connection: close\r\n")
	}
	_, _ = w.WriteString("\r\n")
}

// relay sends the response in c.res, whose head is still in uc's buffer,
// to the client, and then releases uc. The end of the answer stays
// buffered: serveRequest flushes it after the request is accounted for,
// so that metrics, the access log and in-flight counts are up to date
// when the client has its answer (as on net/http). relay reports whether
// the client connection stays usable: a body that breaks off midway
// closes it, so that the client cannot take a part for the whole.
func (c *fconn) relay(uc *upConn, ex *exchange) bool {
	res := &c.res
	ex.sw.status = res.status
	c.writeHead(true)
	_, _ = uc.br.Discard(res.n)
	keepUp := !res.close
	uc.inBody = true
	var err error
	switch {
	case !res.hasBody(c.req.method):
	case res.chunked:
		err = c.relayChunked(uc, ex)
	case res.clen >= 0:
		err = c.relayN(uc, res.clen, ex)
	default:
		err = c.relayToEOF(uc, ex)
		keepUp = false
	}
	if z := c.z; z != nil {
		if err == nil && !z.closed {
			err = c.endEncoded()
		}
		z.release()
		c.z = nil
	}
	// The watch of a request served inside its hot wait ends here, before
	// uc goes back to the pool: it aborts nothing after.
	c.disarmWatch()
	if err != nil {
		uc.close()
		return false
	}
	uc.usedAt = c.now
	uc.release(keepUp)
	return true
}

// fillUp makes sure uc's buffer holds at least one byte, flushing what the
// client has been sent so far before it may block (so streams flow) and
// lifting the response-header deadline, which does not bound bodies.
func (c *fconn) fillUp(uc *upConn) error {
	if uc.br.Buffered() > 0 {
		return nil
	}
	// What the endpoint has sent already is taken without waiting, so
	// that it goes to the client in one write with what is buffered.
	uc.nonblock = true
	_, err := uc.br.Peek(1)
	uc.nonblock = false
	if err != errWouldBlock {
		return err
	}
	if err := c.flushBeforeWait(uc); err != nil {
		return err
	}
	_, err = uc.br.Peek(1)
	return err
}

// flushBeforeWait sends the client what is buffered for it before the relay
// waits for the endpoint's next bytes, so that nothing relayed so far (the
// response head included) waits on a slow or stalled endpoint; the wait
// itself has no deadline but the client's (the body may be slow).
func (c *fconn) flushBeforeWait(uc *upConn) error {
	if c.z != nil {
		if err := c.z.flush(); err != nil {
			return err
		}
	}
	if err := c.bw.Flush(); err != nil {
		return err
	}
	uc.clearDeadline()
	return nil
}

// relayN relays n body bytes.
func (c *fconn) relayN(uc *upConn, n int64, ex *exchange) error {
	for n > 0 {
		if uc.br.Buffered() == 0 && n >= int64(uc.br.Size()) {
			// A large body: read straight into a big buffer and write
			// straight out, past both bufio buffers; what has arrived
			// without waiting, else after a flush.
			buf := sharedBufferPool.Get()
			want := buf[:min(int64(len(buf)), n)]
			nr, err := uc.sock.readNow(want)
			if uc.liftBodyDeadline(nr, err) {
				nr, err = uc.sock.readNow(want)
			}
			uc.nread += int64(nr)
			if err == errWouldBlock {
				if err = c.flushBeforeWait(uc); err != nil {
					sharedBufferPool.Put(buf)
					return err
				}
				nr, err = uc.br.Read(want)
			}
			if nr > 0 {
				if werr := c.writeData(buf[:nr], ex); werr != nil {
					sharedBufferPool.Put(buf)
					return werr
				}
				n -= int64(nr)
			}
			sharedBufferPool.Put(buf)
			if err != nil && n > 0 {
				return unexpected(err)
			}
			continue
		}
		if err := c.fillUp(uc); err != nil {
			return unexpected(err)
		}
		k := int(min(int64(uc.br.Buffered()), n))
		b, _ := uc.br.Peek(k)
		if err := c.writeData(b, ex); err != nil {
			return err
		}
		_, _ = uc.br.Discard(k)
		n -= int64(k)
	}
	return nil
}

// writeData passes body bytes to the client: through the encoder when the
// answer is compressed (which counts what it sends), else as they are.
func (c *fconn) writeData(b []byte, ex *exchange) error {
	if c.z != nil {
		return c.z.write(b)
	}
	_, err := c.bw.Write(b)
	ex.sw.size += int64(len(b))
	return err
}

// endEncoded ends a compressed body: the encoder's last bytes, then the
// last chunk to an HTTP/1.1 client (a body relayed from chunks has had
// its last chunk and trailer written by relayChunked).
func (c *fconn) endEncoded() error {
	if err := c.z.close(); err != nil {
		return err
	}
	if c.req.http10 {
		return nil
	}
	_, err := c.bw.WriteString("0\r\n\r\n")
	return err
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// upstreamLine reads one line of a chunked body from uc, LF included; the
// slice is valid until the next read.
func (c *fconn) upstreamLine(uc *upConn) ([]byte, error) {
	if err := c.fillUp(uc); err != nil {
		return nil, unexpected(err)
	}
	if b, _ := uc.br.Peek(uc.br.Buffered()); bytes.IndexByte(b, '\n') < 0 {
		// Part of a line has come: the rest may take a while.
		if err := c.flushBeforeWait(uc); err != nil {
			return nil, err
		}
	}
	line, err := uc.br.ReadSlice('\n')
	return line, unexpected(err)
}

// relayChunked relays a chunked body as it comes, checking its framing.
// Each chunk-size line is written anew ("1a\r\n", extensions dropped), so
// that the client never parses a size line the endpoint made (with white
// space or an extension its parser may read otherwise); trailer fields are
// relayed. An HTTP/1.0 client gets the data only.
func (c *fconn) relayChunked(uc *upConn, ex *exchange) error {
	// plain: the endpoint's chunks are not the client's — an HTTP/1.0
	// client gets the data only, a compressed body has chunks of its own.
	plain := c.req.http10 || c.z != nil
	for {
		line, err := c.upstreamLine(uc)
		if err != nil {
			return err
		}
		size, ok := chunkSize(line)
		if !ok {
			return errBadResponse
		}
		if !plain {
			c.bw.writeInt(size, 16)
			if _, err := c.bw.WriteString("\r\n"); err != nil {
				return err
			}
		}
		if size == 0 {
			if c.z != nil && !c.req.http10 {
				// The coded stream ends before the last chunk. To an
				// HTTP/1.0 client its end is the only sign of a whole
				// answer: relay ends it once the trailer has come.
				if err := c.z.close(); err != nil {
					return err
				}
				_, _ = c.bw.WriteString("0\r\n")
			}
			// The trailer section, through its empty line.
			for {
				line, err := c.upstreamLine(uc)
				if err != nil {
					return err
				}
				if len(line) < 2 || line[len(line)-2] != '\r' {
					return errBadResponse
				}
				if len(line) > 2 {
					if _, _, ok := splitField(line[:len(line)-2]); !ok {
						return errBadResponse
					}
				}
				if !c.req.http10 {
					if _, err := c.bw.Write(line); err != nil {
						return err
					}
				}
				if len(line) == 2 {
					return nil
				}
			}
		}
		if err := c.relayN(uc, size, ex); err != nil {
			return err
		}
		if err := c.fillUp(uc); err != nil {
			return unexpected(err)
		}
		if uc.br.Buffered() < 2 {
			if err := c.flushBeforeWait(uc); err != nil {
				return err
			}
		}
		crlf, err := uc.br.Peek(2)
		if err != nil {
			return unexpected(err)
		}
		if crlf[0] != '\r' || crlf[1] != '\n' {
			return errBadResponse
		}
		if !plain {
			if _, err := c.bw.Write(crlf); err != nil {
				return err
			}
		}
		_, _ = uc.br.Discard(2)
	}
}

// chunkSize parses a chunk-size line ("1a;ext=v\r\n").
func chunkSize(line []byte) (int64, bool) {
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return 0, false
	}
	line = line[:len(line)-2]
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	return parseHex(trimOWS(line))
}

// relayToEOF relays a body delimited by the upstream closing the
// connection, as chunks, so that the client connection stays open; to an
// HTTP/1.0 client as it is, delimited by the close.
func (c *fconn) relayToEOF(uc *upConn, ex *exchange) error {
	chunked := !c.req.http10
	for {
		if err := c.fillUp(uc); err != nil {
			if err == io.EOF && chunked && c.z == nil {
				_, err = c.bw.WriteString("0\r\n\r\n")
			} else if err == io.EOF {
				err = nil // a compressed body is ended by relay
			}
			return err
		}
		b, _ := uc.br.Peek(uc.br.Buffered())
		if c.z != nil {
			if err := c.z.write(b); err != nil {
				return err
			}
		} else {
			if err := c.bw.writeBody(b, chunked); err != nil {
				return err
			}
			ex.sw.size += int64(len(b))
		}
		_, _ = uc.br.Discard(len(b))
	}
}

// httpDate returns the current time as an HTTP date, formatted once per
// second. The slice must not be modified.
func httpDate() []byte {
	now := time.Now()
	sec := now.Unix()
	if d := cachedDate.Load(); d != nil && d.sec == sec {
		return d.b
	}
	return cacheDate(now, sec).b
}

// httpDateString is httpDate as a string (the HTTP/2 server's Date field).
func httpDateString() string {
	now := time.Now()
	sec := now.Unix()
	if d := cachedDate.Load(); d != nil && d.sec == sec {
		return d.s
	}
	return cacheDate(now, sec).s
}

// cacheDate formats now, whose second is sec, and keeps it for the second.
func cacheDate(now time.Time, sec int64) *dateCache {
	u := now.UTC()
	b := u.AppendFormat(make([]byte, 0, 29), http.TimeFormat)
	d := &dateCache{sec: sec, b: b, s: string(b), iso: u.AppendFormat(make([]byte, 0, 20), isoSecond)}
	cachedDate.Store(d)
	return d
}

// dateCache is one second's formatted times: as an HTTP date (b, s) and as
// RFC 3339 to the second (iso), both in UTC.
type dateCache struct {
	sec int64
	b   []byte
	s   string
	iso []byte
}

// isoSecond is time.RFC3339Nano up to its fraction, in UTC.
const isoSecond = "2006-01-02T15:04:05"

// appendRFC3339Nano appends t in UTC as t.UTC().AppendFormat(b,
// time.RFC3339Nano) does (the access log's time), taking the date and
// clock from the per-second cache: t is a request's arrival, mostly within
// the current second. A t in a later second than the cache's refreshes
// it; an earlier one is formatted in full.
func appendRFC3339Nano(b []byte, t time.Time) []byte {
	sec := t.Unix()
	d := cachedDate.Load()
	if d == nil || d.sec != sec {
		if d != nil && sec < d.sec {
			return t.UTC().AppendFormat(b, time.RFC3339Nano)
		}
		d = cacheDate(t, sec)
	}
	b = append(b, d.iso...)
	if ns := t.Nanosecond(); ns != 0 {
		// Nine digits, then the trailing zeros dropped, as ".999999999".
		var f [10]byte
		f[0] = '.'
		for i := 9; i > 0; i-- {
			f[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := len(f)
		for f[n-1] == '0' {
			n--
		}
		b = append(b, f[:n]...)
	}
	return append(b, 'Z')
}

var cachedDate atomic.Pointer[dateCache]
