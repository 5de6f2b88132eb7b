package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAPIKeysFile: keys are read one per line, trimmed, comments and blank
// lines ignored; Valid takes exactly the file's keys.
func TestAPIKeysFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.txt")
	writeFile(t, path, []byte("# team A\n  key-one  \r\n\n\t# indented comment\nkey two with spaces\nkey-three"))
	a, err := NewAPIKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"key-one", "key two with spaces", "key-three"} {
		if !a.Valid([]byte(k)) {
			t.Errorf("key %q refused", k)
		}
	}
	for _, k := range []string{"", "key-one ", " key-one", "key-on", "key-one2", "KEY-ONE", "# team A", "#", "key two"} {
		if a.Valid([]byte(k)) {
			t.Errorf("key %q accepted", k)
		}
	}
	if err := a.Check([]byte("nope")); !errors.Is(err, ErrUnauthorized) || err.Error() != "unauthorized" || strings.Contains(Reason(err), "nope") {
		t.Errorf("Check of an unknown key = %v (%s)", err, Reason(err))
	}
	if a.Len() != 3 {
		t.Errorf("Len = %d, want 3", a.Len())
	}
}

// TestAPIKeysValidAllocs: a check, hit or miss, allocates nothing.
func TestAPIKeysValidAllocs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.txt")
	writeFile(t, path, []byte("secret-key-1\n"))
	a, err := NewAPIKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	hit, miss := []byte("secret-key-1"), []byte("secret-key-2")
	if n := testing.AllocsPerRun(1000, func() {
		if !a.Valid(hit) || a.Valid(miss) {
			t.Fatal("wrong answer")
		}
	}); n != 0 {
		t.Errorf("Valid allocates %.1f times, want 0", n)
	}
}

// TestAPIKeysFileErrors: a bad file names the path and line, never the key.
func TestAPIKeysFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, data, want string
	}{
		{"empty", "", "is empty"},
		{"blank", "\n  \n", "is empty"},
		{"only comments", "# a\n# b\n", "holds no key"},
		{"control character", "good-key\nsecret\x01key\n", "line 2: holds a control character"},
		{"tab inside", "good-key\n# c\nsecret\tkey\n", "line 3: holds a control character"},
		{"NUL", "secret\x00key", "line 1: holds a control character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := NewAPIKeys(path)
			if err == nil || !strings.HasPrefix(err.Error(), path+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewAPIKeys = %v, want %s: ...%s", err, path, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the key", err)
			}
		})
	}
	for _, path := range []string{filepath.Join(dir, "missing"), dir} {
		if _, err := NewAPIKeys(path); err == nil || !strings.HasPrefix(err.Error(), path+": ") {
			t.Errorf("NewAPIKeys(%s) = %v, want an error naming it", path, err)
		}
	}
}

// TestAPIKeysReload: through the watch, a new key is accepted and a removed
// one refused; a bad file is refused with the old keys kept.
func TestAPIKeysReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.txt")
	writeFile(t, path, []byte("old-key\n"))
	a, err := NewAPIKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Watch(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Wait)

	writeFile(t, path, []byte("new-key\n"))
	eventually(t, "the new key to be accepted", func() bool { return a.Valid([]byte("new-key")) })
	if a.Valid([]byte("old-key")) {
		t.Error("the removed key is still accepted")
	}

	failures := a.ReloadFailures()
	writeFile(t, path, []byte("bad\x7fkey\n"))
	eventually(t, "the bad file to be refused", func() bool { return a.ReloadFailures() > failures })
	if !a.Valid([]byte("new-key")) {
		t.Error("after a refused reload the previous key is refused")
	}
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), path+": line 1") {
		t.Errorf("Reload = %v, want an error naming %s line 1", err, path)
	}
}
