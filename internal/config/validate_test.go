package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/zkgate/zkgate/internal/config/cases"
)

func TestValidateProblems(t *testing.T) {
	for _, tt := range cases.Refused {
		t.Run(tt.Name, func(t *testing.T) {
			_, err := Parse([]byte(tt.YAML), "test.yaml")
			wantOneProblem(t, err, tt.Problem...)
		})
	}
	// The proxy's route compiler judges these; zkgate validate runs it
	// (internal/app's TestValidateIsServe).
	for _, tt := range cases.RefusedByBuild {
		t.Run(tt.Name, func(t *testing.T) {
			mustParse(t, tt.YAML)
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	for _, tt := range cases.Valid {
		t.Run(tt.Name, func(t *testing.T) {
			mustParse(t, tt.YAML)
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	_, err := Parse([]byte(`
log: {level: loud}
zookeeper: {servers: []}
routes: [{name: r, service: nope, balancer: fastest}]
services:
  echo: {discovery: {static: {endpoints: ['127.0.0.1:9000', 'localhost', 'h:1,0']}}}
`), "test.yaml")
	probs := problemList(err)
	want := []string{
		"log.level:",
		"zookeeper.servers:",
		"routes[0].service:",
		"routes[0].balancer:",
		`services.echo.discovery.static.endpoints[1]: "localhost": not a host:port address`,
		`services.echo.discovery.static.endpoints[2]: "h:1,0": weight "0" is not an integer ≥ 1`,
	}
	if len(probs) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(probs), len(want), strings.Join(probs, "\n"))
	}
	for _, w := range want {
		found := false
		for _, p := range probs {
			found = found || strings.Contains(p, w)
		}
		if !found {
			t.Errorf("no problem contains %q; got:\n%s", w, strings.Join(probs, "\n"))
		}
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Source != "test.yaml" || fe.Key == "" {
		t.Errorf("errors.As(*FieldError) = %+v, want one with source and key", fe)
	}
}

func TestStaticEndpoints(t *testing.T) {
	d := StaticDiscovery{Endpoints: []string{"127.0.0.1:9001,3", " [::1]:9000 "}}
	eps, err := d.StaticEndpoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 2 || eps[0].Addr != "127.0.0.1:9001" || eps[0].Weight != 3 || eps[1].Addr != "[::1]:9000" || eps[1].Weight != 1 {
		t.Errorf("StaticEndpoints = %+v", eps)
	}
	if eps[0].ID != "static:127.0.0.1:9001" || eps[0].Meta["source"] != "static" {
		t.Errorf("ID/Meta = %q %v", eps[0].ID, eps[0].Meta)
	}
	if _, err := (&StaticDiscovery{Endpoints: []string{"h:0"}}).StaticEndpoints(); err == nil {
		t.Error("port 0 accepted for an endpoint")
	}
}

func TestTrustedProxyPrefixes(t *testing.T) {
	c := &Config{TrustedProxies: []string{"10.0.0.0/8", "192.168.1.7", "::ffff:10.1.1.1", "bad"}}
	got := c.TrustedProxyPrefixes()
	want := []string{"10.0.0.0/8", "192.168.1.7/32", "10.1.1.1/32"}
	if len(got) != len(want) {
		t.Fatalf("prefixes = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("prefix %d = %s, want %s", i, got[i], want[i])
		}
	}
}
