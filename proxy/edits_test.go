package proxy

import (
	"testing"
)

// The plan decides once, for both paths, which generated fields are sent
// and how set values are written: trimmed of ASCII white space only (as
// net/http writes a value; the fast path used strings.TrimSpace, which
// also trims U+00A0), an empty User-Agent meaning none.
func TestHeaderPlan(t *testing.T) {
	r := &Route{
		Name:          "r",
		PathPrefix:    "/api",
		StripPrefix:   true,
		RemoveHeaders: []string{"x-forwarded-host"},
		SetHeaders:    map[string]string{"X-Real-IP": "\u00a010.0.0.1 ", "User-Agent": " ", "X-Team": "\tblue\t"},
	}
	p, errs := compileHeaderPlan(r, "/api", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if want := genXFF | genXFProto | genPrefix; p.gen != want {
		t.Errorf("generated fields %05b, want %05b (X-Forwarded-Host removed, X-Real-Ip set)", p.gen, want)
	}
	if len(p.prefix) != 1 || p.prefix[0] != "/api" {
		t.Errorf("prefix %q, want [/api]", p.prefix)
	}
	want := map[string]struct {
		v    string
		none bool
	}{
		"X-Real-Ip":  {"\u00a010.0.0.1", false},
		"User-Agent": {"", true},
		"X-Team":     {"blue", false},
	}
	if len(p.set) != len(want) {
		t.Fatalf("%d settings, want %d", len(p.set), len(want))
	}
	for _, s := range p.set {
		if w := want[s.name]; s.value[0] != w.v || s.none != w.none {
			t.Errorf("setting %s = %q (none %v), want %q (none %v)", s.name, s.value[0], s.none, w.v, w.none)
		}
	}
	if !p.edits("x-real-ip") || !p.edits("X-FORWARDED-HOST") || p.edits("X-Forwarded-For") {
		t.Error("edits does not match the route's set and removed names case-insensitively")
	}
	plain, _ := compileHeaderPlan(&Route{Name: "p", PathPrefix: "/api"}, "/api", nil)
	if plain.prefix != nil || plain.gen != genXFF|genXFHost|genXFProto|genRealIP|genPrefix {
		t.Errorf("a route without edits: prefix %q, generated %05b; want none and all", plain.prefix, plain.gen)
	}
}
