package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fleetFake is a Source in fleet mode recording the writes it is given.
// Its fleet is info, or when nil one gateway running version 7.
type fleetFake struct {
	*fakeSource
	writes [][]FleetChange
	err    error

	infoMu sync.Mutex
	info   *FleetInfo
}

func (f *fleetFake) FleetMode() bool { return true }

func (f *fleetFake) Fleet() (FleetInfo, error) {
	f.infoMu.Lock()
	defer f.infoMu.Unlock()
	if f.info == nil {
		return FleetInfo{Name: "gw-1", Version: 7, Problems: []FleetProblem{}}, nil
	}
	info := *f.info
	info.Problems = slices.Clone(info.Problems)
	info.Gateways = slices.Clone(info.Gateways)
	return info, nil
}

func (f *fleetFake) FleetSummary() FleetSummary {
	info, _ := f.Fleet()
	return FleetSummary{Version: info.Version, Stale: info.Stale, Problems: len(info.Problems)}
}

// setFleet replaces the fleet's state.
func (f *fleetFake) setFleet(info FleetInfo) {
	f.infoMu.Lock()
	f.info = &info
	f.infoMu.Unlock()
}

func (f *fleetFake) FleetWrite(changes []FleetChange) ([]FleetResult, error) {
	f.writes = append(f.writes, changes)
	if f.err != nil {
		return nil, f.err
	}
	out := make([]FleetResult, len(changes))
	for i, c := range changes {
		out[i] = FleetResult{Znode: "/z/" + c.Kind + "s/" + c.Name, Version: 4}
		if c.Data == nil {
			out[i].Version = -1
		}
	}
	return out, nil
}

func fleetRequest(t *testing.T, s *Server, method, path, ifMatch, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

func TestFleetWrites(t *testing.T) {
	f := &fleetFake{fakeSource: newFakeSource()}
	s := New(Options{Source: f, Token: "tok"})

	rec := fleetRequest(t, s, http.MethodPut, "/api/routes/api", `"3"`, `{"service": "echo"}`)
	if rec.Code != http.StatusOK || rec.Header().Get("ETag") != `"4"` {
		t.Fatalf("PUT route = %d %s (ETag %q)", rec.Code, rec.Body, rec.Header().Get("ETag"))
	}
	c := f.writes[0][0]
	if len(f.writes[0]) != 1 || c.Kind != "route" || c.Name != "api" || string(c.Data) != `{"service": "echo"}` || c.Version == nil || *c.Version != 3 {
		t.Errorf("write given %+v", f.writes[0])
	}

	// A route and its service together: one write of two changes.
	rec = fleetRequest(t, s, http.MethodPut, "/api/routes/api", "", `{"route": {"service": "Echo"}, "service": {"timeouts": {"dial": "1s"}}}`)
	if rec.Code != http.StatusOK || len(f.writes[1]) != 2 {
		t.Fatalf("PUT route and service = %d %s, writes %+v", rec.Code, rec.Body, f.writes[1])
	}
	if r, sv := f.writes[1][0], f.writes[1][1]; string(r.Data) != `{"service": "Echo"}` || sv.Kind != "service" || sv.Name != "echo" || string(sv.Data) != `{"timeouts": {"dial": "1s"}}` {
		t.Errorf("envelope split into %+v", f.writes[1])
	}

	rec = fleetRequest(t, s, http.MethodDelete, "/api/services/echo", "", "")
	if rec.Code != http.StatusOK || f.writes[2][0].Data != nil || f.writes[2][0].Kind != "service" {
		t.Errorf("DELETE service = %d, write %+v", rec.Code, f.writes[2])
	}

	if rec := fleetRequest(t, s, http.MethodPut, "/api/routes/api", "three", "{}"); rec.Code != http.StatusBadRequest {
		t.Errorf("bad If-Match = %d", rec.Code)
	}
	if rec := fleetRequest(t, s, http.MethodPut, "/api/routes/api", "", `{"route": {"match": {}}, "service": {}}`); rec.Code != http.StatusBadRequest {
		t.Errorf("envelope whose route names no service = %d", rec.Code)
	}
	if rec := fleetRequest(t, s, http.MethodPut, "/api/routes/api", "", strings.Repeat("x", maxFleetBody+1)); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("body over 1 MiB = %d", rec.Code)
	}
	if len(f.writes) != 3 {
		t.Errorf("refused requests reached the source: %d writes", len(f.writes))
	}
}

func TestFleetWriteErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("%w: routes/api: service: unknown service", ErrFleetInvalid), http.StatusBadRequest},
		{fmt.Errorf("%w: routes/api", ErrFleetConflict), http.StatusPreconditionFailed},
		{fmt.Errorf("%w", ErrFleetForbidden), http.StatusForbidden},
		{fmt.Errorf("%w: routes/api", ErrNotFound), http.StatusNotFound},
		{fmt.Errorf("%w", ErrFleetUnavailable), http.StatusServiceUnavailable},
		{errors.New("boom"), http.StatusInternalServerError},
	} {
		f := &fleetFake{fakeSource: newFakeSource(), err: tc.err}
		rec := fleetRequest(t, New(Options{Source: f, Token: "tok"}), http.MethodPut, "/api/routes/api", "", "{}")
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.err.Error()) {
			t.Errorf("%v: %d %s, want %d with the error", tc.err, rec.Code, rec.Body, tc.code)
		}
	}
}

func TestFleetNeedsTokenAndFleetMode(t *testing.T) {
	f := &fleetFake{fakeSource: newFakeSource()}
	if rec := fleetRequest(t, New(Options{Source: f}), http.MethodPut, "/api/routes/api", "", "{}"); rec.Code != http.StatusForbidden ||
		!strings.Contains(rec.Body.String(), "admin.token") || len(f.writes) != 0 {
		t.Errorf("write without admin.token = %d %s", rec.Code, rec.Body)
	}
	plain := New(Options{Source: newFakeSource(), Token: "tok"})
	for _, m := range []string{http.MethodPut, http.MethodDelete} {
		if rec := fleetRequest(t, plain, m, "/api/routes/api", "", "{}"); rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "no API at") {
			t.Errorf("%s without fleet mode = %d %s", m, rec.Code, rec.Body)
		}
	}
	if rec := fleetRequest(t, plain, http.MethodGet, "/api/fleet", "", ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET /api/fleet without fleet mode = %d", rec.Code)
	}
	if rec := fleetRequest(t, New(Options{Source: f, Token: "tok"}), http.MethodGet, "/api/fleet", "", ""); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"version": 7`) {
		t.Errorf("GET /api/fleet = %d %s", rec.Code, rec.Body)
	}
}

// TestStateFleetSummary checks /api/state's fleet summary: enabled alone
// without fleet mode; with it, the running version, staleness and the
// number of problems, whose detail stays in /api/fleet.
func TestStateFleetSummary(t *testing.T) {
	state := func(src Source) map[string]any {
		t.Helper()
		rec := fleetRequest(t, New(Options{Source: src, Token: "tok"}), http.MethodGet, "/api/state", "", "")
		var st map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &st); rec.Code != http.StatusOK || err != nil {
			t.Fatalf("GET /api/state = %d %s (%v)", rec.Code, rec.Body, err)
		}
		return st
	}
	if got := fmt.Sprint(state(newFakeSource())["fleet"]); got != "map[enabled:false problems:0 stale:false version:0]" {
		t.Errorf("fleet without fleet mode: %s", got)
	}
	f := &fleetFake{fakeSource: newFakeSource()}
	f.setFleet(FleetInfo{Version: 4294967342, Latest: 4294967350, Stale: true,
		Problems: []FleetProblem{{Znode: "/zkgate/config/routes/broken", Key: "timeout", Problem: `invalid duration "soon"`}},
		Gateways: []FleetGateway{{Name: "gw-1"}}})
	st := state(f)
	if got := fmt.Sprint(st["fleet"]); got != "map[enabled:true problems:1 stale:true version:4.294967342e+09]" {
		t.Errorf("fleet in fleet mode: %s", got)
	}
	// Each fact once: the detail is /api/fleet's.
	if b, _ := json.Marshal(st); strings.Contains(string(b), "broken") || strings.Contains(string(b), "gw-1") {
		t.Errorf("/api/state repeats /api/fleet's detail: %s", b)
	}
}
