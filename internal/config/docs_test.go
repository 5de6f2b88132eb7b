package config

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The key reference in docs/configuration.md is generated from the structs'
// doc comments and the defaults in defaults.go, so that it cannot drift:
//
//	go test ./internal/config -run TestConfigurationDoc -update
var update = flag.Bool("update", false, "rewrite the generated part of docs/configuration.md")

const (
	docPath    = "../../docs/configuration.md"
	beginMark  = "<!-- BEGIN GENERATED KEY REFERENCE: go test ./internal/config -run TestConfigurationDoc -update -->\n"
	endMark    = "<!-- END GENERATED KEY REFERENCE -->\n"
	noDefault  = "required"
	notEnvable = "—"
)

func TestConfigurationDoc(t *testing.T) {
	docs := fieldDocs(t)
	var b bytes.Buffer
	writeSection := func(title, intro string) {
		fmt.Fprintf(&b, "\n### %s\n\n", title)
		if intro != "" {
			fmt.Fprintf(&b, "%s\n\n", intro)
		}
		fmt.Fprintf(&b, "| key | type | default | env | reload | meaning |\n|---|---|---|---|---|---|\n")
	}
	def := reflect.ValueOf(*Default())
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		f := ct.Field(i)
		name := tagName(f)
		if name == "" {
			continue
		}
		static := f.Tag.Get("static") == "true"
		reload := "live"
		if static {
			reload = "restart"
		}
		switch name {
		case "entry_points":
			writeSection(name, docs["Config"]["EntryPoints"]+" Keys of each entry point `<name>`:")
			ep := defaultEntryPoint()
			ep.TLS = &EntryPointTLS{MinVersion: TLSVersion12, ClientAuth: &ClientAuth{}}
			writeRows(&b, docs, reflect.ValueOf(ep), []string{name, "<name>"}, true, reload)
		case "routes":
			writeSection(name, docs["Config"]["Routes"]+" Keys of each list item:")
			r := defaultRoute()
			r.CORS, r.RateLimit, r.Compress = &CORS{}, &RateLimit{}, &Compress{}
			r.Auth = &Auth{APIKey: &APIKeyAuth{}, JWT: &JWTAuth{}, Basic: &BasicAuth{}}
			writeRows(&b, docs, reflect.ValueOf(r), []string{"routes[]"}, false, reload)
		case "services":
			svc := defaultService()
			zk := defaultZooKeeperDiscovery()
			svc.Discovery = Discovery{ZooKeeper: &zk, Static: &StaticDiscovery{}}
			writeSection(name, docs["Config"]["Services"]+" Keys of each service `<name>`:")
			writeRows(&b, docs, reflect.ValueOf(svc), []string{name, "<name>"}, true, reload)
		default:
			if f.Type.Kind() == reflect.Struct {
				writeSection(name, docs["Config"][f.Name])
				writeRows(&b, docs, def.Field(i), []string{name}, static, reload)
			} else {
				writeSection(name, "")
				writeRow(&b, []string{name}, f, def.Field(i), docs["Config"][f.Name], static, reload)
			}
		}
	}

	current, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	before, rest, ok1 := bytes.Cut(current, []byte(beginMark))
	_, after, ok2 := bytes.Cut(rest, []byte(endMark))
	if !ok1 || !ok2 {
		t.Fatalf("%s lacks the markers %q and %q", docPath, beginMark, endMark)
	}
	want := slicesConcat(before, []byte(beginMark), b.Bytes(), []byte("\n"+endMark), after)
	if bytes.Equal(current, want) {
		return
	}
	if *update {
		if err := os.WriteFile(docPath, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is out of date with the code; regenerate it with\n\tgo test ./internal/config -run TestConfigurationDoc -update", docPath)
}

// writeRows writes a row per leaf field of the struct v.
func writeRows(b *bytes.Buffer, docs map[string]map[string]string, v reflect.Value, prefix []string, envable bool, reload string) {
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name := tagName(f)
		if name == "" {
			continue
		}
		key := append(append([]string(nil), prefix...), name)
		fv := v.Field(i)
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != durationType {
			writeRows(b, docs, fv, key, envable, reload)
			continue
		}
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			// A list of mappings: a row per key of an item, which the
			// environment cannot set.
			writeRow(b, key, f, fv, docs[v.Type().Name()][f.Name], false, reload)
			key[len(key)-1] += "[]"
			writeRows(b, docs, reflect.New(ft.Elem()).Elem(), key, false, reload)
			continue
		}
		writeRow(b, key, f, fv, docs[v.Type().Name()][f.Name], envable, reload)
	}
}

func writeRow(b *bytes.Buffer, key []string, f reflect.StructField, v reflect.Value, doc string, envable bool, reload string) {
	env := notEnvable
	if envable {
		segs := slices.Clone(key)
		for i, s := range segs {
			if s == "<name>" {
				segs[i] = "name"
			}
		}
		env = "`" + strings.Replace(EnvVar(segs...), "_NAME_", "_<NAME>_", 1) + "`"
	}
	fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s | %s |\n",
		strings.Join(key, "."), typeName(f.Type), defaultText(key, v), env, reload, strings.ReplaceAll(doc, "|", `\|`))
}

// defaultText shows a default value; keys without a usable default are
// "required", derived defaults are described.
func defaultText(key []string, v reflect.Value) string {
	k := strings.Join(key, ".")
	switch {
	case strings.HasSuffix(k, "routes[].name"), strings.HasSuffix(k, "routes[].service"):
		return noDefault
	case strings.HasSuffix(k, "discovery.zookeeper.path"):
		return "`base_path/<name>`"
	case strings.HasSuffix(k, "discovery.static.endpoints"):
		return "— (required with static)"
	}
	if v.Type() == durationType {
		return "`" + docDuration(time.Duration(v.Int())) + "`"
	}
	if v.Kind() == reflect.Map && v.Len() == 0 {
		return "`{}`"
	}
	return "`" + showValue(toMap(v)) + "`"
}

// docDuration writes a duration in the unit a person would: 90s, 2m, 0.
func docDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0 && d < 10*time.Minute:
		return fmt.Sprintf("%ds", d/time.Second)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	default:
		return d.String()
	}
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.Bool:
		return "bool"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return "integer"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Slice:
		return "list of " + typeName(t.Elem()) + "s"
	case t.Kind() == reflect.Map:
		return "map of " + typeName(t.Elem()) + "s"
	default:
		return t.String()
	}
}

// fieldDocs returns the doc comment of every struct field of the package,
// by type and field name, as one line.
func fieldDocs(t *testing.T) map[string]map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return true
			}
			fields := map[string]string{}
			for _, f := range st.Fields.List {
				for _, id := range f.Names {
					fields[id.Name] = docSentence(id.Name, strings.Join(strings.Fields(f.Doc.Text()), " "))
				}
			}
			out[ts.Name.Name] = fields
			return false
		})
	}
	return out
}

// docSentence turns "Field is the x." into "The x." and "Field bounds y."
// into "Bounds y.": the table names the key already.
func docSentence(field, doc string) string {
	doc = strings.TrimPrefix(doc, field+" ")
	for _, verb := range []string{"is ", "are "} {
		doc = strings.TrimPrefix(doc, verb)
	}
	if doc == "" {
		return doc
	}
	return strings.ToUpper(doc[:1]) + doc[1:]
}

func slicesConcat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
