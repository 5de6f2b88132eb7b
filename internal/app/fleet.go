package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zkgate/zkgate/discovery"
	"github.com/zkgate/zkgate/internal/admin"
	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/internal/fleet"
	"github.com/zkgate/zkgate/internal/metrics"
	"github.com/zkgate/zkgate/internal/version"
)

// fleetMode is fleet mode's part of a running gateway (fleet.enabled):
// the watcher that applies the routes and services kept in ZooKeeper, the
// writer behind the admin API's PUT and DELETE, and the announcement.
type fleetMode struct {
	cfg       config.Fleet
	name      string
	parser    *config.FleetParser // shared by the watcher, the writer and reloads
	client    *discovery.Client
	watcher   *fleet.Watcher
	writer    *fleet.Writer
	announcer *fleet.Announcer
}

// The Gateway serves the admin API's fleet endpoints.
var _ admin.FleetSource = (*Gateway)(nil)

// fleetACL is the ACL of the znodes written under cfg (fleet.acl).
func fleetACL(cfg *config.Config) discovery.ACL {
	if !cfg.Fleet.ACL.Enabled {
		return discovery.ACL{}
	}
	return discovery.ACL{Digest: cfg.ZooKeeper.Auth.Credentials, WorldRead: cfg.Fleet.ACL.WorldRead}
}

// fleetName is this gateway's name in the fleet: fleet.name, else the host
// name and the admin port.
func fleetName(cfg *config.Config) string {
	if cfg.Fleet.Name != "" {
		return cfg.Fleet.Name
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "zkgate"
	}
	if _, port, err := net.SplitHostPort(cfg.Admin.Address); err == nil && port != "" {
		host += "-" + port
	}
	return strings.NewReplacer("/", "_", ":", "_").Replace(host)
}

// startFleet starts fleet mode when the configuration enables it: the
// routes and services under fleet.config_path are applied as they change.
func (g *Gateway) startFleet(cfg *config.Config) error {
	zk := g.zk.Load()
	if !cfg.Fleet.Enabled || zk == nil {
		return nil
	}
	f := &fleetMode{cfg: cfg.Fleet, name: fleetName(cfg), client: zk, parser: new(config.FleetParser)}
	f.writer = &fleet.Writer{Client: zk, ConfigPath: cfg.Fleet.ConfigPath, ACL: fleetACL(cfg), Check: fleetChecker(g.path, f.parser, g.runningServices)}
	ann, err := fleet.Announce(zk, cfg.Fleet.GatewaysPath, fleet.Announcement{
		Name: f.name, Address: cfg.Admin.Address, Version: version.Version, Started: g.started,
	}, discovery.ACL{}, g.log) // open: every gateway of the fleet announces itself there, writer or not
	if err != nil {
		return fmt.Errorf("fleet.gateways_path: %w", err)
	}
	f.announcer = ann
	apply := func(routes, services []config.FleetNode) error { return g.applyFleet(f.parser, routes, services) }
	w, err := fleet.Watch(zk, cfg.Fleet.ConfigPath, apply, fleet.Options{
		OnApplied:    func(st fleet.Status) { ann.Applied(st.Version, st.AppliedAt) },
		SnapshotFile: fleet.SnapshotPath(cfg.ZooKeeper.SnapshotFile),
		Seed:         g.fleetSeed,
	}, g.log)
	if err != nil {
		ann.Close()
		return fmt.Errorf("fleet.config_path: %w", err)
	}
	f.watcher = w
	// A write is checked against the latest state: every write
	// acknowledged before it, through any gateway, is in it.
	f.writer.Current = func() (discovery.TreeState, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if w.Sync(ctx) != nil {
			return discovery.TreeState{}, false // read it from ZooKeeper
		}
		return w.Latest()
	}
	g.fleet.Store(f)
	g.log.WithFields(logrus.Fields{"name": f.name, "config_path": cfg.Fleet.ConfigPath}).Info("fleet mode: routes and services come from ZooKeeper")
	return nil
}

// applyStart applies the configuration a start serves: the file's, and in
// fleet mode the running fleet version kept in the fleet snapshot (next to
// zookeeper.snapshot_file), when there is one, until ZooKeeper is read.
// It is the start's first apply, which the membership snapshot's services
// are seeded at.
func (g *Gateway) applyStart(cfg *config.Config) error {
	path := fleet.SnapshotPath(cfg.ZooKeeper.SnapshotFile)
	if !cfg.Fleet.Enabled || path == "" || g.zk.Load() == nil {
		return g.apply(cfg)
	}
	log := g.log.WithField("snapshot_file", path)
	s, err := fleet.ReadSnapshot(path, cfg.Fleet.ConfigPath)
	if errors.Is(err, fs.ErrNotExist) {
		return g.apply(cfg)
	}
	var seeded *config.Config
	if err == nil {
		routes, services := s.Nodes()
		if seeded, err = parseFleet(nil, g.path, routes, services); err == nil {
			err = g.apply(seeded)
		}
	}
	if err != nil {
		log.WithError(err).Warn("fleet snapshot not used")
		return g.apply(cfg)
	}
	g.fleetSeed = s
	g.cfg.Store(seeded)
	log.WithFields(logrus.Fields{"version": s.Version, "written": s.Written, "routes": len(s.Routes), "services": len(s.Services)}).
		Info("fleet configuration of the snapshot applied until ZooKeeper is read")
	return nil
}

// stopFleet stops watching and withdraws the announcement, before the
// ZooKeeper client closes.
func (g *Gateway) stopFleet() {
	if f := g.fleet.Load(); f != nil {
		f.watcher.Close()
		f.announcer.Close()
	}
}

// fleetPending says why readiness waits in fleet mode: until the first
// configuration version was read (applied or refused).
func (g *Gateway) fleetPending() string {
	f := g.fleet.Load()
	if f == nil {
		return ""
	}
	select {
	case <-f.watcher.Synced():
		return ""
	default:
		return "fleet: first read of the routes and services in ZooKeeper pending"
	}
}

// parseFleet assembles the static settings of the file at path and the
// given znodes into a configuration, validated as a file (see
// config.FleetParser; p may be nil).
func parseFleet(p *config.FleetParser, path string, routes, services []config.FleetNode) (*config.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if p == nil {
		p = new(config.FleetParser)
	}
	return p.Parse(data, path, routes, services)
}

// fleetChecker returns the check of a fleet configuration whose static
// settings are the file at path, as zkgate validate checks a file:
// decoded, validated, and built without starting anything. running (may
// be nil) gives the services already built, which the build takes over
// where unchanged instead of building them again, as a reload does.
func fleetChecker(path string, p *config.FleetParser, running func() map[string]*service) func(routes, services []config.FleetNode) error {
	return func(routes, services []config.FleetNode) error {
		cfg, err := parseFleet(p, path, routes, services)
		if err != nil {
			return err
		}
		var built map[string]*service
		if running != nil {
			built = running()
		}
		_, err = build(cfg, built, nil, nil)
		return config.FleetErrors(err, routes, services)
	}
}

// runningServices returns the running services by name.
func (g *Gateway) runningServices() map[string]*service {
	g.mu.Lock()
	defer g.mu.Unlock()
	return maps.Clone(g.services)
}

// applyFleet applies one fleet configuration version through the reload
// path; an error leaves the running configuration in place.
func (g *Gateway) applyFleet(p *config.FleetParser, routes, services []config.FleetNode) error {
	cfg, err := parseFleet(p, g.path, routes, services)
	if err == nil {
		err = config.FleetErrors(g.apply(cfg), routes, services)
	}
	if errors.Is(err, errShuttingDown) {
		return err
	}
	g.metrics.ConfigReloaded(err)
	if err != nil {
		return err
	}
	g.cfg.Store(cfg)
	return nil
}

// loadConfig reads the configuration a reload applies: the file, and in
// fleet mode the fleet's running routes and services with it.
func (g *Gateway) loadConfig() (*config.Config, error) {
	f := g.fleet.Load()
	if f == nil {
		return config.Load(g.path)
	}
	routes, services := f.watcher.Running()
	return parseFleet(f.parser, g.path, routes, services)
}

// FleetMode implements admin.FleetSource.
func (g *Gateway) FleetMode() bool { return g.fleet.Load() != nil }

// applyReload applies a reload's configuration: in fleet mode the fleet's
// running version (which cfg was made of, unless the watcher applied a
// newer one since) with the file's static settings, excluding the watcher.
func (g *Gateway) applyReload(cfg *config.Config) error {
	f := g.fleet.Load()
	if f == nil {
		return g.apply(cfg)
	}
	return f.watcher.Reapply(func(routes, services []config.FleetNode) error {
		next, err := parseFleet(f.parser, g.path, routes, services)
		if err != nil {
			return err
		}
		return config.FleetErrors(g.apply(next), routes, services)
	})
}

// Fleet implements admin.FleetSource.
func (g *Gateway) Fleet() (admin.FleetInfo, error) {
	f := g.fleet.Load()
	if f == nil {
		return admin.FleetInfo{}, admin.ErrFleetOff
	}
	st := f.watcher.Status()
	info := admin.FleetInfo{
		Name: f.name, ConfigPath: f.cfg.ConfigPath, GatewaysPath: f.cfg.GatewaysPath,
		Version: st.Version, AppliedAt: st.AppliedAt, Latest: st.Latest, Stale: st.Stale, SnapshotWritten: st.SnapshotWritten,
		Routes: st.Routes, Services: st.Services, Problems: []admin.FleetProblem{}, Znodes: map[string]int32{},
		Gateways: []admin.FleetGateway{},
	}
	for _, p := range st.Problems {
		info.Problems = append(info.Problems, admin.FleetProblem(p))
	}
	if latest, ok := f.watcher.Latest(); ok {
		for _, list := range latest.Dirs {
			for _, n := range list {
				info.Znodes[n.Path] = n.Version
			}
		}
	}
	gws, err := fleet.Gateways(f.client, f.cfg.GatewaysPath)
	if err != nil {
		info.GatewaysError = err.Error()
	}
	for _, gw := range gws {
		info.Gateways = append(info.Gateways, admin.FleetGateway{
			Name: gw.Name, Address: gw.Address, Version: gw.Version, ConfigVersion: gw.ConfigVersion,
			Since: gw.Since, Started: gw.Started, Znode: gw.Znode, Behind: gw.Behind, Problem: gw.Problem,
		})
	}
	return info, nil
}

// FleetSummary implements admin.FleetSource: the watcher's state, no read
// of ZooKeeper.
func (g *Gateway) FleetSummary() admin.FleetSummary {
	f := g.fleet.Load()
	if f == nil {
		return admin.FleetSummary{}
	}
	st := f.watcher.Status()
	return admin.FleetSummary{Enabled: true, Version: st.Version, Stale: st.Stale, Problems: len(st.Problems)}
}

// fleetMetrics is fleet mode's part of the scrape-time metrics; nil when
// fleet mode is off.
func (g *Gateway) fleetMetrics() *metrics.FleetState {
	f := g.fleet.Load()
	if f == nil {
		return nil
	}
	st := f.watcher.Status()
	return &metrics.FleetState{ConfigVersion: st.Version, ApplyFailures: st.Refused, Stale: st.Stale}
}

// FleetWrite implements admin.FleetSource.
func (g *Gateway) FleetWrite(changes []admin.FleetChange) ([]admin.FleetResult, error) {
	f := g.fleet.Load()
	if f == nil {
		return nil, admin.ErrFleetOff
	}
	cs := make([]fleet.Change, len(changes))
	for i, c := range changes {
		cs[i] = fleet.Change{Kind: fleet.Kind(c.Kind), Name: c.Name, Data: c.Data, Version: c.Version}
	}
	start := time.Now()
	res, err := f.writer.Apply(cs)
	if err != nil {
		return nil, adminFleetError(err)
	}
	g.log.WithField("changes", len(cs)).WithField("took", time.Since(start).Round(time.Microsecond).String()).Info("fleet: written")
	out := make([]admin.FleetResult, len(res))
	for i, r := range res {
		out[i] = admin.FleetResult(r)
	}
	return out, nil
}

// adminFleetError maps a fleet write error to the admin API's.
func adminFleetError(err error) error {
	var inv *fleet.InvalidError
	switch {
	case errors.As(err, &inv):
		return fmt.Errorf("%w: %s", admin.ErrFleetInvalid, problemText(inv.Err))
	case errors.Is(err, discovery.ErrConflict):
		return fmt.Errorf("%w: %v", admin.ErrFleetConflict, err)
	case errors.Is(err, discovery.ErrNotAuthorized):
		return fmt.Errorf("%w: %v", admin.ErrFleetForbidden, err)
	case errors.Is(err, fleet.ErrNotFound):
		return fmt.Errorf("%w: %v", admin.ErrNotFound, err)
	case errors.Is(err, discovery.ErrNoSession):
		return fmt.Errorf("%w: %v", admin.ErrFleetUnavailable, err)
	}
	return err
}

// problemText joins the problems of an error on "; ".
func problemText(err error) string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		parts := make([]string, 0, len(j.Unwrap()))
		for _, e := range j.Unwrap() {
			parts = append(parts, problemText(e))
		}
		return strings.Join(parts, "; ")
	}
	return err.Error()
}
