package proxy

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// BenchmarkNativeH2 measures one proxied GET over HTTP/2 (h2c) through
// zkgate's own HTTP/2 server, forward.lean and roundTripH1 to an HTTP/1.1
// endpoint (client → Server → backend over loopback, all in this
// process), with 16 streams in flight on one connection as h2load -m16
// keeps them. The client writes pre-encoded frames and reads with a
// Framer reusing its frames, and the backend answers with fixed bytes, so
// that allocs/op is close to the gateway's.
func BenchmarkNativeH2(b *testing.B) {
	const response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 42\r\n\r\n" +
		`{"ok":true,"msg":"hello from the backend"}`
	addr := rawBackend(b, response)
	up := &Upstream{Name: "svc", Transport: NewTransport(TransportConfig{ResponseHeaderTimeout: 15 * time.Second}), PassHostHeader: true}
	b.Cleanup(up.Transport.(*Transport).CloseIdleConnections)
	route := testRoute(b, "api", "round_robin", up, addr)
	route.PathPrefix = "/api"
	route.StripPrefix = true
	rt, err := NewRouter([]*Route{route})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := NewServer(NewHandler(rt, Options{}), ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: HTTP2ServerZkgate,
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 90 * time.Second})
	go func() { _ = s.Serve(ln) }()
	b.Cleanup(func() { _ = s.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	fr := http2.NewFramer(c, c)
	fr.SetReuseFrames()
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		b.Fatal(err)
	}
	// Large windows, as h2load's, so that flow control never waits.
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30}); err != nil {
		b.Fatal(err)
	}
	if err := fr.WriteWindowUpdate(0, 1<<30); err != nil {
		b.Fatal(err)
	}
	// The server's HPACK decoder adds the fields to its table with the
	// first request, later blocks name them by index: encode the first
	// block and a second one, and reuse the second.
	var blocks [2][]byte
	var blk bytes.Buffer
	enc := hpack.NewEncoder(&blk)
	for i := range blocks {
		blk.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "example.com"},
			{":path", "/api/items/42?x=1"}, {"user-agent", "bench"}, {"accept", "*/*"}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		blocks[i] = bytes.Clone(blk.Bytes())
	}
	first, again := blocks[0], blocks[1]
	id := uint32(1)
	send := func() {
		block := again
		if id == 1 {
			block = first
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
			b.Fatal(err)
		}
		id += 2
	}
	// ended reads frames until one more stream has ended.
	ended := func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				b.Fatal(err)
			}
			switch f := f.(type) {
			case *http2.DataFrame:
				if f.StreamEnded() {
					return
				}
			case *http2.HeadersFrame:
				if f.StreamEnded() {
					return
				}
			case *http2.RSTStreamFrame, *http2.GoAwayFrame:
				b.Fatalf("%v", f.Header())
			}
		}
	}
	const inFlight = 16
	for range inFlight {
		send()
	}
	b.ReportAllocs()
	for b.Loop() {
		ended()
		send()
	}
	for range inFlight {
		ended()
	}
}
