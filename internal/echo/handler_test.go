package echo

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func serve(h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, strings.NewReader(body)))
	return rec
}

func TestEchoRepliesWithIdentityAndRequest(t *testing.T) {
	h := &Handler{Instance: "backend-1", Addr: "127.0.0.1:9001", Weight: 3}
	rec := serve(h, "POST", "/some/path?x=1", "hello")
	if rec.Code != 200 || rec.Header().Get("X-Echo-Instance") != "backend-1" {
		t.Fatalf("status %d, instance header %q", rec.Code, rec.Header().Get("X-Echo-Instance"))
	}
	var r Reply
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Instance != "backend-1" || r.Weight != 3 || r.Request.Method != "POST" ||
		r.Request.Path != "/some/path" || r.Request.Query != "x=1" || r.Request.BodyBytes != 5 || r.Count != 1 {
		t.Fatalf("reply %+v", r)
	}
}

func TestFailToggleFailsRequestsAndHealth(t *testing.T) {
	h := &Handler{Instance: "b"}
	if rec := serve(h, "GET", "/fail", ""); !strings.Contains(rec.Body.String(), `"failing":true`) {
		t.Fatalf("/fail answered %q", rec.Body.String())
	}
	if rec := serve(h, "GET", "/healthz", ""); rec.Code != 500 {
		t.Errorf("/healthz while failing: %d, want 500", rec.Code)
	}
	if rec := serve(h, "GET", "/", ""); rec.Code != 500 {
		t.Errorf("/ while failing: %d, want 500", rec.Code)
	}
	serve(h, "GET", "/fail", "")
	if rec := serve(h, "GET", "/healthz", ""); rec.Code != 200 {
		t.Errorf("/healthz after toggling back: %d, want 200", rec.Code)
	}
}

func TestDelayIsValidated(t *testing.T) {
	h := &Handler{Instance: "b"}
	for _, d := range []string{"soon", "-1s", "2h"} {
		if rec := serve(h, "GET", "/?delay="+d, ""); rec.Code != 400 || !strings.Contains(rec.Body.String(), d) {
			t.Errorf("delay=%s: %d %q, want 400 naming the value", d, rec.Code, rec.Body.String())
		}
	}
	if rec := serve(h, "GET", "/?delay=1ms", ""); rec.Code != 200 {
		t.Errorf("delay=1ms: %d", rec.Code)
	}
}
