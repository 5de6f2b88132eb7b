package benchkit

import (
	"context"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const wrkOutput = `Running 5s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Latency Distribution
     50%    1.00ms
  123 requests in 5.00s, 12.34MB read
Requests/sec:  24691.20
ZKBENCH requests=123456 duration_us=5000000 bytes=9876 connect=1 read=2 write=3 status=4 timeout=5 p50_us=1000 p90_us=2000 p99_us=3500 max_us=9000
`

func TestParseWrk(t *testing.T) {
	r, err := ParseWrk(wrkOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := WrkResult{Requests: 123456, Duration: 5 * time.Second, Bytes: 9876, Connect: 1, Read: 2, Write: 3, Status: 4, Timeout: 5,
		P50: time.Millisecond, P90: 2 * time.Millisecond, P99: 3500 * time.Microsecond, Max: 9 * time.Millisecond}
	if r != want {
		t.Fatalf("ParseWrk = %+v, want %+v", r, want)
	}
	if got := r.RPS(); got != 24691.2 {
		t.Errorf("RPS = %v, want 24691.2", got)
	}
	if got := r.Errors(); got != 15 {
		t.Errorf("Errors = %v, want 15", got)
	}
}

func TestParseWrkRejects(t *testing.T) {
	for _, tc := range []struct{ name, out, want string }{
		{"no line", "Requests/sec: 5\n", "no ZKBENCH line"},
		{"unknown field", strings.Replace(wrkOutput, "bytes=", "octets=", 1), `"octets"`},
		{"not a number", strings.Replace(wrkOutput, "p99_us=3500", "p99_us=3.5ms", 1), "p99_us"},
		{"negative", strings.Replace(wrkOutput, "read=2", "read=-2", 1), "read"},
		{"missing field", strings.Replace(wrkOutput, " max_us=9000", "", 1), "11 fields, want 12"},
		{"zero duration", strings.Replace(wrkOutput, "duration_us=5000000", "duration_us=0", 1), "duration is 0"},
		{"no equals sign", strings.Replace(wrkOutput, "bytes=9876", "bytes", 1), "key=value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseWrk(tc.out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseWrk error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestWrkArgs(t *testing.T) {
	got := WrkOptions{Script: "s.lua", URL: "http://127.0.0.1:1/", Duration: 3500 * time.Millisecond}.Args()
	want := []string{"-t1", "-c64", "-d3s", "--latency", "-s", "s.lua", "http://127.0.0.1:1/"}
	if !slices.Equal(got, want) {
		t.Errorf("Args = %q, want %q", got, want)
	}
	got = WrkOptions{Script: "s", URL: "u", Threads: 2, Conns: 1}.Args()
	if !slices.Equal(got[:3], []string{"-t2", "-c2", "-d1s"}) {
		t.Errorf("Args with 2 threads, 1 connection, no duration = %q, want -t2 -c2 -d1s first", got)
	}
	got = WrkOptions{Script: "s", URL: "u", Headers: []string{"Authorization: Bearer t", "Origin: o"}}.Args()
	want = []string{"-t1", "-c64", "-d1s", "--latency", "-s", "s", "-H", "Authorization: Bearer t", "-H", "Origin: o", "u"}
	if !slices.Equal(got, want) {
		t.Errorf("Args with headers = %q, want %q", got, want)
	}
}

func TestRunWrkAgainstBackend(t *testing.T) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		t.Skip("wrk not installed (scripts/ensure-deps.sh wrk)")
	}
	srv := httptest.NewServer(&Backend{ID: "b"})
	defer srv.Close()
	script := filepath.Join(t.TempDir(), "report.lua")
	if err := WriteWrkScript(script); err != nil {
		t.Fatal(err)
	}
	r, err := RunWrk(context.Background(), WrkOptions{Bin: wrk, Script: script, URL: srv.URL + LargePath, Conns: 2, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests == 0 || r.Errors() != 0 || r.P50 <= 0 || r.P99 < r.P50 || r.Max < r.P99 {
		t.Fatalf("RunWrk = %+v, want requests, no errors, 0 < p50 <= p99 <= max", r)
	}
	if per := r.Bytes / r.Requests; per < LargeSize {
		t.Errorf("read %d bytes per request, want at least the %d-byte body", per, LargeSize)
	}
	_, err = RunWrk(context.Background(), WrkOptions{Bin: wrk, Script: script, URL: "http://127.0.0.1:1/", Conns: 1, Duration: time.Second})
	if err == nil || !strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("RunWrk against a closed port: error %v, want wrk's refused connection", err)
	}
	if _, err := RunWrk(context.Background(), WrkOptions{URL: srv.URL}); err == nil || !strings.Contains(err.Error(), "script") {
		t.Errorf("RunWrk without a script: error %v, want one naming the script", err)
	}
}
