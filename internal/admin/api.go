package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// errorBody is the JSON body of every admin error answer.
type errorBody struct {
	Error string `json:"error"`
}

// ActionResult is the JSON answer of a successful drain, undrain or reload.
type ActionResult struct {
	Action  string `json:"action"`
	Service string `json:"service,omitempty"`
	Addr    string `json:"addr,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) // the client may be gone; nothing to do about it
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

// State takes the whole picture from the Source now.
func (s *Server) State() State {
	src := s.opts.Source
	ready, reason := src.Ready()
	st := State{
		Time:      s.opts.Now().UTC(),
		Ready:     ready,
		Reason:    reason,
		Gateway:   src.Gateway(),
		ZooKeeper: src.ZooKeeper(),
		Routes:    src.Routes(),
		Services:  s.services(),
	}
	if !st.Gateway.StartedAt.IsZero() {
		st.Gateway.UptimeSeconds = max(st.Time.Sub(st.Gateway.StartedAt).Seconds(), 0)
	}
	if st.Gateway.EntryPoints == nil {
		st.Gateway.EntryPoints = []EntryPointInfo{}
	}
	if st.Routes == nil {
		st.Routes = []RouteInfo{}
	}
	if st.ZooKeeper.Servers == nil {
		st.ZooKeeper.Servers = []string{}
	}
	if f, ok := s.fleetSource(); ok {
		st.Fleet = f.FleetSummary()
		st.Fleet.Enabled = true
	}
	return st
}

func (s *Server) services() []ServiceInfo {
	svcs := s.opts.Source.Services()
	out := make([]ServiceInfo, len(svcs))
	for i, svc := range svcs {
		out[i] = countEndpoints(svc)
	}
	return out
}

func (s *Server) getState(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.State())
}

func (s *Server) getRoutes(w http.ResponseWriter, _ *http.Request) {
	routes := s.opts.Source.Routes()
	if routes == nil {
		routes = []RouteInfo{}
	}
	writeJSON(w, http.StatusOK, routes)
}

func (s *Server) getServices(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.services())
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	svc, ok := s.opts.Source.Service(name)
	if !ok {
		writeError(w, http.StatusNotFound, "service "+quote(name)+" not found")
		return
	}
	writeJSON(w, http.StatusOK, countEndpoints(svc))
}

func (s *Server) getZooKeeper(w http.ResponseWriter, _ *http.Request) {
	zk := s.opts.Source.ZooKeeper()
	if zk.Servers == nil {
		zk.Servers = []string{}
	}
	writeJSON(w, http.StatusOK, zk)
}

// events streams one State per EventInterval as server-sent events
// ("event: state"), the first at once, until the client goes or the server
// shuts down.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	tick := time.NewTicker(s.opts.EventInterval)
	defer tick.Stop()
	for {
		data, err := json.Marshal(s.State())
		if err != nil {
			s.log.WithError(err).Error("admin: encode state event")
			return
		}
		if _, err := w.Write(append(append([]byte("event: state\ndata: "), data...), '\n', '\n')); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-tick.C:
		case <-r.Context().Done():
			return
		case <-s.stop:
			return
		}
	}
}

func (s *Server) drain(w http.ResponseWriter, r *http.Request) {
	s.endpointAction(w, r, "drain", s.opts.Source.Drain)
}

func (s *Server) undrain(w http.ResponseWriter, r *http.Request) {
	s.endpointAction(w, r, "undrain", s.opts.Source.Undrain)
}

func (s *Server) endpointAction(w http.ResponseWriter, r *http.Request, action string, do func(service, addr string) error) {
	service, addr := r.PathValue("name"), r.PathValue("addr")
	log := s.log.WithField("service", service).WithField("addr", addr).WithField("remote", r.RemoteAddr)
	if err := do(service, addr); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, ErrNotFound) {
			code = http.StatusNotFound
		}
		log.WithError(err).Warn("admin: " + action + " failed")
		writeError(w, code, err.Error())
		return
	}
	log.Info("admin: " + action)
	writeJSON(w, http.StatusOK, ActionResult{Action: action, Service: service, Addr: addr})
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	log := s.log.WithField("remote", r.RemoteAddr)
	if err := s.opts.Source.Reload(); err != nil {
		log.WithError(err).Warn("admin: reload rejected, the running configuration is kept")
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	log.Info("admin: configuration reloaded")
	writeJSON(w, http.StatusOK, ActionResult{Action: "reload"})
}

// quote returns name JSON-quoted, safe to show in a message.
func quote(name string) string {
	b, _ := json.Marshal(name)
	return string(b)
}
