// Package fleet is zkgate's fleet mode: routes and services kept in
// ZooKeeper, shared by every gateway of a fleet.
//
// # Layout
//
// Under fleet.config_path (default /zkgate/config):
//
//	routes/<name>     one route, the schema of one item of the file's routes (name optional)
//	services/<name>   one service, the schema of one entry of the file's services
//
// each as JSON or YAML. Under fleet.gateways_path (default /zkgate/gateways)
// each gateway keeps an ephemeral znode named after it, holding an
// Announcement.
//
// # Versions
//
// A Watcher reads both directories through a discovery.Tree, which
// publishes a transaction's changes together. The configuration version is
// the zxid of the last change (a znode's data, or a child created or
// deleted). Each version is handed whole to an Applier, which validates it
// exactly as a file (config.ParseFleet, then the gateway's build) and swaps
// it in, or refuses it: then the problems are kept, each naming the znode
// and the key, and the last good version keeps serving.
//
// # Writers
//
// A Writer validates a change against the rest of the configuration before
// writing anything, then writes it in one transaction with version checks
// (see Change.Version): the admin API's PUT and DELETE and zkgate config
// push and pull use it.
//
// This package knows ZooKeeper only through discovery and HTTP not at all.
package fleet

import (
	"context"
	"errors"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zkgate/zkgate/discovery"
	"github.com/zkgate/zkgate/internal/config"
)

// RoutesDir and ServicesDir are the directories of the routes and services
// under a configuration path.
func RoutesDir(configPath string) string   { return path.Join(configPath, "routes") }
func ServicesDir(configPath string) string { return path.Join(configPath, "services") }

// Applier validates and applies one configuration version: the route and
// service znodes. An error leaves the running configuration in place; its
// problems should be *config.FieldError naming the znode (see
// config.FleetErrors).
type Applier func(routes, services []config.FleetNode) error

// Problem is one reason a configuration version was refused.
type Problem struct {
	// Znode is the route or service znode at fault; empty when the
	// problem is not in one (the static file, or between routes).
	Znode string `json:"znode,omitempty"`
	// File is the configuration file at fault, for a problem with the
	// static settings.
	File string `json:"file,omitempty"`
	// Key is the key path within the znode's document (or the file).
	Key string `json:"key,omitempty"`
	// Problem says what is wrong.
	Problem string `json:"problem"`
}

// Status is a Watcher's state.
type Status struct {
	ConfigPath string `json:"config_path"`
	// Version is the configuration version running; 0 before the first.
	Version int64 `json:"version"`
	// AppliedAt is when it was applied.
	AppliedAt time.Time `json:"applied_at,omitzero"`
	// Latest is the latest version read from ZooKeeper; it differs from
	// Version when that one was refused (see Problems).
	Latest int64 `json:"latest"`
	// Problems are why Latest was refused; empty when it runs.
	Problems []Problem `json:"problems,omitempty"`
	// Refused counts the versions refused since the watcher started.
	Refused uint64 `json:"refused"`
	// Stale is set while ZooKeeper cannot be read (no session): the
	// running version may be out of date.
	Stale bool `json:"stale"`
	// Routes and Services count the running version's.
	Routes   int `json:"routes"`
	Services int `json:"services"`
	// SnapshotWritten is, while the running version is the snapshot's
	// (read at start, before the first read of ZooKeeper), when the
	// snapshot was written; zero otherwise.
	SnapshotWritten time.Time `json:"snapshot_written,omitzero"`
}

// Options configure a Watcher.
type Options struct {
	// OnApplied, when set, is called after each version applied, from the
	// watcher's goroutine.
	OnApplied func(Status)
	// SnapshotFile, when set, is where the running version is kept (see
	// WriteSnapshot).
	SnapshotFile string
	// Seed is a snapshot the caller applied at start (see ReadSnapshot):
	// the running version until the first read of ZooKeeper.
	Seed *Snapshot
}

// Watcher watches a fleet's routes and services and hands every version to
// an Applier.
type Watcher struct {
	tree       *discovery.Tree
	configPath string
	apply      Applier
	opts       Options
	log        logrus.FieldLogger

	applyMu sync.Mutex // held while a version is applied and recorded (see Reapply)

	mu       sync.Mutex
	status   Status
	routes   []config.FleetNode // the running version's
	services []config.FleetNode
	synced   chan struct{} // closed after the first version was handled
	once     sync.Once
}

// Watch starts watching the configuration under configPath. apply is
// called from the watcher's goroutine with each version.
func Watch(c *discovery.Client, configPath string, apply Applier, opts Options, log logrus.FieldLogger) (*Watcher, error) {
	w := &Watcher{configPath: configPath, apply: apply, opts: opts, log: log.WithField("component", "fleet"),
		status: Status{ConfigPath: configPath}, synced: make(chan struct{})}
	w.seed()
	t, err := discovery.NewTree(c, []string{RoutesDir(configPath), ServicesDir(configPath)}, w.changed, log)
	if err != nil {
		return nil, err
	}
	w.tree = t
	return w, nil
}

// Close stops watching.
func (w *Watcher) Close() { w.tree.Close() }

// Synced is closed once the first version read was applied or refused.
func (w *Watcher) Synced() <-chan struct{} { return w.synced }

// Status returns the watcher's state.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	st := w.status
	st.Problems = append([]Problem(nil), st.Problems...)
	w.mu.Unlock()
	st.Stale = w.tree.Stale()
	return st
}

// Running returns the route and service znodes of the running version.
func (w *Watcher) Running() (routes, services []config.FleetNode) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.routes, w.services
}

// Sync waits until the latest state includes every change committed
// before the call (see discovery.Tree.Sync).
func (w *Watcher) Sync(ctx context.Context) error { return w.tree.Sync(ctx) }

// Latest returns the latest state read from ZooKeeper; ok is false before
// the first read.
func (w *Watcher) Latest() (discovery.TreeState, bool) { return w.tree.State() }

// seed records the snapshot the caller applied as the running version.
func (w *Watcher) seed() {
	s := w.opts.Seed
	if s == nil {
		return
	}
	routes, services := s.Nodes()
	w.mu.Lock()
	w.status.Version, w.status.AppliedAt, w.status.SnapshotWritten = s.Version, time.Now(), s.Written
	w.status.Routes, w.status.Services = len(routes), len(services)
	w.routes, w.services = routes, services
	w.mu.Unlock()
}

// Reapply calls apply with the running version's znodes, excluding the
// application of a new version meanwhile: a reload of the static file
// then never puts back a version older than one just applied.
func (w *Watcher) Reapply(apply Applier) error {
	w.applyMu.Lock()
	defer w.applyMu.Unlock()
	routes, services := w.Running()
	return apply(routes, services)
}

// changed handles a new state of the tree.
func (w *Watcher) changed(st discovery.TreeState) {
	w.applyMu.Lock()
	defer w.applyMu.Unlock()
	routes, services, err := Nodes(st, w.configPath)
	start := time.Now()
	if err == nil {
		err = w.apply(routes, services)
	}
	w.mu.Lock()
	w.status.Latest = st.Zxid
	w.status.SnapshotWritten = time.Time{}
	if err != nil {
		w.status.Problems = Problems(err, w.configPath)
		w.status.Refused++
		w.mu.Unlock()
		w.log.WithFields(logrus.Fields{"version": st.Zxid, "running": w.status.Version, "problems": len(w.status.Problems)}).
			WithError(err).Error("fleet configuration refused; keeping the running one")
	} else {
		w.status.Version, w.status.AppliedAt, w.status.Problems = st.Zxid, time.Now(), nil
		w.status.Routes, w.status.Services = len(routes), len(services)
		w.routes, w.services = routes, services
		status := w.status
		w.mu.Unlock()
		w.log.WithFields(logrus.Fields{"version": st.Zxid, "routes": len(routes), "services": len(services),
			"apply": time.Since(start).Round(time.Microsecond).String()}).Info("fleet configuration applied")
		if w.opts.SnapshotFile != "" {
			if err := WriteSnapshot(w.opts.SnapshotFile, w.configPath, st.Zxid, routes, services); err != nil {
				w.log.WithError(err).Warn("fleet snapshot not written")
			}
		}
		if w.opts.OnApplied != nil {
			w.opts.OnApplied(status)
		}
	}
	w.once.Do(func() { close(w.synced) })
}

// Nodes turns a tree state into the route and service znodes under
// configPath. A znode that could not be read (its ACL forbids it) is a
// problem of the version, naming it.
func Nodes(st discovery.TreeState, configPath string) (routes, services []config.FleetNode, err error) {
	var errs []error
	conv := func(list []discovery.TreeNode) []config.FleetNode {
		out := make([]config.FleetNode, 0, len(list))
		for _, n := range list {
			if n.Err != nil {
				errs = append(errs, &config.FieldError{Source: n.Path, Err: n.Err})
				continue
			}
			out = append(out, config.FleetNode{Name: n.Name, Path: n.Path, Data: n.Data})
		}
		return out
	}
	routes, services = conv(st.Dirs[RoutesDir(configPath)]), conv(st.Dirs[ServicesDir(configPath)])
	return routes, services, errors.Join(errs...)
}

// Problems lists the problems of an Applier's error; a problem whose
// source is not under configPath is the file's.
func Problems(err error, configPath string) []Problem {
	var out []Problem
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var fe *config.FieldError
		if errors.As(e, &fe) {
			p := Problem{Key: fe.Key, Problem: fe.Err.Error()}
			if strings.HasPrefix(fe.Source, configPath+"/") {
				p.Znode = fe.Source
			} else {
				p.File = fe.Source
			}
			out = append(out, p)
			return
		}
		out = append(out, Problem{Problem: e.Error()})
	}
	walk(err)
	return out
}
