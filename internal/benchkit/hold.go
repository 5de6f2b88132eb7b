package benchkit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Kinds of held connections.
const (
	// HoldIdle: one GET answered in full, then the connection stays open
	// and silent (an idle keep-alive client).
	HoldIdle = "idle"
	// HoldUpgrade: a WebSocket handshake answered 101 by the backend
	// through the proxy, then the connection stays open (a tunnel).
	HoldUpgrade = "upgrade"
)

// MaxHeldConns bounds HoldOptions.Conns in the harness: a process here may
// hold at most 20,000 descriptors, and a proxy holding N upgraded
// connections holds 2N of them, plus its listeners, logs and upstream
// pools.
const MaxHeldConns = 8900

// HoldOptions configure Hold.
type HoldOptions struct {
	// Addr is the proxy's "host:port". Required.
	Addr string
	// Path is the request target, e.g. "/echo/". Default "/".
	Path string
	// Kind is HoldIdle or HoldUpgrade. Required.
	Kind string
	// Conns is the number of connections to open and hold. Required.
	Conns int
	// Concurrency bounds the connections being opened at once. Default 32.
	Concurrency int
	// EchoEvery: on every EchoEvery-th upgraded connection, one small
	// masked WebSocket frame is sent and must come back byte for byte
	// (the backend echoes), proving the tunnel. Default 100; negative:
	// none.
	EchoEvery int
	// Exchange bounds one connection's dial, request and answer. Default 5s.
	Exchange time.Duration
	// Establish bounds the opening of all connections. Default 60s.
	Establish time.Duration
	// MaxHold bounds the holding: the connections are closed after it even
	// if ctx has not ended. Default 2m.
	MaxHold time.Duration
	// Out receives the two report lines (FormatHoldReport). Default
	// io.Discard.
	Out io.Writer
}

// HoldReport is what Hold reports, once when every connection was tried
// (phase "established") and once when they were closed (phase "closed").
type HoldReport struct {
	Phase       string `json:"phase"`
	Kind        string `json:"kind"`
	Wanted      int    `json:"wanted"`
	Established int    `json:"established"`
	Failed      int    `json:"failed"`
	// EchoOK and EchoFailed count the upgraded connections whose echo
	// frame came back, or did not.
	EchoOK     int `json:"echo_ok"`
	EchoFailed int `json:"echo_failed"`
	// Alive counts, when closing, the held connections the proxy had not
	// closed (nothing to read, no end of stream); Ended those it had.
	Alive int `json:"alive"`
	Ended int `json:"ended"`
	// OpenMS is the time taken to open every connection; HeldMS the time
	// from then to the close.
	OpenMS int64 `json:"open_ms"`
	HeldMS int64 `json:"held_ms"`
	// FirstError is the first failure's message, empty without one.
	FirstError string `json:"first_error,omitempty"`
}

// holdLinePrefix starts each report line.
const holdLinePrefix = "ZKHOLD "

// FormatHoldReport returns r as one line: holdLinePrefix, then JSON.
func FormatHoldReport(r HoldReport) string {
	b, _ := json.Marshal(r)
	return holdLinePrefix + string(b) + "\n"
}

// ParseHoldReports returns the last report line of each phase found in
// out, keyed by phase. Lines that are not report lines are ignored; a
// malformed report line is an error.
func ParseHoldReports(out string) (map[string]HoldReport, error) {
	reports := make(map[string]HoldReport)
	for line := range strings.SplitSeq(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), holdLinePrefix)
		if !ok {
			continue
		}
		var r HoldReport
		dec := json.NewDecoder(strings.NewReader(rest))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("benchkit: hold report %q: %w", truncate(rest, 200), err)
		}
		if r.Phase != "established" && r.Phase != "closed" {
			return nil, fmt.Errorf("benchkit: hold report %q: unknown phase %q", truncate(rest, 200), r.Phase)
		}
		reports[r.Phase] = r
	}
	return reports, nil
}

func (o HoldOptions) withDefaults() (HoldOptions, error) {
	if o.Path == "" {
		o.Path = "/"
	}
	if o.Concurrency == 0 {
		o.Concurrency = 32
	}
	if o.EchoEvery == 0 {
		o.EchoEvery = 100
	}
	if o.Exchange == 0 {
		o.Exchange = 5 * time.Second
	}
	if o.Establish == 0 {
		o.Establish = 60 * time.Second
	}
	if o.MaxHold == 0 {
		o.MaxHold = 2 * time.Minute
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	var errs []error
	if _, _, err := net.SplitHostPort(o.Addr); err != nil {
		errs = append(errs, fmt.Errorf("benchkit: hold: address %q: want host:port", o.Addr))
	}
	if o.Kind != HoldIdle && o.Kind != HoldUpgrade {
		errs = append(errs, fmt.Errorf("benchkit: hold: kind %q: want %s or %s", o.Kind, HoldIdle, HoldUpgrade))
	}
	if o.Conns < 1 {
		errs = append(errs, fmt.Errorf("benchkit: hold: connections %d: want at least 1", o.Conns))
	}
	if o.Concurrency < 1 || o.Exchange < 0 || o.Establish < 0 || o.MaxHold < 0 {
		errs = append(errs, errors.New("benchkit: hold: concurrency must be positive and durations not negative"))
	}
	if !strings.HasPrefix(o.Path, "/") || strings.ContainsAny(o.Path, " \r\n") {
		errs = append(errs, fmt.Errorf("benchkit: hold: path %q: want an origin-form target", o.Path))
	}
	return o, errors.Join(errs...)
}

// Hold opens o.Conns connections to o.Addr, at most o.Concurrency at a
// time, gets each into the state o.Kind names, and holds them with no
// goroutine and no buffer of its own per connection. It writes the
// "established" report once every connection was tried, holds until ctx
// ends or o.MaxHold passes, then checks which connections the proxy still
// held, closes them all, writes the "closed" report and returns it.
// Failed connections are counted, not fatal; only bad options and an
// end of ctx before the connections were opened return an error.
func Hold(ctx context.Context, opts HoldOptions) (HoldReport, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return HoldReport{}, err
	}
	rep := HoldReport{Phase: "established", Kind: o.Kind, Wanted: o.Conns}
	conns := make([]net.Conn, o.Conns)
	defer func() { // also on the early returns
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}()

	start := time.Now()
	octx, cancel := context.WithTimeout(ctx, o.Establish)
	var (
		next               atomic.Int64
		failed, ok, echoKO atomic.Int64
		firstMu            sync.Mutex
		first              string
		wg                 sync.WaitGroup
	)
	fail := func(err error) {
		failed.Add(1)
		firstMu.Lock()
		if first == "" {
			first = err.Error()
		}
		firstMu.Unlock()
	}
	for range min(o.Concurrency, o.Conns) {
		wg.Go(func() {
			br := bufio.NewReaderSize(nil, 4096) // one per opener, reused
			for {
				i := int(next.Add(1) - 1)
				if i >= o.Conns {
					return
				}
				if octx.Err() != nil {
					fail(fmt.Errorf("connection %d: not opened: %w", i, context.Cause(octx)))
					continue
				}
				echoTest := o.Kind == HoldUpgrade && o.EchoEvery > 0 && i%o.EchoEvery == 0
				c, err := openHeld(octx, o, br, i, echoTest)
				if err != nil {
					if echoTest && errors.Is(err, errEcho) {
						echoKO.Add(1)
					}
					fail(fmt.Errorf("connection %d: %w", i, err))
					continue
				}
				if echoTest {
					ok.Add(1)
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	cancel()
	rep.OpenMS = time.Since(start).Milliseconds()
	rep.Failed, rep.EchoOK, rep.EchoFailed, rep.FirstError = int(failed.Load()), int(ok.Load()), int(echoKO.Load()), first
	rep.Established = o.Conns - rep.Failed
	if ctx.Err() != nil {
		return rep, fmt.Errorf("benchkit: hold: stopped while opening connections: %w", ctx.Err())
	}
	fmt.Fprint(o.Out, FormatHoldReport(rep))

	held := time.Now()
	t := time.NewTimer(o.MaxHold)
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	t.Stop()
	rep.Phase = "closed"
	rep.HeldMS = time.Since(held).Milliseconds()
	for i, c := range conns {
		if c == nil {
			continue
		}
		if peerEnded(c) {
			rep.Ended++
		} else {
			rep.Alive++
		}
		_ = c.Close()
		conns[i] = nil
	}
	fmt.Fprint(o.Out, FormatHoldReport(rep))
	return rep, nil
}

// errEcho marks a failed echo of an upgraded connection.
var errEcho = errors.New("echo")

// openHeld dials one connection and brings it into o.Kind's held state,
// reading the answer through br (reset to the connection, then released).
func openHeld(ctx context.Context, o HoldOptions, br *bufio.Reader, i int, echoTest bool) (net.Conn, error) {
	d := net.Dialer{Timeout: o.Exchange}
	c, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, err
	}
	br.Reset(c)
	err = c.SetDeadline(time.Now().Add(o.Exchange))
	if err == nil {
		if o.Kind == HoldIdle {
			err = idleExchange(c, br, o)
		} else {
			err = upgradeExchange(c, br, o, i, echoTest)
		}
	}
	if err == nil && br.Buffered() > 0 {
		err = fmt.Errorf("%d unexpected bytes after the answer", br.Buffered())
	}
	br.Reset(nil) // drop the reference to the connection
	if err == nil {
		err = c.SetDeadline(time.Time{})
	}
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// idleExchange sends one GET and reads its whole answer, which must be a
// 200 that keeps the connection open.
func idleExchange(c net.Conn, br *bufio.Reader, o HoldOptions) error {
	req := "GET " + o.Path + " HTTP/1.1\r\nHost: " + o.Addr + "\r\nUser-Agent: zkbench-hold\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	switch {
	case err != nil:
		return fmt.Errorf("reading the body: %w", err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("status %d, want 200", resp.StatusCode)
	case resp.Close:
		return errors.New("the answer closes the connection (no keep-alive)")
	case resp.ContentLength >= 0 && n != resp.ContentLength:
		return fmt.Errorf("body of %d bytes, Content-Length %d", n, resp.ContentLength)
	}
	return nil
}

// upgradeExchange sends a WebSocket handshake and checks the 101 answer
// and its Sec-WebSocket-Accept; with echoTest it then sends one masked
// frame and reads it back.
func upgradeExchange(c net.Conn, br *bufio.Reader, o HoldOptions, i int, echoTest bool) error {
	var raw [16]byte
	for j := range raw {
		raw[j] = byte(rand.Uint32())
	}
	key := base64.StdEncoding.EncodeToString(raw[:])
	req := "GET " + o.Path + " HTTP/1.1\r\nHost: " + o.Addr + "\r\nUser-Agent: zkbench-hold\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return fmt.Errorf("reading the handshake's answer: %w", err)
	}
	switch {
	case resp.StatusCode != http.StatusSwitchingProtocols:
		return fmt.Errorf("status %d, want 101", resp.StatusCode)
	case !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket"):
		return fmt.Errorf("Upgrade %q, want websocket", resp.Header.Get("Upgrade"))
	case resp.Header.Get("Sec-WebSocket-Accept") != WebSocketAccept(key):
		return fmt.Errorf("Sec-WebSocket-Accept %q, want %q", resp.Header.Get("Sec-WebSocket-Accept"), WebSocketAccept(key))
	}
	if !echoTest {
		return nil
	}
	frame := maskedTextFrame("zkbench " + strconv.Itoa(i))
	if _, err := c.Write(frame); err != nil {
		return fmt.Errorf("%w: write: %v", errEcho, err)
	}
	got := make([]byte, len(frame))
	if _, err := io.ReadFull(br, got); err != nil {
		return fmt.Errorf("%w: read: %v", errEcho, err)
	}
	if !bytes.Equal(got, frame) {
		return fmt.Errorf("%w: got %q back, want %q", errEcho, got, frame)
	}
	return nil
}

// maskedTextFrame returns a final text frame carrying payload (under 126
// bytes), masked as a client must mask it (RFC 6455 §5.3).
func maskedTextFrame(payload string) []byte {
	mask := [4]byte{byte(rand.Uint32()), byte(rand.Uint32()), byte(rand.Uint32()), byte(rand.Uint32())}
	f := append([]byte{0x81, 0x80 | byte(len(payload))}, mask[:]...)
	for j := range len(payload) {
		f = append(f, payload[j]^mask[j%4])
	}
	return f
}

// peerEnded reports whether the other end closed c (or reset it): a
// non-blocking peek finds the end of stream or an error rather than "no
// data yet". Bytes waiting to be read count as open.
func peerEnded(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ended := false
	err = rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ended = (err == nil && n == 0) || (err != nil && !errors.Is(err, syscall.EAGAIN))
	})
	return err != nil || ended
}
