package proxy

import (
	"net/http/httptest"
	"testing"
)

func TestHashKey(t *testing.T) {
	req := httptest.NewRequest("GET", "/p", nil)
	req.Header.Set("X-User-Id", "u1")
	req.Header.Add("Cookie", "a=1; session=\"s-42\"; b=2")
	tests := []struct{ hashOn, want string }{
		{"", ""},
		{"client_ip", "10.1.2.3"},
		{"path", "/clean"},
		{"header:x-user-id", "u1"},
		{"header:X-Missing", ""},
		{"cookie:session", "s-42"},
		{"cookie:b", "2"},
		{"cookie:missing", ""},
	}
	for _, tt := range tests {
		spec, err := parseHashOn(tt.hashOn)
		if err != nil {
			t.Fatalf("parseHashOn(%q): %v", tt.hashOn, err)
		}
		if got := spec.key(headerMap(req.Header), "/clean", "10.1.2.3"); got != tt.want {
			t.Errorf("hash_on %q: key %q, want %q", tt.hashOn, got, tt.want)
		}
	}
}

func TestParseHashOnErrors(t *testing.T) {
	for _, s := range []string{"ip", "client_ip:x", "path:x", "header:", "cookie:", "header:a b", ":x"} {
		if _, err := parseHashOn(s); err == nil {
			t.Errorf("parseHashOn(%q) accepted", s)
		}
	}
}

func TestCookieValueDoesNotAllocate(t *testing.T) {
	h := headerMap{"Cookie": {"a=1; session=s-42", "c=3"}}
	allocs := testing.AllocsPerRun(1000, func() {
		if cookieValue(h, "c") != "3" {
			t.Fatal("cookie not found")
		}
	})
	if allocs != 0 {
		t.Errorf("cookieValue allocates %v times, want 0", allocs)
	}
}

func TestCheckHashOnIsParseHashOn(t *testing.T) {
	for _, s := range []string{"", "client_ip", "path", "header:X-A", "cookie:s", "ip", "header:", "cookie:a b", "path:x"} {
		_, want := parseHashOn(s)
		if got := CheckHashOn(s); (got == nil) != (want == nil) {
			t.Errorf("CheckHashOn(%q) = %v, parseHashOn says %v", s, got, want)
		}
	}
}
