package config

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Fleet is fleet mode: routes and services are kept in ZooKeeper, one znode
// each, and every gateway of the fleet serves the same ones. The file then
// holds only the static settings.
type Fleet struct {
	// Enabled turns fleet mode on: routes and services come from the
	// znodes under config_path (config_path/routes/<name>, one route
	// each, and config_path/services/<name>, one service each, in the
	// schema of one entry of the file's routes and services, as JSON or
	// YAML), and the file must declare none. With zookeeper.snapshot_file
	// set, the running routes and services are also kept in
	// <snapshot_file>.fleet.json, which a gateway started while ZooKeeper
	// cannot be read serves until it can. Default false (routes and
	// services come from this file).
	Enabled bool `mapstructure:"enabled"`
	// ConfigPath is the znode under which the routes and services live.
	// Default "/zkgate/config".
	ConfigPath string `mapstructure:"config_path"`
	// GatewaysPath is the znode under which each gateway of the fleet
	// announces itself (an ephemeral znode named after fleet.name).
	// Default "/zkgate/gateways".
	GatewaysPath string `mapstructure:"gateways_path"`
	// Name is this gateway's name in the fleet (its announcement znode);
	// letters, digits, '.', '_', '-'. Default "" (the host name and the
	// admin port).
	Name string `mapstructure:"name"`
	// ACL is the access control of the znodes the writers create.
	ACL FleetACL `mapstructure:"acl"`
}

// FleetACL is the ACL of the route and service znodes (and of their
// parents) that the admin API and zkgate config push create.
type FleetACL struct {
	// Enabled gives the znodes written a digest ACL: every permission to
	// the identity of zookeeper.auth.credentials, which must be set, and
	// none (or read, see world_read) to anyone else, so that only
	// writers holding those credentials can change the fleet's routes.
	// Default false (world:anyone may do anything).
	Enabled bool `mapstructure:"enabled"`
	// WorldRead lets anyone read the znodes when enabled is on; false
	// lets only the identity of zookeeper.auth.credentials read them
	// (every gateway then needs those credentials). Default true.
	WorldRead bool `mapstructure:"world_read"`
}

// validateFleet checks the fleet keys; it returns false when fleet mode is
// on and the file declares routes or services anyway, which are then not
// worth checking one by one.
func (c *Config) validateFleet(p *problems) bool {
	f := &c.Fleet
	for _, k := range []struct{ key, path string }{{"fleet.config_path", f.ConfigPath}, {"fleet.gateways_path", f.GatewaysPath}} {
		switch err := checkZnodePath(k.path); {
		case err != nil:
			p.add(k.key, err)
		case k.path == "/":
			p.addf(k.key, `"/" is the root of ZooKeeper; give a znode of its own, such as /zkgate/config`)
		}
	}
	if !p.keys["fleet.config_path"] && !p.keys["fleet.gateways_path"] {
		a, b := f.ConfigPath, f.GatewaysPath
		if a == b || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/") {
			p.addf("fleet.gateways_path", "%q overlaps fleet.config_path %q; give them separate znodes", b, a)
		}
	}
	if f.Name != "" && !nameRe.MatchString(f.Name) {
		p.addf("fleet.name", "invalid name %q (letters, digits, '.', '_', '-'; it names a znode)", f.Name)
	}
	if f.ACL.Enabled && c.ZooKeeper.Auth.Credentials == "" {
		p.addf("fleet.acl.enabled", "needs zookeeper.auth.credentials: the ACL grants the znodes to that identity")
	}
	if f.Enabled && !c.fleetAssembled {
		const hint = "fleet mode takes routes and services from ZooKeeper (fleet.config_path); remove them from the file, or push them with zkgate config push"
		if len(c.Routes) > 0 {
			p.addf("routes", hint)
		}
		if len(c.Services) > 0 {
			p.addf("services", hint)
		}
		return len(c.Routes) == 0 && len(c.Services) == 0
	}
	return true
}

// FleetNode is one route or service znode: its name (the last element of
// its path), its path, and its data.
type FleetNode struct {
	Name string
	Path string
	Data []byte
}

// ParseFleet assembles a configuration from the static file (its data and
// source, as for Parse) and the route and service znodes of fleet mode,
// and decodes and validates it exactly as Parse does a file holding those
// routes (in the order given) and services. Every problem is a *FieldError;
// one within a znode has the znode's path as Source and the key path
// within the znode's document as Key.
func ParseFleet(file []byte, source string, routes, services []FleetNode) (*Config, error) {
	return new(FleetParser).Parse(file, source, routes, services)
}

// FleetParser is ParseFleet for a stream of versions: it remembers each
// znode's decoded document, so that a version that changes one znode
// decodes only that one (decoding 2,000 documents takes seconds). Each
// document is decoded as Parse decodes a file holding only it (defaults,
// unknown keys, types, environment overrides, normalization, with the
// static file's settings), and the whole configuration is then validated
// as Parse validates a file. Safe for concurrent use.
type FleetParser struct {
	mu       sync.Mutex
	file     string // the static file the cache was made with
	source   string
	base     *Config        // the file decoded
	baseDoc  map[string]any // the file as YAML
	routes   map[string]parsedNode[Route]
	services map[string]parsedNode[Service]
}

// parsedNode is one znode's document decoded, or why not.
type parsedNode[T any] struct {
	data    string
	value   T
	fromEnv map[string]string
	err     error
}

// Parse is ParseFleet.
func (fp *FleetParser) Parse(file []byte, source string, routes, services []FleetNode) (*Config, error) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if fp.base == nil || fp.file != string(file) || fp.source != source {
		var doc map[string]any
		if err := yaml.Unmarshal(file, &doc); err != nil {
			return Parse(file, source) // the file's own error, as Parse reports it
		}
		if doc == nil {
			doc = map[string]any{}
		}
		doc["routes"], doc["services"] = []any{}, map[string]any{}
		base, err := fp.decodeDoc(doc, source)
		if err != nil {
			return nil, err
		}
		fp.file, fp.source, fp.base, fp.baseDoc = string(file), source, base, doc
		fp.routes, fp.services = map[string]parsedNode[Route]{}, map[string]parsedNode[Service]{}
	}
	var errs []error
	cfg := *fp.base
	cfg.Routes = make([]Route, 0, len(routes))
	cfg.Services = make(map[string]Service, len(services))
	cfg.fromEnv = maps.Clone(fp.base.fromEnv)
	cfg.fleetAssembled = true
	nextRoutes := make(map[string]parsedNode[Route], len(routes))
	for _, n := range routes {
		pn, ok := fp.routes[n.Path]
		if !ok || pn.data != string(n.Data) {
			pn = fp.parseRoute(n)
		}
		nextRoutes[n.Path] = pn
		if pn.err != nil {
			errs = append(errs, pn.err)
			continue
		}
		cfg.Routes = append(cfg.Routes, pn.value)
	}
	nextServices := make(map[string]parsedNode[Service], len(services))
	for _, n := range services {
		pn, ok := fp.services[n.Path]
		if !ok || pn.data != string(n.Data) {
			pn = fp.parseService(n)
		}
		nextServices[n.Path] = pn
		if pn.err != nil {
			errs = append(errs, pn.err)
			continue
		}
		cfg.Services[n.Name] = pn.value
		maps.Copy(cfg.fromEnv, pn.fromEnv)
	}
	fp.routes, fp.services = nextRoutes, nextServices
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := cfg.Validate(); err != nil {
		return nil, FleetErrors(err, routes, services)
	}
	return &cfg, nil
}

// decodeDoc decodes a generic document as a file holding it.
func (fp *FleetParser) decodeDoc(doc map[string]any, source string) (*Config, error) {
	data, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("config: assemble the fleet configuration: %w", err)
	}
	return decode(data, source)
}

// withNode returns the static file's document holding only the given
// routes and services.
func (fp *FleetParser) withNode(routes []any, services map[string]any) map[string]any {
	doc := maps.Clone(fp.baseDoc)
	doc["routes"], doc["services"] = routes, services
	return doc
}

func (fp *FleetParser) parseRoute(n FleetNode) parsedNode[Route] {
	pn := parsedNode[Route]{data: string(n.Data)}
	var errs []error
	nodeErr := func(n FleetNode, key, format string, args ...any) {
		errs = append(errs, &FieldError{Source: n.Path, Key: key, Err: fmt.Errorf(format, args...)})
	}
	m, ok := nodeDocument(n, nodeErr)
	if ok {
		switch name, given := m["name"]; {
		case !given || name == nil:
			m["name"] = n.Name
		case name != n.Name:
			nodeErr(n, "name", "%s differs from the znode's name %q; leave it out or make them equal", describeValue(name), n.Name)
		}
	}
	if len(errs) == 0 {
		cfg, err := fp.decodeDoc(fp.withNode([]any{m}, map[string]any{}), fp.source)
		switch {
		case err != nil:
			errs = append(errs, FleetErrors(err, []FleetNode{n}, nil))
		case len(cfg.Routes) != 1:
			nodeErr(n, "", "does not decode as one route")
		default:
			pn.value = cfg.Routes[0]
		}
	}
	pn.err = errors.Join(errs...)
	return pn
}

func (fp *FleetParser) parseService(n FleetNode) parsedNode[Service] {
	pn := parsedNode[Service]{data: string(n.Data)}
	var errs []error
	nodeErr := func(n FleetNode, key, format string, args ...any) {
		errs = append(errs, &FieldError{Source: n.Path, Key: key, Err: fmt.Errorf(format, args...)})
	}
	if n.Name != strings.ToLower(n.Name) {
		nodeErr(n, "", "service znode names must be lower case (service names are case-insensitive and kept in lower case)")
	} else if m, ok := nodeDocument(n, nodeErr); ok {
		cfg, err := fp.decodeDoc(fp.withNode([]any{}, map[string]any{n.Name: m}), fp.source)
		if err != nil {
			errs = append(errs, FleetErrors(err, nil, []FleetNode{n}))
		} else if svc, found := cfg.Services[n.Name]; !found {
			nodeErr(n, "", "does not decode as one service")
		} else {
			pn.value, pn.fromEnv = svc, cfg.fromEnv
		}
	}
	pn.err = errors.Join(errs...)
	return pn
}

// nodeDocument reads a znode's data, JSON or YAML, as one mapping; empty
// data is an empty mapping.
func nodeDocument(n FleetNode, nodeErr func(FleetNode, string, string, ...any)) (map[string]any, bool) {
	var v any
	if err := yaml.Unmarshal(n.Data, &v); err != nil {
		nodeErr(n, "", "invalid JSON or YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		return nil, false
	}
	switch m := v.(type) {
	case nil:
		return map[string]any{}, true
	case map[string]any:
		return m, true
	default:
		nodeErr(n, "", "expected a mapping (one route or service, as in the file), got %s", describeValue(v))
		return nil, false
	}
}

// fleetKey matches the start of a key path that names a route by index or
// a service by name.
var fleetKey = regexp.MustCompile(`^(?:routes\[(\d+)\]|services\.([^.\[]+))(?:\.(.*))?$`)

// FleetErrors rewrites the problems of an assembled fleet configuration
// (see ParseFleet) so that each one within a route or service names its
// znode and its key path within it: "routes[2].match.path" becomes key
// "match.path" of the third route's znode. Plain errors whose text begins
// with such a key path (as the gateway's build gives) are rewritten the
// same way. Other problems are left as they are.
func FleetErrors(err error, routes, services []FleetNode) error {
	if err == nil {
		return nil
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	byService := make(map[string]string, len(services))
	for _, n := range services {
		byService[n.Name] = n.Path
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		var fe *FieldError
		key, msg := "", ""
		if errors.As(e, &fe) {
			key = fe.Key
		} else if k, rest, ok := strings.Cut(e.Error(), ": "); ok {
			key, msg = k, rest
		}
		m := fleetKey.FindStringSubmatch(key)
		if m == nil {
			out = append(out, e)
			continue
		}
		path := ""
		if m[1] != "" {
			if i, err := strconv.Atoi(m[1]); err == nil && i < len(routes) {
				path = routes[i].Path
			}
		} else {
			path = byService[m[2]]
		}
		if path == "" {
			out = append(out, e)
			continue
		}
		nf := &FieldError{Source: path, Key: m[3]}
		if fe != nil {
			nf.Err = fe.Err
		} else {
			nf.Err = errors.New(msg)
		}
		out = append(out, nf)
	}
	return errors.Join(out...)
}
