package proxy

import (
	"net/http"
	"testing"
	"time"
)

// An answer carries exactly one Date on both paths, decided after the
// route's edits and the endpoint's Connection field: the endpoint's when
// it passes, the route's when it sets one, else the gateway's own (as
// net/http's server adds one to a header without it). The fast path used
// to take any Date the endpoint sent as passed, so one its Connection
// named, or one the route removed, left the answer without a Date.
func TestDateAfterEditsAndConnection(t *testing.T) {
	const endpointDate = "Mon, 01 Jan 2001 00:00:00 GMT"
	const routeDate = "Tue, 02 Jan 2001 00:00:00 GMT"
	for _, c := range []struct {
		name, fields string
		pol          *Policies
		want         string // "": the gateway's own, within a minute of now
	}{
		{"endpoint's", "Date: " + endpointDate + "\r\n", nil, endpointDate},
		{"none from the endpoint", "", nil, ""},
		{"named by Connection", "Connection: Date\r\nDate: " + endpointDate + "\r\n", nil, ""},
		{"removed by the route", "Date: " + endpointDate + "\r\n", &Policies{RemoveResponseHeaders: []string{"date"}}, ""},
		{"set by the route", "Date: " + endpointDate + "\r\n", &Policies{SetResponseHeaders: map[string]string{"date": routeDate}}, routeDate},
		{"set by the route, none from the endpoint", "", &Policies{SetResponseHeaders: map[string]string{"Date": routeDate}}, routeDate},
	} {
		b := newRecBackend(t, cannedScript("HTTP/1.1 200 OK\r\n"+c.fields+"Content-Length: 2\r\n\r\nok"))
		h := routeHandler(t, b.addr(), c.pol)
		t.Run(c.name, func(t *testing.T) {
			bothPaths(t, func(t *testing.T) {
				res, body := rawRequest(t, pathFrontend(t, h), "GET / HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n")
				dates := res.Header.Values("Date")
				if res.StatusCode != http.StatusOK || string(body) != "ok" || len(dates) != 1 {
					t.Fatalf("answer %d %q with Date %q, want 200 \"ok\" with one Date", res.StatusCode, body, dates)
				}
				if c.want != "" {
					if dates[0] != c.want {
						t.Errorf("Date %q, want %q", dates[0], c.want)
					}
					return
				}
				d, err := http.ParseTime(dates[0])
				if err != nil || time.Since(d).Abs() > time.Minute {
					t.Errorf("Date %q (%v), want the gateway's own, now", dates[0], err)
				}
			})
		})
	}
}
