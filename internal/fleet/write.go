package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/zkgate/zkgate/discovery"
	"github.com/zkgate/zkgate/internal/config"
)

// Kind is what a znode holds.
type Kind string

// Kinds of Change.
const (
	KindRoute   Kind = "route"
	KindService Kind = "service"
)

// Change is one route or service to write or delete.
type Change struct {
	Kind Kind
	Name string
	// Data is the route or service document (JSON or YAML); nil deletes
	// the znode.
	Data []byte
	// Version, when set, is the data version the znode must have (an
	// If-Match): a put or delete of a znode that changed since, or does
	// not exist, fails with discovery.ErrConflict. Unset, a put creates
	// the znode or overwrites it, and a delete deletes whatever is there.
	Version *int32
}

// Result is a znode written: its path and new data version (-1 deleted).
type Result struct {
	Znode   string `json:"znode"`
	Version int32  `json:"version"`
}

// ErrNotFound is a delete of a znode that does not exist.
var ErrNotFound = errors.New("fleet: no such route or service")

// InvalidError is a change refused before anything was written: the
// configuration it would make does not validate.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return "fleet: invalid change: " + e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

// Writer writes routes and services to a fleet's ZooKeeper.
type Writer struct {
	// Client is the ZooKeeper session. Required.
	Client *discovery.Client
	// ConfigPath is fleet.config_path. Required.
	ConfigPath string
	// ACL is given to the znodes created (see fleet.acl).
	ACL discovery.ACL
	// Check validates a whole configuration made of the route and service
	// znodes given, as a gateway would (config.ParseFleet and the
	// gateway's build). Required.
	Check func(routes, services []config.FleetNode) error
	// Current returns the configuration that changes are checked
	// against (a gateway's latest read); nil, or ok false, reads it from
	// ZooKeeper.
	Current func() (st discovery.TreeState, ok bool)
}

// Znode returns the path of a route or service.
func (w *Writer) Znode(kind Kind, name string) string {
	if kind == KindService {
		return path.Join(ServicesDir(w.ConfigPath), name)
	}
	return path.Join(RoutesDir(w.ConfigPath), name)
}

// state returns the configuration to check changes against.
func (w *Writer) state() (discovery.TreeState, error) {
	if w.Current != nil {
		if st, ok := w.Current(); ok {
			return st, nil
		}
	}
	return w.Client.ReadDirs([]string{RoutesDir(w.ConfigPath), ServicesDir(w.ConfigPath)})
}

// checkName refuses names that are not one znode name.
func checkName(kind Kind, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return &InvalidError{Err: fmt.Errorf("%s name %q: not a znode name", kind, name)}
	}
	return nil
}

// Apply checks the configuration that changes would make and, when it
// validates, writes them in one transaction. Errors: *InvalidError (nothing
// written), ErrNotFound, and discovery's ErrConflict, ErrNotAuthorized and
// ErrNoSession.
func (w *Writer) Apply(changes []Change) ([]Result, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	st, err := w.state()
	if err != nil {
		return nil, err
	}
	rdir, sdir := RoutesDir(w.ConfigPath), ServicesDir(w.ConfigPath)
	known := map[string]discovery.TreeNode{}
	for _, d := range []string{rdir, sdir} {
		for _, n := range st.Dirs[d] {
			known[n.Path] = n
		}
	}
	next := map[string][]byte{} // path → data, after the changes
	for p, n := range known {
		next[p] = n.Data
	}
	seen := map[string]bool{}
	for _, c := range changes {
		if err := checkName(c.Kind, c.Name); err != nil {
			return nil, err
		}
		p := w.Znode(c.Kind, c.Name)
		if seen[p] {
			return nil, &InvalidError{Err: fmt.Errorf("%s changed twice in one write", p)}
		}
		seen[p] = true
		if c.Data == nil {
			if _, ok := known[p]; !ok && c.Version == nil {
				return nil, fmt.Errorf("%w: %s", ErrNotFound, p)
			}
			delete(next, p)
		} else {
			next[p] = c.Data
		}
	}
	if err := w.Check(nodesOf(next, rdir), nodesOf(next, sdir)); err != nil {
		return nil, &InvalidError{Err: err}
	}
	ops := make([]discovery.Op, 0, len(changes))
	for _, c := range changes {
		p := w.Znode(c.Kind, c.Name)
		_, exists := known[p]
		op := discovery.Op{Path: p, Data: c.Data, Version: discovery.AnyVersion, Delete: c.Data == nil}
		if c.Version != nil {
			op.Version = *c.Version
		} else if !exists && !op.Delete {
			op.Create = true
		}
		ops = append(ops, op)
	}
	versions, err := w.Client.Commit(ops, w.ACL)
	if err != nil {
		return nil, err
	}
	out := make([]Result, len(ops))
	for i, op := range ops {
		out[i] = Result{Znode: op.Path, Version: versions[i]}
	}
	return out, nil
}

// nodesOf lists the znodes of data under dir, sorted by name.
func nodesOf(data map[string][]byte, dir string) []config.FleetNode {
	var out []config.FleetNode
	for p, d := range data {
		if path.Dir(p) == dir {
			out = append(out, config.FleetNode{Name: path.Base(p), Path: p, Data: d})
		}
	}
	slices.SortFunc(out, func(a, b config.FleetNode) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// PushChanges returns the changes that make the fleet's routes and
// services those of a configuration file (its data; source names it in
// errors): a put for each route and service whose document differs from
// its znode's, a delete for each znode the file does not declare. Each
// document is written as JSON, a route without its name (the znode's).
func PushChanges(file []byte, source string, current discovery.TreeState, configPath string) ([]Change, error) {
	var doc struct {
		Routes   []map[string]any          `yaml:"routes"`
		Services map[string]map[string]any `yaml:"services"`
	}
	if err := yaml.Unmarshal(file, &doc); err != nil {
		return nil, fmt.Errorf("%s: routes and services: %w", source, err)
	}
	var changes []Change
	want := map[string]bool{}
	existing := map[string][]byte{}
	for _, d := range []string{RoutesDir(configPath), ServicesDir(configPath)} {
		for _, n := range current.Dirs[d] {
			existing[n.Path] = n.Data
		}
	}
	put := func(kind Kind, name string, m map[string]any, key string) error {
		if m == nil {
			m = map[string]any{}
		}
		data, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", source, key, err)
		}
		p := path.Join(RoutesDir(configPath), name)
		if kind == KindService {
			p = path.Join(ServicesDir(configPath), name)
		}
		want[p] = true
		if old, ok := existing[p]; ok && bytes.Equal(old, data) {
			return nil
		}
		changes = append(changes, Change{Kind: kind, Name: name, Data: data})
		return nil
	}
	var errs []error
	names := map[string]int{}
	for i, r := range doc.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		name, _ := r["name"].(string)
		if name == "" {
			errs = append(errs, fmt.Errorf("%s: %s.name: required (it names the route's znode)", source, key))
			continue
		}
		if j, dup := names[name]; dup {
			errs = append(errs, fmt.Errorf("%s: %s.name: duplicate route name %q (also routes[%d])", source, key, name, j))
			continue
		}
		names[name] = i
		delete(r, "name")
		if err := put(KindRoute, name, r, key); err != nil {
			errs = append(errs, err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(doc.Services)) {
		if err := put(KindService, strings.ToLower(name), doc.Services[name], "services."+name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, p := range slices.Sorted(maps.Keys(existing)) {
		if !want[p] {
			kind := KindRoute
			if path.Dir(p) == ServicesDir(configPath) {
				kind = KindService
			}
			changes = append(changes, Change{Kind: kind, Name: path.Base(p)})
		}
	}
	return changes, nil
}

// Pull returns the fleet's routes and services as a configuration file
// holding only them (routes in name order, each with its name).
func Pull(st discovery.TreeState, configPath string) ([]byte, error) {
	routes, services, err := Nodes(st, configPath)
	if err != nil {
		return nil, err
	}
	var out struct {
		Routes   []yaml.Node          `yaml:"routes"`
		Services map[string]yaml.Node `yaml:"services"`
	}
	out.Routes = []yaml.Node{}
	out.Services = map[string]yaml.Node{}
	for _, n := range routes {
		doc, err := document(n)
		if err != nil {
			return nil, err
		}
		if doc.Kind == yaml.MappingNode && !hasKey(doc, "name") {
			doc.Content = append([]*yaml.Node{{Kind: yaml.ScalarNode, Value: "name"}, {Kind: yaml.ScalarNode, Value: n.Name}}, doc.Content...)
		}
		out.Routes = append(out.Routes, *doc)
	}
	for _, n := range services {
		doc, err := document(n)
		if err != nil {
			return nil, err
		}
		out.Services[n.Name] = *doc
	}
	return yaml.Marshal(&out)
}

// document parses a znode's data (JSON or YAML) as a YAML node, in block
// style; empty data is an empty mapping.
func document(n config.FleetNode) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(n.Data, &doc); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON or YAML: %w", n.Path, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}, nil
	}
	root := doc.Content[0]
	clearStyle(root)
	return root, nil
}

func clearStyle(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle
	for _, c := range n.Content {
		clearStyle(c)
	}
}

func hasKey(m *yaml.Node, key string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return true
		}
	}
	return false
}
