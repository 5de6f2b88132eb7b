package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func decode(t *testing.T, rec *httptest.ResponseRecorder, v any) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json (body %q)", ct, rec.Body.String())
	}
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		t.Fatalf("decode %T from %q: %v", v, rec.Body.String(), err)
	}
}

func fakeGatherer(t *testing.T) prometheus.Gatherer {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "zkgate_test_total", Help: "A test counter."})
	c.Add(3)
	reg.MustRegister(c)
	return reg
}

func TestGetRoutes(t *testing.T) {
	src := newFakeSource()
	s := newTestServer(t, src, Options{})
	rec := do(s.Handler(), "GET", "/api/routes", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/routes = %d, want 200", rec.Code)
	}
	var got []RouteInfo
	decode(t, rec, &got)
	if !reflect.DeepEqual(got, src.Routes()) {
		t.Errorf("GET /api/routes = %+v, want %+v", got, src.Routes())
	}
	// The key names are an API: scripts rely on them.
	var raw []map[string]any
	json.Unmarshal(rec.Body.Bytes(), &raw)
	for _, key := range []string{"name", "priority", "hosts", "path_prefix", "methods", "service", "balancer", "hash_on", "strip_prefix", "traffic"} {
		if _, ok := raw[1][key]; !ok {
			t.Errorf("route JSON lacks key %q: %v", key, raw[1])
		}
	}
	checkTrafficKeys(t, "route", raw[0]["traffic"], false)

	src.update(func(f *fakeSource) { f.routes = nil })
	rec = do(s.Handler(), "GET", "/api/routes", "")
	if strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Errorf("GET /api/routes without routes = %q, want []", rec.Body.String())
	}
}

func TestGetServices(t *testing.T) {
	src := newFakeSource()
	s := newTestServer(t, src, Options{})
	rec := do(s.Handler(), "GET", "/api/services", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/services = %d, want 200", rec.Code)
	}
	var got []ServiceInfo
	decode(t, rec, &got)
	if len(got) != 2 || got[0].Name != "echo" || got[1].Name != "users" {
		t.Fatalf("GET /api/services names = %v, want [echo users]", got)
	}
	wantCounts := EndpointCounts{Total: 5, Healthy: 2, Unhealthy: 1, Ejected: 1, Draining: 1}
	if got[0].Counts != wantCounts {
		t.Errorf("echo counts = %+v, want %+v", got[0].Counts, wantCounts)
	}
	echo, _ := src.Service("echo")
	if !reflect.DeepEqual(got[0].Endpoints, echo.Endpoints) {
		t.Errorf("echo endpoints = %+v, want %+v", got[0].Endpoints, echo.Endpoints)
	}
	if !got[1].Stale || got[1].Discovery.Format != "curator" {
		t.Errorf("users = %+v, want stale with format curator", got[1])
	}

	var raw []map[string]any
	json.Unmarshal(rec.Body.Bytes(), &raw)
	for _, key := range []string{"name", "discovery", "synced", "stale", "last_sync", "panicking", "removal_guard", "counts", "traffic", "endpoints"} {
		if _, ok := raw[0][key]; !ok {
			t.Errorf("service JSON lacks key %q", key)
		}
	}
	checkTrafficKeys(t, "service", raw[0]["traffic"], true)
	ep := raw[0]["endpoints"].([]any)[2].(map[string]any)
	checkTrafficKeys(t, "endpoint", ep["traffic"], true)
	for _, key := range []string{"addr", "id", "weight", "format", "znode", "state", "since", "last_probe", "last_probe_result", "consecutive_failures", "in_flight", "requests", "traffic"} {
		if _, ok := ep[key]; !ok {
			t.Errorf("endpoint JSON lacks key %q: %v", key, ep)
		}
	}
	if ep["state"] != "unhealthy" || ep["consecutive_failures"] != 4.0 {
		t.Errorf("endpoint JSON = %v, want state unhealthy with 4 failures", ep)
	}
}

// checkTrafficKeys checks the keys of a traffic object: a service's and an
// endpoint's have ejections, a route's not; the latencies are there with
// requests.
func checkTrafficKeys(t *testing.T, what string, v any, ejections bool) {
	t.Helper()
	tr, ok := v.(map[string]any)
	if !ok {
		t.Errorf("%s traffic = %v, want an object", what, v)
		return
	}
	keys := []string{"window_seconds", "requests", "errors", "retries", "latency_p50_seconds", "latency_p99_seconds"}
	if ejections {
		keys = append(keys, "ejections")
	}
	for _, key := range keys {
		if _, ok := tr[key]; !ok {
			t.Errorf("%s traffic JSON lacks key %q: %v", what, key, tr)
		}
	}
	if _, ok := tr["ejections"]; ok && !ejections {
		t.Errorf("%s traffic JSON has ejections: %v", what, tr)
	}
	if len(tr) != len(keys) {
		t.Errorf("%s traffic JSON = %v, want exactly the keys %q", what, tr, keys)
	}
}

func TestGetService(t *testing.T) {
	src := newFakeSource()
	src.update(func(f *fakeSource) {
		f.services["empty"] = ServiceInfo{Name: "empty", Discovery: DiscoveryInfo{Kind: "zookeeper", Path: "/services/empty"}}
	})
	s := newTestServer(t, src, Options{})

	rec := do(s.Handler(), "GET", "/api/services/users", "")
	var got ServiceInfo
	decode(t, rec, &got)
	if rec.Code != http.StatusOK || got.Name != "users" || got.Counts.Total != 1 {
		t.Errorf("GET /api/services/users = %d %+v, want 200 users with 1 endpoint", rec.Code, got)
	}
	// A service serving the membership snapshot says so, with the age.
	if !strings.Contains(rec.Body.String(), `"age_seconds": 754`) || !strings.Contains(rec.Body.String(), `"read_at": "2025-05-01T11:47:`) {
		t.Errorf("GET /api/services/users lacks the snapshot's read_at and age_seconds: %s", rec.Body.String())
	}

	rec = do(s.Handler(), "GET", "/api/services/empty", "")
	if !strings.Contains(rec.Body.String(), `"endpoints": []`) {
		t.Errorf("a service without endpoints shows %s, want \"endpoints\": []", rec.Body.String())
	}
	if strings.Contains(rec.Body.String(), "last_sync") || strings.Contains(rec.Body.String(), "snapshot") {
		t.Errorf("a never-synced service without a snapshot shows a last_sync or a snapshot: %s", rec.Body.String())
	}

	rec = do(s.Handler(), "GET", "/api/services/nope", "")
	if rec.Code != http.StatusNotFound {
		t.Fatalf("GET /api/services/nope = %d, want 404", rec.Code)
	}
	var e errorBody
	decode(t, rec, &e)
	if !strings.Contains(e.Error, `"nope"`) {
		t.Errorf("404 error %q does not name the service", e.Error)
	}
}

func TestGetZooKeeperAndState(t *testing.T) {
	src := newFakeSource()
	now := time.Date(2025, 5, 1, 12, 0, 5, 0, time.UTC)
	s := newTestServer(t, src, Options{Now: func() time.Time { return now }})

	rec := do(s.Handler(), "GET", "/api/zookeeper", "")
	var zk ZooKeeperInfo
	decode(t, rec, &zk)
	if !reflect.DeepEqual(zk, src.ZooKeeper()) {
		t.Errorf("GET /api/zookeeper = %+v, want %+v", zk, src.ZooKeeper())
	}

	src.update(func(f *fakeSource) { f.ready, f.reason = false, "draining" })
	rec = do(s.Handler(), "GET", "/api/state", "")
	var st State
	decode(t, rec, &st)
	if !st.Time.Equal(now) || st.Ready || st.Reason != "draining" || len(st.Routes) != 2 || len(st.Services) != 2 ||
		st.ZooKeeper.SessionID != "0x1000a2b3c4d0000" || st.Services[0].Counts.Total != 5 {
		t.Errorf("GET /api/state = %+v", st)
	}
	// The gateway itself: version, start, uptime against the state's time,
	// entry points with their connections.
	g := src.Gateway()
	if st.Gateway.Version != g.Version || !st.Gateway.StartedAt.Equal(g.StartedAt) ||
		st.Gateway.UptimeSeconds != now.Sub(g.StartedAt).Seconds() ||
		!reflect.DeepEqual(st.Gateway.EntryPoints, g.EntryPoints) {
		t.Errorf("GET /api/state gateway = %+v, want %+v with uptime %v", st.Gateway, g, now.Sub(g.StartedAt))
	}
}

func TestDrainAndUndrain(t *testing.T) {
	src := newFakeSource()
	src.update(func(f *fakeSource) {
		s := f.services["users"]
		s.Endpoints = append(s.Endpoints, EndpointInfo{Addr: "[::1]:9102", Weight: 1, State: StateHealthy})
		f.services["users"] = s
	})
	s := newTestServer(t, src, Options{})

	rec := do(s.Handler(), "POST", "/api/services/echo/endpoints/127.0.0.1:9001/drain", "")
	var res ActionResult
	decode(t, rec, &res)
	if rec.Code != http.StatusOK || res != (ActionResult{Action: "drain", Service: "echo", Addr: "127.0.0.1:9001"}) {
		t.Fatalf("drain = %d %+v", rec.Code, res)
	}
	if got := endpointState(t, s, "echo", "127.0.0.1:9001"); got != StateDraining {
		t.Errorf("after drain the endpoint is %q, want draining", got)
	}

	rec = do(s.Handler(), "POST", "/api/services/echo/endpoints/127.0.0.1%3A9001/undrain", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("undrain with an escaped colon = %d, want 200 (%s)", rec.Code, rec.Body.String())
	}
	if got := endpointState(t, s, "echo", "127.0.0.1:9001"); got != StateHealthy {
		t.Errorf("after undrain the endpoint is %q, want healthy", got)
	}

	rec = do(s.Handler(), "POST", "/api/services/users/endpoints/%5B::1%5D:9102/drain", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("drain of an IPv6 endpoint = %d, want 200 (%s)", rec.Code, rec.Body.String())
	}

	want := []string{"drain echo 127.0.0.1:9001", "undrain echo 127.0.0.1:9001", "drain users [::1]:9102"}
	if !reflect.DeepEqual(src.actions, want) {
		t.Errorf("source actions = %q, want %q", src.actions, want)
	}
}

func TestDrainErrors(t *testing.T) {
	src := newFakeSource()
	s := newTestServer(t, src, Options{})
	tests := []struct {
		path string
		want string
	}{
		{"/api/services/nope/endpoints/127.0.0.1:9001/drain", `service "nope"`},
		{"/api/services/echo/endpoints/127.0.0.1:1/drain", "127.0.0.1:1"},
		{"/api/services/echo/endpoints/127.0.0.1:1/undrain", "127.0.0.1:1"},
	}
	for _, tt := range tests {
		rec := do(s.Handler(), "POST", tt.path, "")
		var e errorBody
		decode(t, rec, &e)
		if rec.Code != http.StatusNotFound || !strings.Contains(e.Error, tt.want) {
			t.Errorf("POST %s = %d %q, want 404 naming %s", tt.path, rec.Code, e.Error, tt.want)
		}
	}

	failing := &failingSource{fakeSource: newFakeSource(), err: errors.New("health checker stopped")}
	s = newTestServer(t, failing, Options{})
	rec := do(s.Handler(), "POST", "/api/services/echo/endpoints/127.0.0.1:9001/drain", "")
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "health checker stopped") {
		t.Errorf("drain failing for another reason = %d %s, want 500 with the error", rec.Code, rec.Body.String())
	}
}

func TestReload(t *testing.T) {
	src := newFakeSource()
	s := newTestServer(t, src, Options{})

	rec := do(s.Handler(), "POST", "/api/reload", "")
	var res ActionResult
	decode(t, rec, &res)
	if rec.Code != http.StatusOK || res.Action != "reload" {
		t.Fatalf("reload = %d %+v, want 200 reload", rec.Code, res)
	}

	src.update(func(f *fakeSource) { f.reloadErr = errBadConfig })
	rec = do(s.Handler(), "POST", "/api/reload", "")
	var e errorBody
	decode(t, rec, &e)
	if rec.Code != http.StatusUnprocessableEntity || e.Error != errBadConfig.Error() {
		t.Errorf("bad reload = %d %q, want 422 %q", rec.Code, e.Error, errBadConfig)
	}
	if src.reloads != 2 {
		t.Errorf("source reloaded %d times, want 2", src.reloads)
	}
}

func TestEvents(t *testing.T) {
	src := newFakeSource()
	s := newTestServer(t, src, Options{EventInterval: 10 * time.Millisecond})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /api/events: %v", err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q, want text/event-stream", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	next := func() State {
		t.Helper()
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				if event != "state" {
					t.Fatalf("data line after event %q, want state", event)
				}
				var st State
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &st); err != nil {
					t.Fatalf("decode event data: %v", err)
				}
				return st
			}
		}
		t.Fatalf("event stream ended: %v", sc.Err())
		return State{}
	}
	if st := next(); len(st.Services) != 2 {
		t.Fatalf("first event has %d services, want 2", len(st.Services))
	}
	src.removeEndpoint("echo", "127.0.0.1:9001")
	for i := 0; ; i++ {
		st := next()
		if st.Services[0].Counts.Total == 4 {
			break
		}
		if i > 100 {
			t.Fatal("no event showed the removed endpoint within 100 events")
		}
	}

	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShutdown()
	s.Shutdown(shutdownCtx)
	for sc.Scan() { // drain until the server ends the stream
	}
	if ctx.Err() != nil {
		t.Fatal("the event stream did not end after Shutdown")
	}
}

// endpointState reads an endpoint's state through the API.
func endpointState(t *testing.T, s *Server, service, addr string) string {
	t.Helper()
	var svc ServiceInfo
	decode(t, do(s.Handler(), "GET", "/api/services/"+service, ""), &svc)
	for _, e := range svc.Endpoints {
		if e.Addr == addr {
			return e.State
		}
	}
	t.Fatalf("service %s has no endpoint %s", service, addr)
	return ""
}

// failingSource fails every Drain with err.
type failingSource struct {
	*fakeSource
	err error
}

func (f *failingSource) Drain(string, string) error { return f.err }

// TestUnknownAPIAnswersJSON: a path or method the API does not have gets the
// API's JSON error, not net/http's text/plain "404 page not found".
func TestUnknownAPIAnswersJSON(t *testing.T) {
	s := newTestServer(t, newFakeSource(), Options{})
	tests := []struct {
		method, path string
		code         int
		allow, want  string
	}{
		{"GET", "/api/nope", http.StatusNotFound, "", "no API at /api/nope"},
		{"GET", "/api/services/echo/extra", http.StatusNotFound, "", "no API at /api/services/echo/extra"},
		{"DELETE", "/api/", http.StatusNotFound, "", "no API at /api/"},
		{"GET", "/api/reload", http.StatusMethodNotAllowed, "POST", "method GET not allowed on /api/reload"},
		{"POST", "/api/state", http.StatusMethodNotAllowed, "GET", "method POST not allowed on /api/state"},
		{"PUT", "/api/services/echo", http.StatusMethodNotAllowed, "GET", "method PUT not allowed"},
	}
	for _, tt := range tests {
		rec := do(s.Handler(), tt.method, tt.path, "")
		var e errorBody
		decode(t, rec, &e)
		if rec.Code != tt.code || rec.Header().Get("Allow") != tt.allow || !strings.Contains(e.Error, tt.want) {
			t.Errorf("%s %s = %d Allow %q %q; want %d Allow %q naming %q", tt.method, tt.path, rec.Code, rec.Header().Get("Allow"), e.Error, tt.code, tt.allow, tt.want)
		}
	}
	// Outside /api/, net/http's answers stay.
	if rec := do(s.Handler(), "GET", "/nope", ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET /nope = %d; want 404", rec.Code)
	}
}
