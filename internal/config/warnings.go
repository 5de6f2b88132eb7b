package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/zkgate/zkgate/balancer"
)

// Warnings returns what is valid but probably not meant in cfg: no routes
// outside fleet mode (every request gets 404), services no route uses, and environment
// variables of environ (see UnknownEnv) that override nothing. serve logs
// them at start and on each reload; validate prints them.
func Warnings(cfg *Config, environ []string) []string {
	var out []string
	if len(cfg.Routes) == 0 && !cfg.Fleet.Enabled { // a fleet's routes come from ZooKeeper
		out = append(out, "routes: none: every proxied request will be answered 404")
	}
	used := map[string]bool{}
	for _, r := range cfg.Routes {
		used[strings.ToLower(r.Service)] = true
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Services)) {
		if !used[strings.ToLower(name)] {
			out = append(out, fmt.Sprintf("services.%s: no route uses it (it is still watched and checked)", name))
		}
	}
	out = append(out, slowStartWarnings(cfg)...)
	return append(out, UnknownEnv(cfg, environ)...)
}

// slowStartWarnings names the routes whose balancer ignores the slow_start
// of their service.
func slowStartWarnings(cfg *Config) []string {
	var out []string
	for i, r := range cfg.Routes {
		s, ok := cfg.Services[strings.ToLower(r.Service)]
		if !ok || s.SlowStart <= 0 || slices.Contains(balancer.SlowStartAlgorithms(), r.Balancer) {
			continue
		}
		out = append(out, fmt.Sprintf("routes[%d].balancer: %s ignores services.%s.slow_start (only %s ramp new endpoints)",
			i, r.Balancer, strings.ToLower(r.Service), strings.Join(balancer.SlowStartAlgorithms(), " and ")))
	}
	return out
}
