package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestGRPCTimeoutParse(t *testing.T) {
	for _, tt := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"1S", time.Second, true},
		{"100m", 100 * time.Millisecond, true},
		{"2H", 2 * time.Hour, true},
		{"3M", 3 * time.Minute, true},
		{"250u", 250 * time.Microsecond, true},
		{"7n", 7, true},
		{"0m", time.Nanosecond, true},
		{"99999999H", 24 * time.Hour, true},
		{"12345678S", 24 * time.Hour, true},
		{"123456789S", 0, false}, // nine digits
		{"", 0, false},
		{"S", 0, false},
		{"10", 0, false},
		{"10s", 0, false},
		{"-1S", 0, false},
		{"+1S", 0, false},
		{"1.5S", 0, false},
		{" 1S", 0, false},
	} {
		h := http.Header{}
		if tt.v != "" {
			h.Set("Grpc-Timeout", tt.v)
		}
		got, ok := grpcTimeout(h)
		if got != tt.want || ok != tt.ok {
			t.Errorf("grpc-timeout %q: %v %v, want %v %v", tt.v, got, ok, tt.want, tt.ok)
		}
	}
}

func TestIsGRPC(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc":              true,
		"application/grpc+proto":        true,
		"application/grpc;charset=utf8": true,
		"application/grpc-web":          false,
		"application/grpcx":             false,
		"application/json":              false,
		"":                              false,
	} {
		r := httptest.NewRequest(http.MethodPost, "/svc/M", nil)
		r.Header.Set("Content-Type", ct)
		if got := isGRPC(r); got != want {
			t.Errorf("Content-Type %q: isGRPC %v, want %v", ct, got, want)
		}
	}
}

// The gateway's own errors to a gRPC call are Trailers-Only gRPC answers
// (HTTP 200, grpc-status, grpc-message, no body), never JSON bodies.
func TestGRPCErrorAnswers(t *testing.T) {
	up := testUpstream(t, "svc")
	for _, tt := range []struct {
		name   string
		route  *Route
		target string
		code   string
	}{
		{"no endpoint", testRoute(t, "r", "round_robin", up), "/pkg.Svc/M", "14"},
		{"endpoint refuses", testRoute(t, "r", "round_robin", up, deadAddr(t)), "/pkg.Svc/M", "14"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// gRPC is HTTP/2: here h2c with prior knowledge.
			_, h := newFrontend(t, Options{}, tt.route)
			fe := startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C})
			req, err := http.NewRequest(http.MethodPost, fe.URL+tt.target, strings.NewReader("\x00\x00\x00\x00\x00"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/grpc")
			req.Header.Set("Te", "trailers")
			res, err := protoClient(t, nil, func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) }).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/grpc" || len(body) != 0 {
				t.Fatalf("%d %q %q, want 200 application/grpc and no body", res.StatusCode, res.Header.Get("Content-Type"), body)
			}
			if got := res.Header.Get("Grpc-Status"); got != tt.code {
				t.Fatalf("grpc-status %q (%q), want %s", got, res.Header.Get("Grpc-Message"), tt.code)
			}
			if res.Header.Get("Grpc-Message") == "" {
				t.Fatal("no grpc-message")
			}
		})
	}
	// Not a gRPC call: the JSON error.
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", up))
	res, body := get(t, fe.URL+"/x")
	if res.StatusCode != http.StatusServiceUnavailable || decodeError(t, res, body).Error != "no healthy endpoint" {
		t.Fatalf("plain request: %d %s", res.StatusCode, body)
	}
}

func TestGRPCCodeMapping(t *testing.T) {
	for status, want := range map[int]int{
		400: grpcInternal, 404: grpcUnimplemented, 405: grpcUnimplemented, 408: grpcDeadlineExceeded,
		413: grpcResourceExhaust, 429: grpcUnavailable, 502: grpcUnavailable, 503: grpcUnavailable,
		504: grpcDeadlineExceeded, 500: grpcUnknown,
	} {
		if got := grpcCode(status); got != want {
			t.Errorf("HTTP %d → gRPC %d, want %d", status, got, want)
		}
	}
}
