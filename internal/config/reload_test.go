package config

import (
	"errors"
	"strings"
	"testing"
)

func TestReloadableOnlyDynamicChanges(t *testing.T) {
	old := mustParse(t, validYAML)
	next := mustParse(t, `
routes:
  - {name: echo, service: echo, match: {path_prefix: /v2}}
  - {name: users, service: users}
services:
  echo: {}
  users: {discovery: {static: {endpoints: ["127.0.0.1:9000"]}}}
`)
	if err := Reloadable(old, next); err != nil {
		t.Fatalf("Reloadable = %v, want nil: only routes and services changed", err)
	}
	d := next.Dynamic()
	if len(d.Routes) != 2 || len(d.Services) != 2 || d.Routes[0].Match.PathPrefix != "/v2" {
		t.Errorf("Dynamic() = %+v, want the new routes and services", d)
	}
}

func TestReloadableReportsStaticChanges(t *testing.T) {
	old := mustParse(t, validYAML)
	next := mustParse(t, validYAML+`
zookeeper: {servers: ["zk1:2181", "zk2:2181"]}
admin: {token: s3cret}
entry_points:
  web: {address: ":8081"}
  alt: {address: ":8082"}
  alt-2: {address: ":8083"}
`)
	err := Reloadable(old, next)
	probs := problemList(err)
	want := []string{
		`test.yaml: admin.token: static setting changed from "" to (hidden)`,
		`entry_points.alt: static setting changed from (unset) to (set)`,
		`entry_points.alt-2: static setting changed from (unset) to (set)`,
		`entry_points.web.address: static setting changed from ":8080" to ":8081"`,
		`zookeeper.servers: static setting changed from ["127.0.0.1:2181"] to ["zk1:2181", "zk2:2181"]; restart zkgate`,
	}
	for _, w := range want {
		found := false
		for _, p := range probs {
			found = found || strings.Contains(p, w)
		}
		if !found {
			t.Errorf("no change report contains %q; got:\n%s", w, strings.Join(probs, "\n"))
		}
	}
	for _, p := range probs {
		if strings.Contains(p, "s3cret") {
			t.Errorf("a secret is shown: %s", p)
		}
	}
	var ch *StaticChange
	if !errors.As(err, &ch) || ch.Key == "" {
		t.Errorf("errors.As(*StaticChange) = %+v", ch)
	}
	// The new entry point is one change, not one per key.
	if len(probs) != len(want) {
		t.Errorf("got %d change reports, want %d:\n%s", len(probs), len(want), strings.Join(probs, "\n"))
	}
}
