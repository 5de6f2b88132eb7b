package fleet

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/zkgate/zkgate/discovery"
	"github.com/zkgate/zkgate/internal/config"
)

const cp = "/zkgate/config"

func state(routes, services map[string]string) discovery.TreeState {
	st := discovery.TreeState{Dirs: map[string][]discovery.TreeNode{}}
	add := func(dir string, m map[string]string) {
		for _, name := range slices.Sorted(maps.Keys(m)) {
			st.Dirs[dir] = append(st.Dirs[dir], discovery.TreeNode{Name: name, Path: dir + "/" + name, Data: []byte(m[name])})
		}
	}
	add(RoutesDir(cp), routes)
	add(ServicesDir(cp), services)
	return st
}

func describe(changes []Change) string {
	var out []string
	for _, c := range changes {
		if c.Data == nil {
			out = append(out, "delete "+string(c.Kind)+" "+c.Name)
		} else {
			out = append(out, fmt.Sprintf("put %s %s %s", c.Kind, c.Name, c.Data))
		}
	}
	return strings.Join(out, "\n")
}

func TestPushChanges(t *testing.T) {
	current := state(
		map[string]string{"same": `{"service":"echo"}`, "gone": `{"service":"echo"}`},
		map[string]string{"echo": `{}`, "old": `{}`})
	file := `
routes:
  - {name: same, service: echo}
  - {name: new, service: Echo, match: {path_prefix: /new}}
services:
  Echo: {}
`
	got, err := PushChanges([]byte(file), "f.yaml", current, cp)
	if err != nil {
		t.Fatal(err)
	}
	want := "put route new {\"match\":{\"path_prefix\":\"/new\"},\"service\":\"Echo\"}\n" +
		"delete route gone\ndelete service old"
	if d := describe(got); d != want {
		t.Errorf("changes:\n%s\nwant:\n%s", d, want)
	}
}

func TestPushChangesRefusesUnnamedAndDuplicateRoutes(t *testing.T) {
	_, err := PushChanges([]byte("routes: [{service: a}, {name: r, service: a}, {name: r, service: b}]\n"), "f.yaml", state(nil, nil), cp)
	for _, want := range []string{"f.yaml: routes[0].name: required", `f.yaml: routes[2].name: duplicate route name "r" (also routes[1])`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
}

func TestPullGivesAFile(t *testing.T) {
	st := state(
		map[string]string{"api": `{"service": "echo", "match": {"path_prefix": "/api"}}`, "web": "service: echo\n"},
		map[string]string{"echo": "", "auth": `{"timeouts": {"dial": "1s"}}`})
	out, err := Pull(st, cp)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Routes   []map[string]any          `yaml:"routes"`
		Services map[string]map[string]any `yaml:"services"`
	}
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("%v in\n%s", err, out)
	}
	if len(doc.Routes) != 2 || doc.Routes[0]["name"] != "api" || doc.Routes[1]["name"] != "web" || doc.Routes[1]["service"] != "echo" {
		t.Errorf("routes: %v", doc.Routes)
	}
	if len(doc.Services) != 2 || doc.Services["echo"] == nil || doc.Services["auth"]["timeouts"] == nil {
		t.Errorf("services: %v\n%s", doc.Services, out)
	}
	if strings.HasPrefix(strings.TrimSpace(string(out)), "{") || strings.Contains(string(out), "{path_prefix") {
		t.Errorf("not in block style:\n%s", out)
	}
}

func TestGatewaysFlagsOlderVersions(t *testing.T) {
	got := parseGateways([]discovery.TreeNode{
		{Name: "b", Path: "/g/b", Data: []byte(`{"name": "b", "config_version": 7}`)},
		{Name: "a", Path: "/g/a", Data: []byte(`{"name": "a", "config_version": 9}`)},
		{Name: "c", Path: "/g/c", Data: []byte(`not json`)},
	})
	var out []string
	for _, g := range got {
		out = append(out, fmt.Sprintf("%s:%d:%v:%v", g.Name, g.ConfigVersion, g.Behind, g.Problem != ""))
	}
	if s := strings.Join(out, " "); s != "a:9:false:false b:7:true:false c:0:false:true" {
		t.Errorf("gateways: %s", s)
	}
}

func TestProblemsNameZnodeOrFile(t *testing.T) {
	err := errors.Join(
		&config.FieldError{Source: cp + "/routes/r", Key: "match.path", Err: errors.New("bad")},
		&config.FieldError{Source: "/etc/zkgate.yaml", Key: "log.level", Err: errors.New("loud")},
		errors.New("routes: conflict"))
	got := Problems(err, cp)
	want := []Problem{{Znode: cp + "/routes/r", Key: "match.path", Problem: "bad"}, {File: "/etc/zkgate.yaml", Key: "log.level", Problem: "loud"}, {Problem: "routes: conflict"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("problems %+v, want %+v", got, want)
	}
}

// A write is checked, whole, before anything is written: a Writer whose
// check refuses never reaches ZooKeeper (its Client is nil here).
func TestWriterChecksBeforeWriting(t *testing.T) {
	var checked [][]config.FleetNode
	w := &Writer{ConfigPath: cp,
		Current: func() (discovery.TreeState, bool) {
			return state(map[string]string{"r": `{"service":"echo"}`}, map[string]string{"echo": "{}"}), true
		},
		Check: func(routes, services []config.FleetNode) error {
			checked = append(checked, routes, services)
			return errors.New("refused")
		}}
	_, err := w.Apply([]Change{{Kind: KindService, Name: "echo"}, {Kind: KindRoute, Name: "s", Data: []byte("{service: echo}")}})
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("Apply: %v, want an InvalidError", err)
	}
	if len(checked) != 2 || len(checked[0]) != 2 || checked[0][1].Name != "s" || len(checked[1]) != 0 {
		t.Errorf("checked %v: want routes r and s and no service", checked)
	}
	for _, bad := range []string{"", ".", "..", "a/b"} {
		if _, err := w.Apply([]Change{{Kind: KindRoute, Name: bad, Data: []byte("{}")}}); !errors.As(err, &inv) {
			t.Errorf("name %q: %v, want an InvalidError", bad, err)
		}
	}
	if _, err := w.Apply([]Change{{Kind: KindRoute, Name: "missing"}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete of a missing route: %v, want ErrNotFound", err)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	path := t.TempDir() + "/m.json.fleet.json"
	routes := []config.FleetNode{{Name: "api", Path: cp + "/routes/api", Data: []byte(`{"service": "echo"}`)}}
	services := []config.FleetNode{{Name: "echo", Path: cp + "/services/echo", Data: []byte("timeouts: {dial: 1s}\n")}}
	if err := WriteSnapshot(path, cp, 42, routes, services); err != nil {
		t.Fatal(err)
	}
	s, err := ReadSnapshot(path, cp)
	if err != nil {
		t.Fatal(err)
	}
	r, sv := s.Nodes()
	if s.Version != 42 || fmt.Sprint(r) != fmt.Sprint(routes) || fmt.Sprint(sv) != fmt.Sprint(services) {
		t.Errorf("read back %d %v %v", s.Version, r, sv)
	}
	if _, err := ReadSnapshot(path, "/other"); err == nil || !strings.Contains(err.Error(), `written for fleet.config_path "/zkgate/config", not "/other"`) {
		t.Errorf("snapshot of another config path: %v", err)
	}
	if err := os.WriteFile(path, []byte(`{"format": "zkgate-fleet-snapshot/1", "routes": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSnapshot(path, cp); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("truncated snapshot: %v", err)
	}
	if got := SnapshotPath(""); got != "" {
		t.Errorf("SnapshotPath without a membership snapshot = %q", got)
	}
}
