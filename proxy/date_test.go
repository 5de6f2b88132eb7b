package proxy

import (
	"math/rand/v2"
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

// appendRFC3339Nano writes what time.RFC3339Nano does in UTC, for times in
// the cached second, in later and earlier ones, with and without a
// fraction and trailing zeros, in any zone and far years.
func TestAppendRFC3339NanoMatchesTimeFormat(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	zones := []*time.Location{time.UTC, time.FixedZone("east", 5*3600+1800), time.FixedZone("west", -8*3600)}
	now := time.Now()
	var times []time.Time
	for _, base := range []time.Time{
		now, now.Add(-time.Second), now.Add(3 * time.Second), now.Add(-24 * time.Hour),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(-5, 6, 7, 8, 9, 10, 11, time.UTC),
		time.Unix(0, 0), time.Unix(-1, 5e8),
	} {
		for _, ns := range []int{0, 1, 10, 100000000, 120000000, 999999999, 500, rng.IntN(1e9)} {
			for _, z := range zones {
				times = append(times, time.Date(base.Year(), base.Month(), base.Day(), base.Hour(), base.Minute(), base.Second(), ns, time.UTC).In(z))
			}
		}
	}
	for i := 0; i < 2000; i++ {
		times = append(times, now.Add(time.Duration(rng.Int64N(int64(10*time.Second)))-5*time.Second).In(zones[i%len(zones)]))
	}
	for _, tm := range times {
		want := tm.UTC().AppendFormat([]byte("x"), time.RFC3339Nano)
		if got := appendRFC3339Nano([]byte("x"), tm); string(got) != string(want) {
			t.Fatalf("appendRFC3339Nano(%v) = %q, want %q", tm, got, want)
		}
	}
}

func BenchmarkAppendRFC3339Nano(b *testing.B) {
	buf := make([]byte, 0, 64)
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			buf = appendRFC3339Nano(buf[:0], time.Now())
		}
	})
	b.Run("AppendFormat", func(b *testing.B) {
		for b.Loop() {
			buf = time.Now().UTC().AppendFormat(buf[:0], time.RFC3339Nano)
		}
	})
}
