package benchkit

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAccessLogNotes(t *testing.T) {
	metrics := func(body string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/metrics" {
				http.NotFound(w, r)
				return
			}
			fmt.Fprint(w, body)
		}))
	}
	dropping := metrics("# HELP zkgate_access_log_dropped_total x\nzkgate_access_log_dropped_total_other 9\nzkgate_access_log_dropped_total 1234\n")
	defer dropping.Close()
	clean := metrics("zkgate_access_log_dropped_total 0\n")
	defer clean.Close()
	none := metrics("zkgate_requests_total 5\n")
	defer none.Close()
	targets := []*target{
		{TargetInfo: TargetInfo{Label: "A"}, accessLog: "a.log", admin: dropping.URL},
		{TargetInfo: TargetInfo{Label: "B"}, accessLog: "b.log", admin: clean.URL},
		{TargetInfo: TargetInfo{Label: "C"}, accessLog: "c.log", admin: none.URL},
		{TargetInfo: TargetInfo{Label: "no log"}, admin: clean.URL},
		{TargetInfo: TargetInfo{Label: "not zkgate"}, accessLog: "x"},
	}
	notes := accessLogNotes(targets)
	if len(notes) != 3 {
		t.Fatalf("notes = %q, want one for each zkgate with its access log on", notes)
	}
	for i, want := range []string{"A: the access log dropped 1234 lines", "B: the access log wrote every line", "C: access log drops unknown (no zkgate_access_log_dropped_total in"} {
		if !strings.HasPrefix(notes[i], want) {
			t.Errorf("note %d = %q, want it to start with %q", i, notes[i], want)
		}
	}
}

func TestBusyNote(t *testing.T) {
	if n := busyNote("0.50 0.40 0.30", 2); n != nil {
		t.Errorf("an idle machine got a note: %q", n)
	}
	if n := busyNote("unknown", 2); n != nil {
		t.Errorf("an unreadable load got a note: %q", n)
	}
	n := busyNote("5.22 7.33 5.45", 2)
	if len(n) != 1 || !strings.Contains(n[0], "load average 5.22 on 2 cores") {
		t.Errorf("busy machine note = %q", n)
	}
}
