package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2ServerUnderTest is the HTTP/2 server startFrontend and newH2Side give
// a ServerConfig that names none: net/http's, or zkgate's own while
// TestNativeH2 runs the HTTP/2 tests again with it.
var h2ServerUnderTest = HTTP2ServerGo

// TestNativeH2 runs the package's HTTP/2 tests against zkgate's own HTTP/2
// server: TLS and h2c entry points, the server's advertised limits, gRPC
// error answers, the review defects (authority, request limits, gRPC
// streams and trailers, HTTP/2 to HTTP/1.1 framing tricks, connection
// lifecycle), and roundTripH1's differential test against net/http's
// transport.
func TestNativeH2(t *testing.T) {
	tests := map[string]func(*testing.T){
		"TLSEntryPointServesHTTP1AndHTTP2":                 TestTLSEntryPointServesHTTP1AndHTTP2,
		"TLSEntryPointHTTP2Off":                            TestTLSEntryPointHTTP2Off,
		"H2CEntryPoint":                                    TestH2CEntryPoint,
		"UpstreamProtocols":                                TestUpstreamProtocols,
		"H2CPrefaceOnlyFirst":                              TestH2CPrefaceOnlyFirst,
		"HTTP2ServerLimits":                                TestHTTP2ServerLimits,
		"TLSHTTP1OnFastPath":                               TestTLSHTTP1OnFastPath,
		"GRPCErrorAnswers":                                 TestGRPCErrorAnswers,
		"Review19DefectH2AuthorityNotValidated":            TestReview19DefectH2AuthorityNotValidated,
		"Review19DefectRequestLimitsSkippedOffTheFastPath": TestReview19DefectRequestLimitsSkippedOffTheFastPath,
		"Review19DefectGRPCStreamCutByBodyRate":            TestReview19DefectGRPCStreamCutByBodyRate,
		"Review19DefectGRPCTrailersOnlyHasContentLength":   TestReview19DefectGRPCTrailersOnlyHasContentLength,
		"Review19DefectTrailerChunkingStripsHEADLength":    TestReview19DefectTrailerChunkingStripsHEADLength,
		"Review19H2DowngradeFramingTricks":                 TestReview19H2DowngradeFramingTricks,
		"Review19DefectGRPCTimeoutBlamesEndpoint":          TestReview19DefectGRPCTimeoutBlamesEndpoint,
		"Review19ConnectionLifecycleOffTheFastPath":        TestReview19ConnectionLifecycleOffTheFastPath,
		"Review19GRPCCallNotResent":                        TestReview19GRPCCallNotResent,
		"RoundTripH1Diff":                                  TestRoundTripH1Diff,
		"RoundTripH1Eligible":                              TestRoundTripH1Eligible,
		"RoundTripH1ClientGone":                            TestRoundTripH1ClientGone,
		"NoSniffAfterEarlyHints":                           TestNoSniffAfterEarlyHints,
		"Review21H1HeaderTimeoutNotRetried":                TestReview21H1HeaderTimeoutNotRetried,
		"Review21H1DialFollowsContext":                     TestReview21H1DialFollowsContext,
		"Review21H1StaleRetryAsFastPath":                   TestReview21H1StaleRetryAsFastPath,
	}
	h2ServerUnderTest = HTTP2ServerZkgate
	defer func() { h2ServerUnderTest = HTTP2ServerGo }()
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range tests {
			if !yield(k) {
				return
			}
		}
	}) {
		t.Run(name, tests[name])
	}
}

// TestNativeH2Diff sends GET and HEAD from an HTTP/2 client through a
// gateway on net/http's HTTP/2 server with net/http's transport (the
// reference) and one on zkgate's own server with roundTripH1, to a backend
// answering in each of responseBehaviours' ways: the backend must receive
// the same requests and the client the same answers, except that an
// answer the fast path's rules refuse is a 502.
func TestNativeH2Diff(t *testing.T) {
	for _, bh := range responseBehaviours() {
		t.Run(bh.name, func(t *testing.T) {
			log := &requestLog{}
			be := newScriptedBackend(t, "b", log, bh.respond)
			ref := newH2SideOn(t, true, HTTP2ServerGo, be.addr())
			native := newH2SideOn(t, false, HTTP2ServerZkgate, be.addr())
			diffH2Sides(t, bh, log, ref, native, "net/http's server", "the native one")
		})
	}
}

// h2specPath finds h2spec (make deps-test installs it in bin/tools): the
// test fails under CI=true without it, and skips otherwise.
func h2specPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ZKGATE_H2SPEC"); p != "" {
		return p
	}
	if p, err := filepath.Abs("../bin/tools/h2spec"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("h2spec required under CI=true: make deps-test installs it in bin/tools")
	}
	t.Skip("h2spec not installed (make deps-test installs it in bin/tools)")
	return ""
}

// TestNativeH2Conformance runs h2spec (RFC 7540/9113 and HPACK
// conformance, 145 cases) against the native server over TLS and over
// h2c: every case must pass. net/http's server fails three (a SETTINGS
// frame with the same setting twice, which it refuses; a connection-
// specific field and TE other than "trailers", which it answers 400
// rather than resetting the stream).
func TestNativeH2Conformance(t *testing.T) {
	bin := h2specPath(t)
	b := newBackend(t, "b1", nil)
	_, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), b.addr()))
	tlsFE, _ := tlsFrontend(t, h, ServerConfig{HTTP2Server: HTTP2ServerZkgate}, "h2", "http/1.1")
	h2cFE := startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: HTTP2ServerZkgate})
	for _, tc := range []struct {
		name    string
		url     string
		args    []string
		allowed int // failures allowed, all of them the invalid preface case
	}{
		{"TLS", tlsFE.URL, []string{"-t", "-k"}, 0},
		// A plain entry point with h2c serves HTTP/1.1 too: a preface
		// that is not HTTP/2's is an HTTP/1.1 request to it, answered 400
		// and closed, where h2spec wants the connection closed unanswered.
		{"h2c", h2cFE.URL, nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, port, err := net.SplitHostPort(tc.url[strings.Index(tc.url, "//")+2:])
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			args := append([]string{"-h", host, "-p", port, "-o", "2", "--path", "/"}, tc.args...)
			out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
			summary := regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`).FindSubmatch(out)
			if summary == nil {
				t.Fatalf("h2spec: %v\n%s", err, out)
			}
			failed, _ := strconv.Atoi(string(summary[4]))
			f := failures(out)
			if string(summary[3]) != "0" || failed > tc.allowed ||
				(failed > 0 && (failed != bytes.Count(f, []byte("× ")) || !bytes.Contains(f, []byte("× 2: Sends invalid connection preface")))) {
				t.Fatalf("h2spec: %v\n%s", err, f)
			}
			t.Logf("h2spec over %s: %s", tc.name, summary[0])
		})
	}
}

// failures keeps h2spec's report of the failed cases.
func failures(out []byte) []byte {
	if i := bytes.Index(out, []byte("Failures:")); i >= 0 {
		return out[i:]
	}
	return out
}

// h2Raw is a client connection speaking raw HTTP/2 frames to an h2c entry
// point.
type h2Raw struct {
	nc  net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer
}

func dialH2Raw(t *testing.T, addr string) *h2Raw {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	c := &h2Raw{nc: nc, fr: http2.NewFramer(nc, nc)}
	c.enc = hpack.NewEncoder(&c.buf)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c
}

// headers returns the HPACK block of a GET request for path.
func (c *h2Raw) headers(path string) []byte {
	c.buf.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "gateway.test"}, {":path", path}} {
		_ = c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return bytes.Clone(c.buf.Bytes())
}

// awaitGoAway reads frames until a GOAWAY, and returns its code; the test
// fails if the connection ends without one.
func (c *h2Raw) awaitGoAway(t *testing.T) http2.ErrCode {
	t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("the connection ended without a GOAWAY: %v", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			return ga.ErrCode
		}
	}
}

// nativeH2C starts an h2c entry point on the native server in front of a
// backend whose answers wait until the test ends (or the request is
// cancelled).
func nativeH2C(t *testing.T) *frontend {
	t.Helper()
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	be := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}))
	_, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), strings.TrimPrefix(be.URL, "http://")))
	return startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: HTTP2ServerZkgate})
}

// Rapid reset (CVE-2023-44487): a client that opens streams and resets
// each before its answer is cut off with ENHANCE_YOUR_CALM once it passes
// h2MaxGlitches, before it has made the server start a bounded number
// of handlers.
func TestNativeH2RapidResetCutOff(t *testing.T) {
	fe := nativeH2C(t)
	c := dialH2Raw(t, strings.TrimPrefix(fe.URL, "http://"))
	block := c.headers("/slow")
	errc := make(chan error, 1)
	go func() {
		for id := uint32(1); id < 2*2*h2MaxGlitches+2; id += 2 {
			if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
				errc <- err
				return
			}
			if err := c.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	if code := c.awaitGoAway(t); code != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("GOAWAY %v, want ENHANCE_YOUR_CALM", code)
	}
	<-errc // the writer ends: done, or the connection closed
}

// CONTINUATION flood (CVE-2023-45288): a header block that never ends is
// refused once it passes the header list limit, not read for ever.
func TestNativeH2ContinuationFloodCutOff(t *testing.T) {
	fe := nativeH2C(t)
	c := dialH2Raw(t, strings.TrimPrefix(fe.URL, "http://"))
	block := c.headers("/")
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true}); err != nil {
		t.Fatal(err)
	}
	junk := bytes.Repeat([]byte{0x40, 0x01, 'x', 0x01, 'y'}, 3000) // literal fields x: y, 15 KB a frame
	sent := 0
	errc := make(chan error, 1)
	go func() {
		for sent < 64<<20 {
			if err := c.fr.WriteContinuation(1, false, junk); err != nil {
				errc <- err
				return
			}
			sent += len(junk)
		}
		errc <- errors.New("the server read 64 MiB of CONTINUATION frames")
	}()
	if code := c.awaitGoAway(t); code != http2.ErrCodeProtocol {
		t.Fatalf("GOAWAY %v, want PROTOCOL_ERROR", code)
	}
	if err := <-errc; err != nil && strings.Contains(err.Error(), "64 MiB") {
		t.Fatal(err)
	}
}

// A client that sends PINGs without reading the answers makes the server
// hold a bounded amount: its reads stop once its writes back up, and the
// client's writes then block (here: within a few MiB).
func TestNativeH2PingFloodBounded(t *testing.T) {
	fe := nativeH2C(t)
	c := dialH2Raw(t, strings.TrimPrefix(fe.URL, "http://"))
	_ = c.nc.SetWriteDeadline(time.Now().Add(3 * time.Second))
	var data [8]byte
	written := 0
	for written < 256<<20 {
		if err := c.fr.WritePing(false, data); err != nil {
			break
		}
		written += 17
	}
	if written >= 64<<20 {
		t.Fatalf("the server took %d MiB of PINGs from a client that reads nothing", written>>20)
	}
	t.Logf("the client's writes stopped after %d KiB of PINGs", written>>10)
}

// Flow control both ways: on one connection, requests uploading and
// answers downloading 3 MB at once, each past the windows (the server's
// 1 MiB, the client's 64 KiB per stream and 128 KiB per connection) many
// times, arrive whole and in order.
func TestNativeH2LargeBodiesConcurrent(t *testing.T) {
	const size = 3 << 20
	gen := func(seed byte) []byte {
		b := make([]byte, size)
		for i := range b {
			b[i] = seed + byte(i*7)
		}
		return b
	}
	be := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			sum := sha256.Sum256(must(io.ReadAll(r.Body)))
			_, _ = io.WriteString(w, hex.EncodeToString(sum[:]))
			return
		}
		_, _ = w.Write(gen(r.URL.Path[len(r.URL.Path)-1]))
	}))
	_, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), strings.TrimPrefix(be.URL, "http://")))
	fe := startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: HTTP2ServerZkgate})
	// The client's windows are small, so that the answers wait for its
	// WINDOW_UPDATEs many times.
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p, HTTP2: &http.HTTP2Config{MaxReceiveBufferPerStream: 64 << 10, MaxReceiveBufferPerConnection: 128 << 10}}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	errc := make(chan error, 16)
	for i := range 16 {
		seed := byte('a' + i)
		go func() {
			if i%2 == 0 {
				body := gen(seed)
				res, err := client.Post(fe.URL+"/up", "application/octet-stream", bytes.NewReader(body))
				if err != nil {
					errc <- err
					return
				}
				defer res.Body.Close()
				got, err := io.ReadAll(res.Body)
				want := sha256.Sum256(body)
				if err != nil || res.ProtoMajor != 2 || string(got) != hex.EncodeToString(want[:]) {
					errc <- fmt.Errorf("upload %d: %s, %v, backend's sum %q", i, res.Proto, err, got)
					return
				}
				errc <- nil
				return
			}
			res, err := client.Get(fe.URL + "/down/" + string(seed))
			if err != nil {
				errc <- err
				return
			}
			defer res.Body.Close()
			got, err := io.ReadAll(res.Body)
			if err != nil || res.ProtoMajor != 2 || !bytes.Equal(got, gen(seed)) {
				errc <- fmt.Errorf("download %d: %s, %v, %d bytes", i, res.Proto, err, len(got))
				return
			}
			errc <- nil
		}()
	}
	for range 16 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	if n := fe.srv.ConnStats().NetHTTP; n != 1 {
		t.Errorf("%d HTTP/2 connections, want the one all streams shared", n)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A connection idle past the idle timeout is ended with GOAWAY NO_ERROR.
func TestNativeH2IdleTimeoutGoAway(t *testing.T) {
	b := newBackend(t, "b1", nil)
	_, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), b.addr()))
	fe := startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: HTTP2ServerZkgate, IdleTimeout: 200 * time.Millisecond})
	c := dialH2Raw(t, strings.TrimPrefix(fe.URL, "http://"))
	start := time.Now()
	if code := c.awaitGoAway(t); code != http2.ErrCodeNo {
		t.Fatalf("GOAWAY %v, want NO_ERROR", code)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("GOAWAY after %v, before the idle timeout", d)
	}
}

// No frame of a stream follows its END_STREAM: twenty answers with bodies
// on one connection, every frame read. (The last DATA frame of an answer
// was followed by an empty one with END_STREAM again, which net/http's
// client logged as a protocol error.)
func TestNativeH2NoFrameAfterEndStream(t *testing.T) {
	b := newBackend(t, "b1", nil)
	_, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), b.addr()))
	fe := startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: HTTP2ServerZkgate})
	c := dialH2Raw(t, strings.TrimPrefix(fe.URL, "http://"))
	const streams = 20
	for id := uint32(1); id < 2*streams; id += 2 {
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.headers("/x"), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	ended := map[uint32]bool{}
	// A PING after the answers: its ACK comes after every frame the
	// answers made.
	done := false
	for !done {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		id := f.Header().StreamID
		if id != 0 && ended[id] {
			t.Errorf("%v after the stream's END_STREAM", f.Header())
		}
		if id != 0 && f.Header().Flags.Has(http2.FlagDataEndStream) && (f.Header().Type == http2.FrameData || f.Header().Type == http2.FrameHeaders) {
			ended[id] = true
			if len(ended) == streams {
				if err := c.fr.WritePing(false, [8]byte{1}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if p, ok := f.(*http2.PingFrame); ok && p.IsAck() {
			done = true
		}
	}
}
