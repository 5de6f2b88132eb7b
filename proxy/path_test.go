package proxy

import (
	"net/url"
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		target      string // request target as sent
		path, raw   string // want; path "" means rejected
		description string
	}{
		{"/", "/", "", "root"},
		{"/a/b", "/a/b", "", "clean"},
		{"/a/b/", "/a/b/", "", "trailing slash kept"},
		{"/a/../b", "/b", "", "dot-dot"},
		{"/a/./b/.", "/a/b", "", "dot"},
		{"//a///b//", "/a/b/", "", "doubled slashes"},
		{"/../../etc/passwd", "/etc/passwd", "", "above the root"},
		{"/api/%2e%2e/admin", "/admin", "", "escaped dot-dot"},
		{"/api/%2E./admin", "/admin", "", "mixed escaped dot-dot"},
		{"/a%20b/../c%20d", "/c d", "", "escapes outside dot segments"},
		{"/a%2Fb/c", "/a/b/c", "/a%2Fb/c", "clean with escaped slash: raw kept"},
		{"/x/../a%2Fb", "/a/b", "/a%2Fb", "escaped slash survives cleaning"},
		{"/api%2F..%2Fadmin", "", "", "escaped slashes around dot-dot: ambiguous"},
		{"/api/..%2Fadmin", "", "", "dot-dot joined by escaped slash: ambiguous"},
		{"*", "", "", "asterisk-form"},
	}
	for _, tt := range tests {
		t.Run(tt.description, func(t *testing.T) {
			u, err := url.ParseRequestURI(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			p, raw, ok := normalizePath(u.Path, u.RawPath)
			if tt.path == "" {
				if ok {
					t.Fatalf("normalizePath(%q) = %q, %q; want rejection", tt.target, p, raw)
				}
				return
			}
			if !ok || p != tt.path || raw != tt.raw {
				t.Fatalf("normalizePath(%q) = %q, %q, %v; want %q, %q", tt.target, p, raw, ok, tt.path, tt.raw)
			}
		})
	}
}

func TestNormalizePathCleanDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(1000, func() {
		if _, _, ok := normalizePath("/api/v1/items/42", ""); !ok {
			t.Fatal("rejected")
		}
	})
	if allocs != 0 {
		t.Errorf("normalizePath of a clean path allocates %v times, want 0", allocs)
	}
}

func TestStripPrefix(t *testing.T) {
	tests := []struct {
		path, raw, prefix string
		wantPath, wantRaw string
	}{
		{"/api", "", "/api", "/", ""},
		{"/api/", "", "/api", "/", ""},
		{"/api/x/y", "", "/api", "/x/y", ""},
		{"/x", "", "", "/x", ""},
		{"/api/a/b", "/api/a%2Fb", "/api", "/a/b", "/a%2Fb"},
		{"/api/a/b", "/%61pi/a%2Fb", "/api", "/a/b", "/a%2Fb"},
		{"/api/b", "/api%2Fb", "/api", "/b", ""}, // the boundary is an escaped slash
	}
	for _, tt := range tests {
		p, raw := stripPrefix(tt.path, tt.raw, tt.prefix)
		if p != tt.wantPath || raw != tt.wantRaw {
			t.Errorf("stripPrefix(%q, %q, %q) = %q, %q; want %q, %q", tt.path, tt.raw, tt.prefix, p, raw, tt.wantPath, tt.wantRaw)
		}
	}
}

// FuzzNormalizePath checks, for any request target, that an accepted path
// is clean, idempotent, and consistent with its escaped form, and that
// stripping a prefix keeps it so: the backend decodes exactly the path that
// was routed.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/api/%2e%2e/admin", "//x", "/a%2Fb/../c", "/api/x/./y/", "/%2e", "/api%2F..%2Fadmin"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || u.Opaque != "" {
			return
		}
		p, raw, ok := normalizePath(u.Path, u.RawPath)
		if !ok {
			return
		}
		if !isCleanPath(p) {
			t.Fatalf("%q: path %q is not clean", target, p)
		}
		if p2, raw2, ok := normalizePath(p, raw); !ok || p2 != p || raw2 != raw {
			t.Fatalf("%q: not idempotent: %q %q → %q %q %v", target, p, raw, p2, raw2, ok)
		}
		checkRaw(t, target, p, raw)
		for _, prefix := range []string{"/api", "/a", "/%"} {
			if !hasPathPrefix(p, prefix) {
				continue
			}
			sp, sraw := stripPrefix(p, raw, prefix)
			if !strings.HasPrefix(sp, "/") || !isCleanPath(sp) {
				t.Fatalf("%q: strip %q gave unclean %q", target, prefix, sp)
			}
			if want := strings.TrimPrefix(p, prefix); sp != want && !(want == "" && sp == "/") {
				t.Fatalf("%q: strip %q gave %q, want %q", target, prefix, sp, want)
			}
			checkRaw(t, target, sp, sraw)
		}
	})
}

func checkRaw(t *testing.T, target, p, raw string) {
	t.Helper()
	if raw == "" {
		return
	}
	if !strings.HasPrefix(raw, "/") {
		t.Fatalf("%q: raw path %q does not start with '/'", target, raw)
	}
	if d, err := url.PathUnescape(raw); err != nil || d != p {
		t.Fatalf("%q: raw path %q decodes to %q (%v), want %q", target, raw, d, err, p)
	}
}
