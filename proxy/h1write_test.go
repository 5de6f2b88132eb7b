package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"reflect"
	"testing"
)

// TestWriteRequestMatchesRequestWrite: what writeRequest writes parses to
// the same request as http.Request.Write's output.
func TestWriteRequestMatchesRequestWrite(t *testing.T) {
	mk := func(method, url, host string, hdr http.Header, closeConn bool) *http.Request {
		r, err := http.NewRequest(method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Host = host
		r.Header = hdr
		r.Close = closeConn
		return r
	}
	for _, tc := range []struct {
		name string
		req  *http.Request
	}{
		{"plain", mk("GET", "http://10.0.0.1:8080/a/b?x=1&y=2", "", http.Header{"Accept": {"*/*"}, "X-Multi": {"a", "b"}}, false)},
		{"pass host", mk("GET", "http://10.0.0.1:8080/", "example.com", http.Header{"User-Agent": {"curl/8"}}, false)},
		{"empty user agent", mk("HEAD", "http://10.0.0.1:8080/", "", http.Header{"User-Agent": {""}}, false)},
		{"escaped path", mk("GET", "http://10.0.0.1:8080/a%2Fb/c%20d?q", "", http.Header{}, false)},
		{"force query", mk("GET", "http://10.0.0.1:8080/p?", "", http.Header{}, false)},
		{"post without body", mk("POST", "http://10.0.0.1:8080/submit", "", http.Header{}, false)},
		{"close", mk("DELETE", "http://10.0.0.1:8080/x", "", http.Header{"X-Spaces": {"  v  "}}, true)},
		{"newline value", mk("GET", "http://10.0.0.1:8080/", "", http.Header{"X-Bad": {"a\r\nInjected: 1"}}, false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want, got bytes.Buffer
			if err := tc.req.Write(&want); err != nil {
				t.Fatal(err)
			}
			bw := bufio.NewWriter(&got)
			if err := writeRequest(bw, tc.req); err != nil {
				t.Fatal(err)
			}
			_ = bw.Flush()
			a, err := http.ReadRequest(bufio.NewReader(&want))
			if err != nil {
				t.Fatal(err)
			}
			b, err := http.ReadRequest(bufio.NewReader(&got))
			if err != nil {
				t.Fatalf("%q does not parse: %v", got.String(), err)
			}
			if a.Method != b.Method || a.RequestURI != b.RequestURI || a.Host != b.Host ||
				a.Close != b.Close || a.ContentLength != b.ContentLength || !reflect.DeepEqual(a.Header, b.Header) {
				t.Errorf("writeRequest wrote\n%q\nRequest.Write wrote\n%q", got.String(), want.String())
			}
		})
	}
}

func TestWriteRequestRejectsBadHost(t *testing.T) {
	r, _ := http.NewRequest("GET", "http://10.0.0.1/", nil)
	r.Host = "evil.com\r\nX: y"
	if err := writeRequest(bufio.NewWriter(&bytes.Buffer{}), r); err == nil {
		t.Error("a Host with CR LF was written")
	}
}

func TestWriteRequestDoesNotAllocate(t *testing.T) {
	r, _ := http.NewRequest("GET", "http://10.0.0.1:8080/api/items/42?x=1", nil)
	r.Header = http.Header{"Accept": {"*/*"}, "User-Agent": {"bench"}, "X-Forwarded-For": {"192.0.2.10"}}
	bw := bufio.NewWriter(&bytes.Buffer{})
	allocs := testing.AllocsPerRun(100, func() {
		bw.Reset(discardBuf{})
		if err := writeRequest(bw, r); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("writeRequest allocates %v times", allocs)
	}
}

type discardBuf struct{}

func (discardBuf) Write(p []byte) (int, error) { return len(p), nil }
