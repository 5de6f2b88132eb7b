package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// htpasswdLine is "user:" and a bcrypt hash of pass at the minimum cost
// (tests need not pay for the default).
func htpasswdLine(t testing.TB, user, pass string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// htpasswd -B writes $2y$; the hash is the same.
	return user + ":$2y$" + string(h[4:]) + "\n"
}

func TestBasicUsers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeFile(t, path, []byte("# users\n"+htpasswdLine(t, "alice", "wonderland")+htpasswdLine(t, "bob", "builder")))
	b, err := NewBasicUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, pass string
		ok         bool
	}{
		{"alice", "wonderland", true}, {"bob", "builder", true},
		{"alice", "builder", false}, {"alice", "", false}, {"carol", "wonderland", false},
		{"", "", false}, {"Alice", "wonderland", false}, {"alice", "wonderland ", false},
	} {
		for range 2 { // the second time from the cache, if cached
			if got := b.Valid([]byte(tc.user), []byte(tc.pass)); got != tc.ok {
				t.Errorf("Valid(%q, %q) = %v, want %v", tc.user, tc.pass, got, tc.ok)
			}
		}
	}
	if n := b.cached(); n != 2 {
		t.Errorf("%d checks cached, want the 2 successful ones", n)
	}
}

// TestBasicCache: a cached check costs no bcrypt (so no allocation: bcrypt
// allocates), and the cache holds at most BasicCacheSize entries.
func TestBasicCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeFile(t, path, []byte(htpasswdLine(t, "alice", "wonderland")))
	b, err := NewBasicUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	user, pass := []byte("alice"), []byte("wonderland")
	if !b.Valid(user, pass) {
		t.Fatal("refused")
	}
	if n := testing.AllocsPerRun(100, func() { b.Valid(user, pass) }); n != 0 {
		t.Errorf("a cached check allocates %.1f times, want 0 (it ran bcrypt?)", n)
	}

	// Fill the cache beyond its bound directly: putting is what a success
	// does, and 5000 bcrypt hashes would take minutes.
	st := b.state.Load()
	for i := range BasicCacheSize + 1000 {
		d := credentialDigest([]byte("alice"), []byte(strings.Repeat("x", i)))
		st.ok.put(d[:], struct{}{})
	}
	if n := b.cached(); n > BasicCacheSize {
		t.Errorf("cache holds %d entries, bound %d", n, BasicCacheSize)
	}
}

// TestBasicFileErrors: other hash kinds and malformed lines are errors
// naming the path and line.
func TestBasicFileErrors(t *testing.T) {
	dir := t.TempDir()
	good := htpasswdLine(t, "alice", "pw")
	for _, tc := range []struct {
		name, data, want string
	}{
		{"MD5", good + "bob:$apr1$abcdefgh$0123456789abcdefghijkl\n", `line 2: user "bob": MD5 ($apr1$) hash`},
		{"SHA", "# c\nbob:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n", `line 2: user "bob": SHA-1`},
		{"plain", "bob:secretpassword\n", `line 1: user "bob": not a bcrypt hash`},
		{"truncated bcrypt", "bob:$2y$10$short\n", `line 1: user "bob": malformed bcrypt hash`},
		{"no colon", "bob\n", "line 1: not user:hash"},
		{"empty user", ":" + good[len("alice:"):], "line 1: empty user name"},
		{"duplicate", good + good, `line 2: user "alice" given twice`},
		{"empty", "", "is empty"},
		{"control character", "bob\x1b:x\n", "line 1: holds a control character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := NewBasicUsers(path)
			if err == nil || !strings.HasPrefix(err.Error(), path+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewBasicUsers = %v, want %s: ...%s", err, path, tc.want)
			}
			if strings.Contains(err.Error(), "secretpassword") || strings.Contains(err.Error(), "qUqP5") {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}

// TestBasicReload: a changed password takes effect at once, the cached
// success of the old one included; a bad file keeps the old users.
func TestBasicReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeFile(t, path, []byte(htpasswdLine(t, "alice", "old")))
	b, err := NewBasicUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Watch(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Wait)
	if !b.Valid([]byte("alice"), []byte("old")) { // now cached
		t.Fatal("refused")
	}
	writeFile(t, path, []byte(htpasswdLine(t, "alice", "new")+htpasswdLine(t, "bob", "b")))
	eventually(t, "the new password to be accepted", func() bool { return b.Valid([]byte("alice"), []byte("new")) })
	if b.Valid([]byte("alice"), []byte("old")) {
		t.Error("the old, cached password is still accepted")
	}

	failures := b.ReloadFailures()
	writeFile(t, path, []byte("alice:$apr1$x$y\n"))
	eventually(t, "the bad file to be refused", func() bool { return b.ReloadFailures() > failures })
	if !b.Valid([]byte("bob"), []byte("b")) {
		t.Error("after a refused reload bob is refused")
	}
}

// TestBasicUnknownUserCostsBcrypt: an unknown user is compared against a
// dummy hash, so a miss takes a bcrypt comparison like a wrong password
// and its time does not tell which users exist. bcrypt allocates and the
// rest of the check does not, so allocations show whether it ran.
func TestBasicUnknownUserCostsBcrypt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeFile(t, path, []byte(htpasswdLine(t, "alice", "wonderland")))
	b, err := NewBasicUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(3, func() { b.Valid([]byte("carol"), []byte("x")) }); n == 0 {
		t.Error("an unknown user was refused without a bcrypt comparison")
	}
	if cost := b.state.Load().cost; cost != bcrypt.MinCost {
		t.Errorf("dummy hash cost %d, want the file's %d", cost, bcrypt.MinCost)
	}
}
