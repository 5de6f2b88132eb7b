package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fleet mode's API (see internal/fleet):
//
//	GET    /api/fleet              FleetInfo: the configuration version, its problems, the gateways
//	PUT    /api/routes/{name}      write a route (body: the route's document, JSON or YAML, or
//	                               {"route": {...}, "service": {...}} for a route and its service at once)
//	DELETE /api/routes/{name}      delete a route
//	PUT    /api/services/{name}    write a service (body: its document)
//	DELETE /api/services/{name}    delete a service
//
// A write is validated before anything is written (400 with the problems,
// nothing written); with If-Match: "<version>" it happens only if the znode
// still has that data version (412 otherwise); the answer's ETag is the
// route's or service's new version. Writes need the admin token: without
// admin.token they are refused (403).

// Errors a FleetSource's Write wraps, each mapped to a status.
var (
	ErrFleetInvalid     = errors.New("invalid configuration")             // 400
	ErrFleetConflict    = errors.New("changed meanwhile")                 // 412
	ErrFleetForbidden   = errors.New("refused by the znodes' ACL")        // 403
	ErrFleetUnavailable = errors.New("zookeeper unavailable")             // 503
	ErrFleetOff         = errors.New("fleet mode is off (fleet.enabled)") // 404
)

// maxFleetBody bounds a written document: ZooKeeper's own limit on a
// znode's data is 1 MiB.
const maxFleetBody = 1 << 20

// FleetSource is implemented by a Source that runs in fleet mode.
type FleetSource interface {
	// FleetMode reports whether fleet mode is on; quick.
	FleetMode() bool
	// Fleet returns the fleet's state; an error wrapping ErrFleetOff when
	// fleet mode is off. It may read ZooKeeper (the gateways).
	Fleet() (FleetInfo, error)
	// FleetSummary returns the part of the state /api/state shows; quick
	// (no read of ZooKeeper: it is called on every poll).
	FleetSummary() FleetSummary
	// FleetWrite validates and writes changes in one transaction.
	FleetWrite(changes []FleetChange) ([]FleetResult, error)
}

// FleetChange is one route or service to write (Data set) or delete.
type FleetChange struct {
	Kind    string // "route" or "service"
	Name    string
	Data    []byte
	Version *int32 // If-Match
}

// FleetResult is one znode written and its new data version (-1: deleted).
type FleetResult struct {
	Znode   string `json:"znode"`
	Version int32  `json:"version"`
}

// FleetSummary is fleet mode in /api/state: enough for the status page to
// know that fleet mode is on and whether something is wrong; GET /api/fleet
// gives the detail (the problems, the gateways).
type FleetSummary struct {
	// Enabled is set in fleet mode; the other fields are zero without it.
	Enabled bool `json:"enabled"`
	// Version is the configuration version this gateway runs (as
	// FleetInfo.Version).
	Version int64 `json:"version"`
	// Stale is set while ZooKeeper cannot be read: the running version may
	// be out of date.
	Stale bool `json:"stale"`
	// Problems counts the reasons the latest version read was refused
	// (FleetInfo.Problems); 0 when it runs.
	Problems int `json:"problems"`
}

// FleetInfo is GET /api/fleet.
type FleetInfo struct {
	Name         string `json:"name"`
	ConfigPath   string `json:"config_path"`
	GatewaysPath string `json:"gateways_path"`
	// Version is the configuration version this gateway runs; Latest the
	// latest read, refused for Problems when they differ.
	Version   int64     `json:"version"`
	AppliedAt time.Time `json:"applied_at,omitzero"`
	Latest    int64     `json:"latest"`
	Stale     bool      `json:"stale"`
	// SnapshotWritten is set while the running version is the fleet
	// snapshot's, read at start: when it was written.
	SnapshotWritten time.Time      `json:"snapshot_written,omitzero"`
	Routes          int            `json:"routes"`
	Services        int            `json:"services"`
	Problems        []FleetProblem `json:"problems"`
	// Znodes are the data versions of the route and service znodes of
	// the latest read, for If-Match.
	Znodes        map[string]int32 `json:"znodes"`
	Gateways      []FleetGateway   `json:"gateways"`
	GatewaysError string           `json:"gateways_error,omitempty"`
}

// FleetProblem is one reason the latest configuration version was refused.
type FleetProblem struct {
	Znode   string `json:"znode,omitempty"`
	File    string `json:"file,omitempty"`
	Key     string `json:"key,omitempty"`
	Problem string `json:"problem"`
}

// FleetGateway is one gateway of the fleet.
type FleetGateway struct {
	Name          string    `json:"name"`
	Address       string    `json:"address"`
	Version       string    `json:"version"`
	ConfigVersion int64     `json:"config_version"`
	Since         time.Time `json:"since,omitzero"`
	Started       time.Time `json:"started,omitzero"`
	Znode         string    `json:"znode"`
	Behind        bool      `json:"behind"` // runs an older configuration version than another
	Problem       string    `json:"problem,omitempty"`
}

// fleetRoutes registers the fleet API.
func (s *Server) fleetRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/fleet", s.getFleet)
	// Without fleet mode the writes are not there: the answer is the one
	// of an unknown API (404, or 405 where another method exists).
	write := func(kind string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if _, ok := s.fleetSource(); !ok {
				apiFallback(mux, w, r)
				return
			}
			s.fleetWrite(w, r, kind)
		}
	}
	mux.HandleFunc("PUT /api/routes/{name}", write("route"))
	mux.HandleFunc("DELETE /api/routes/{name}", write("route"))
	mux.HandleFunc("PUT /api/services/{name}", write("service"))
	mux.HandleFunc("DELETE /api/services/{name}", write("service"))
}

// fleetSource returns the Source as a FleetSource when fleet mode is on.
func (s *Server) fleetSource() (FleetSource, bool) {
	f, ok := s.opts.Source.(FleetSource)
	if !ok || !f.FleetMode() {
		return nil, false
	}
	return f, true
}

func (s *Server) getFleet(w http.ResponseWriter, _ *http.Request) {
	f, ok := s.fleetSource()
	if !ok {
		writeError(w, http.StatusNotFound, ErrFleetOff.Error())
		return
	}
	info, err := f.Fleet()
	if err != nil {
		writeError(w, fleetStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// fleetWrite serves PUT and DELETE of a route or service.
func (s *Server) fleetWrite(w http.ResponseWriter, r *http.Request, kind string) {
	f, _ := s.fleetSource()
	if s.opts.Token == "" {
		writeError(w, http.StatusForbidden, "fleet writes need the admin token: set admin.token")
		return
	}
	name := r.PathValue("name")
	version, err := ifMatch(r.Header.Get("If-Match"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	change := FleetChange{Kind: kind, Name: name, Version: version}
	changes := []FleetChange{change}
	if r.Method == http.MethodPut {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFleetBody))
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, "body larger than 1 MiB (ZooKeeper's limit on a znode)")
			return
		}
		if len(body) == 0 {
			body = []byte("{}")
		}
		changes[0].Data = body
		if kind == "route" {
			if route, svcName, svc, ok := splitEnvelope(body); ok {
				changes[0].Data = route
				if svcName == "" {
					writeError(w, http.StatusBadRequest, `{"route", "service"}: the route names no service`)
					return
				}
				changes = append(changes, FleetChange{Kind: "service", Name: svcName, Data: svc})
			}
		}
	}
	log := s.log.WithField("remote", r.RemoteAddr).WithField(kind, name)
	res, err := f.FleetWrite(changes)
	if err != nil {
		code := fleetStatus(err)
		log.WithError(err).Warn("admin: fleet write refused")
		writeError(w, code, err.Error())
		return
	}
	log.WithField("method", r.Method).Info("admin: fleet write")
	if len(res) > 0 && res[0].Version >= 0 {
		w.Header().Set("ETag", strconv.Quote(strconv.Itoa(int(res[0].Version))))
	}
	writeJSON(w, http.StatusOK, map[string]any{"written": res})
}

// fleetStatus maps a fleet error to its status.
func fleetStatus(err error) int {
	switch {
	case errors.Is(err, ErrFleetInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrFleetConflict):
		return http.StatusPreconditionFailed
	case errors.Is(err, ErrFleetForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrFleetOff):
		return http.StatusNotFound
	case errors.Is(err, ErrFleetUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// ifMatch parses an If-Match header holding one data version, quoted (an
// entity tag, weak or strong) or not; empty means none.
func ifMatch(h string) (*int32, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return nil, nil
	}
	v := strings.Trim(strings.TrimPrefix(h, "W/"), `"`)
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 0 {
		return nil, errors.New(`If-Match: want one version, as the ETag gave it, e.g. "3"`)
	}
	n32 := int32(n)
	return &n32, nil
}

// splitEnvelope recognises the body {"route": {...}, "service": {...}}
// ("route" is not a key of a route, so the two forms cannot be confused)
// and returns the route's and the service's documents and the service's
// name (the route's service).
func splitEnvelope(body []byte) (route []byte, service string, svc []byte, ok bool) {
	var env map[string]json.RawMessage
	if json.Unmarshal(body, &env) != nil {
		return nil, "", nil, false
	}
	r, hasRoute := env["route"]
	s, hasService := env["service"]
	if !hasRoute || !hasService || len(env) != 2 || len(r) == 0 || r[0] != '{' || len(s) == 0 || s[0] != '{' {
		return nil, "", nil, false
	}
	var named struct {
		Service string `json:"service"`
	}
	_ = json.Unmarshal(r, &named)
	return r, strings.ToLower(strings.TrimSpace(named.Service)), s, true
}
