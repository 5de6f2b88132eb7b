package config

import (
	"errors"
	"fmt"
	"testing"
)

const fleetFile = "fleet: {enabled: true}\n"

func routeNode(name, data string) FleetNode {
	return FleetNode{Name: name, Path: "/zkgate/config/routes/" + name, Data: []byte(data)}
}

func serviceNode(name, data string) FleetNode {
	return FleetNode{Name: name, Path: "/zkgate/config/services/" + name, Data: []byte(data)}
}

func TestParseFleetAssembles(t *testing.T) {
	cfg, err := ParseFleet([]byte(fleetFile), "gw.yaml",
		[]FleetNode{
			routeNode("api", `{"service": "echo", "match": {"path_prefix": "/api"}, "timeout": "5s"}`), // JSON
			routeNode("web", "name: web\nservice: echo\nmatch: {path_prefix: /}\n"),                    // YAML, with its name
		},
		[]FleetNode{serviceNode("echo", "")}) // empty: every default
	if err != nil {
		t.Fatalf("ParseFleet: %v", err)
	}
	if len(cfg.Routes) != 2 || cfg.Routes[0].Name != "api" || cfg.Routes[1].Name != "web" {
		t.Fatalf("routes = %+v", cfg.Routes)
	}
	if got := cfg.Routes[0].Timeout.String(); got != "5s" {
		t.Errorf("api timeout = %s, want 5s", got)
	}
	if got := cfg.Routes[1].Balancer; got != "weighted_round_robin" {
		t.Errorf("defaults not applied: balancer = %q", got)
	}
	if p := cfg.Services["echo"].Discovery.ZooKeeper.Path; p != "/services/echo" {
		t.Errorf("echo discovery path = %q, want the base_path default", p)
	}
}

// Each problem names the znode and the key path within the znode's
// document, as a file's problem names the file and its key path.
func TestParseFleetNamesTheZnode(t *testing.T) {
	echo := []FleetNode{serviceNode("echo", "{}")}
	for _, tt := range []struct {
		name             string
		routes, services []FleetNode
		want             string
	}{
		{"bad value", []FleetNode{routeNode("api", `{"service": "echo", "match": {"path_prefix": "api"}}`)}, echo,
			`/zkgate/config/routes/api: match.path_prefix: "api" must start with "/"`},
		{"unknown service", []FleetNode{routeNode("ok", `{service: echo}`), routeNode("api", `{service: payments}`)}, echo,
			`/zkgate/config/routes/api: service: unknown service "payments" (defined: echo)`},
		{"unknown key in a service", []FleetNode{routeNode("api", `{service: echo}`)}, []FleetNode{serviceNode("echo", `{timeout: {dial: 1s}}`)},
			`/zkgate/config/services/echo: timeout: unknown key (did you mean "timeouts"?)`},
		{"bad duration in a service", []FleetNode{routeNode("api", `{service: echo}`)}, []FleetNode{serviceNode("echo", `{timeouts: {dial: 30}}`)},
			`/zkgate/config/services/echo: timeouts.dial: invalid duration 30`},
		{"not JSON or YAML", []FleetNode{routeNode("api", `{"service": "echo"`)}, echo,
			`/zkgate/config/routes/api: invalid JSON or YAML`},
		{"not a mapping", []FleetNode{routeNode("api", `[1, 2]`)}, echo,
			`/zkgate/config/routes/api: expected a mapping (one route or service, as in the file), got a list`},
		{"name differs", []FleetNode{routeNode("api", `{name: web, service: echo}`)}, echo,
			`/zkgate/config/routes/api: name: "web" differs from the znode's name "api"`},
		{"upper-case service", []FleetNode{routeNode("api", `{service: echo}`)}, []FleetNode{serviceNode("Echo", `{}`)},
			`/zkgate/config/services/Echo: service znode names must be lower case`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFleet([]byte(fleetFile), "gw.yaml", tt.routes, tt.services)
			wantOneProblem(t, err, tt.want)
		})
	}
}

func TestParseFleetKeepsFileProblems(t *testing.T) {
	_, err := ParseFleet([]byte("fleet: {enabled: true}\nlog: {level: loud}\n"), "gw.yaml", nil, nil)
	wantOneProblem(t, err, `gw.yaml: log.level: unknown level "loud"`)
}

func TestFleetErrorsRewritesBuildErrors(t *testing.T) {
	routes := []FleetNode{routeNode("a", ""), routeNode("b", "")}
	err := FleetErrors(errors.Join(fmt.Errorf("routes[1].balancer: no such thing"), errors.New("routes: conflict")), routes, nil)
	got := problemList(err)
	if len(got) != 2 || got[0] != "/zkgate/config/routes/b: balancer: no such thing" || got[1] != "routes: conflict" {
		t.Errorf("got %q", got)
	}
}

// A FleetParser gives, version after version, what ParseFleet gives each
// version alone.
func TestFleetParserFollowsVersions(t *testing.T) {
	fp := new(FleetParser)
	svc := []FleetNode{serviceNode("echo", "{}")}
	cfg, err := fp.Parse([]byte(fleetFile), "gw.yaml", []FleetNode{routeNode("api", `{service: echo, timeout: 5s}`)}, svc)
	if err != nil || cfg.Routes[0].Timeout.String() != "5s" {
		t.Fatalf("v1: %v %+v", err, cfg)
	}
	_, err = fp.Parse([]byte(fleetFile), "gw.yaml", []FleetNode{routeNode("api", `{service: echo, timeout: soon}`)}, svc)
	wantOneProblem(t, err, `/zkgate/config/routes/api: timeout: invalid duration "soon"`)
	cfg, err = fp.Parse([]byte(fleetFile), "gw.yaml", []FleetNode{routeNode("api", `{service: echo, timeout: 7s}`), routeNode("b", `{service: echo}`)}, svc)
	if err != nil || len(cfg.Routes) != 2 || cfg.Routes[0].Timeout.String() != "7s" {
		t.Fatalf("v3: %v %+v", err, cfg)
	}
	// A changed file is decoded again: its base_path gives the service's
	// default path.
	cfg, err = fp.Parse([]byte(fleetFile+"zookeeper: {base_path: /other}\n"), "gw.yaml", []FleetNode{routeNode("api", `{service: echo}`)}, svc)
	if err != nil || cfg.Services["echo"].Discovery.ZooKeeper.Path != "/other/echo" {
		t.Fatalf("v4: %v %+v", err, cfg)
	}
	// Cross-checks see the whole version: a route to a service removed.
	_, err = fp.Parse([]byte(fleetFile), "gw.yaml", []FleetNode{routeNode("api", `{service: echo}`)}, nil)
	wantOneProblem(t, err, `/zkgate/config/routes/api: service: unknown service "echo"`)
}
