package config

import (
	"bytes"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/viper"

	"github.com/zkgate/zkgate/discovery"
)

const (
	exampleLocal  = "../../configs/gateway.yaml"
	exampleDocker = "../../configs/gateway.docker.yaml"
)

// exampleDefaults is what both example files should hold: the defaults,
// plus the echo route and service the README documents.
func exampleDefaults() *Config {
	want := Default()
	r := defaultRoute()
	r.Name, r.Service, r.Match.PathPrefix, r.StripPrefix = "echo", "echo", "/echo", true
	want.Routes = []Route{r}
	s := defaultService()
	s.Discovery.ZooKeeper = &ZooKeeperDiscovery{Path: "/services/echo", Format: string(discovery.FormatAuto), Filter: map[string]string{}}
	s.HealthCheck.Active.Type, s.HealthCheck.Active.Path = CheckHTTP, "/healthz"
	want.Services = map[string]Service{"echo": s}
	return want
}

func TestExampleFilesLoad(t *testing.T) {
	for _, tt := range []struct {
		path string
		edit func(*Config)
	}{
		{exampleLocal, func(*Config) {}},
		{exampleDocker, func(c *Config) {
			c.ZooKeeper.Servers = []string{"zookeeper:2181"}
			c.Admin.Address = "0.0.0.0:9901"
			c.ZooKeeper.SnapshotFile = "/var/lib/zkgate/membership.json"
		}},
	} {
		t.Run(tt.path, func(t *testing.T) {
			cfg, err := Load(tt.path)
			if err != nil {
				t.Fatalf("Load(%s):\n%s", tt.path, strings.Join(problemList(err), "\n"))
			}
			want := exampleDefaults()
			tt.edit(want)
			want.Source = cfg.Source
			// Compare section by section for readable failures.
			got, wantV := reflect.ValueOf(*cfg), reflect.ValueOf(*want)
			for i := range got.NumField() {
				name := got.Type().Field(i).Name
				if !got.Type().Field(i).IsExported() {
					continue
				}
				if !reflect.DeepEqual(got.Field(i).Interface(), wantV.Field(i).Interface()) {
					t.Errorf("%s:\n got %+v\nwant %+v\n(the example must show the defaults, except where a comment says otherwise)",
						name, got.Field(i).Interface(), wantV.Field(i).Interface())
				}
			}
		})
	}
}

// TestExampleFilesShowEveryKey keeps the examples complete: every key of
// the schema appears in them (static discovery is shown commented out).
func TestExampleFilesShowEveryKey(t *testing.T) {
	var want []string
	for _, b := range envBindings(nil, []string{"echo"}) {
		want = append(want, strings.Join(b.segments, "."))
	}
	for _, k := range leafKeys(reflect.TypeFor[Route](), "routes[0]") {
		want = append(want, k)
	}
	want = slices.DeleteFunc(want, func(k string) bool {
		for _, commented := range []string{"services.echo.discovery.static.", "entry_points.web.tls.",
			"routes[0].cors.", "routes[0].auth.", "routes[0].rate_limit.", "routes[0].compress."} {
			if strings.HasPrefix(k, commented) {
				return true
			}
		}
		return false
	})
	for _, path := range []string{exampleLocal, exampleDocker} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		v := viper.New()
		v.SetConfigType("yaml")
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		got := leafPaths(v.AllSettings(), "")
		// viper drops empty mappings; those are written "{}" in the file.
		for _, k := range want {
			last := k[strings.LastIndex(k, ".")+1:]
			if !slices.Contains(got, k) && !bytes.Contains(data, []byte(last+": {}")) {
				t.Errorf("%s: key %s is missing", path, k)
			}
		}
		if !bytes.Contains(data, []byte("# static:")) || !bytes.Contains(data, []byte("#   endpoints:")) {
			t.Errorf("%s: the static discovery alternative is not shown", path)
		}
		for _, k := range []string{"# cors:", "#   allowed_origins:", "#   allowed_methods:", "#   allowed_headers:", "#   exposed_headers:",
			"#   allow_credentials:", "#   max_age:", "# auth:", "#   api_key: { header:", "keys_file:", "#   jwt: { jwks_file:", "issuer:",
			"audiences:", "forward_claims:", "#   basic: { users_file:", "realm:", "#   forward_credentials:",
			"# rate_limit: { average:", "burst:", "period:", "key:", "# compress: { enabled:", "min_bytes:", "level:"} {
			if !bytes.Contains(data, []byte(k)) {
				t.Errorf("%s: the route policies are not shown (%q is missing)", path, k)
			}
		}
		for _, k := range []string{"# tls:", "#   certificates:", "cert_file:", "key_file:", "#   min_version:", "#   client_auth:", "ca_file:", "required:"} {
			if !bytes.Contains(data, []byte(k)) {
				t.Errorf("%s: the entry point's tls is not shown (%q is missing)", path, k)
			}
		}
	}
}

// leafPaths lists the key paths of the leaves of a generic value.
func leafPaths(v any, path string) []string {
	switch x := v.(type) {
	case map[string]any:
		var out []string
		for k, e := range x {
			out = append(out, leafPaths(e, joinKey(path, k))...)
		}
		return out
	case []any:
		if len(x) > 0 {
			if _, ok := x[0].(map[string]any); ok {
				return leafPaths(x[0], path+"[0]")
			}
		}
	}
	return []string{path}
}

// BenchmarkParseExample measures one reload of the example file: read into
// viper, defaults, decode, validate.
func BenchmarkParseExample(b *testing.B) {
	data, err := os.ReadFile(exampleLocal)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, exampleLocal); err != nil {
			b.Fatal(err)
		}
	}
}
