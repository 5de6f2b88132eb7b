package discovery

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/zkgate/zkgate/internal/zktest"
)

var treeCases = []zkCase{
	{"tree publishes a transaction whole", testTreeTransactionWhole},
	{"commit checks versions and the ACL", testCommitChecks},
	{"announcement follows its data and goes on close", testAnnouncement},
}

// treeRecorder keeps every state a Tree published.
type treeRecorder struct {
	mu     sync.Mutex
	states []TreeState
}

func (r *treeRecorder) record(st TreeState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, st)
}

func (r *treeRecorder) all() []TreeState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]TreeState(nil), r.states...)
}

func names(st TreeState, dir string) string {
	var out []string
	for _, n := range st.Dirs[dir] {
		out = append(out, n.Name+"="+string(n.Data))
	}
	return strings.Join(out, ",")
}

func testTreeTransactionWhole(t *testing.T, srv *zktest.Server) {
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	base := testPath(t)
	a, b := base+"/a", base+"/b"
	log, _ := testLog()
	rec := &treeRecorder{}
	tree, err := NewTree(c, []string{a, b}, rec.record, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tree.Close)
	waitFor(t, "first state", func() bool { return len(rec.all()) == 1 })

	// Ten transactions, each writing one child in each directory (the
	// directories created by the first): every state published holds
	// both or neither of each transaction's children.
	for i := range 10 {
		v := string(rune('0' + i))
		ops := []Op{{Path: a + "/x", Data: []byte(v)}, {Path: b + "/y", Data: []byte(v)}}
		if i == 0 {
			ops[0].Create, ops[1].Create = true, true
		} else {
			ops[0].Version, ops[1].Version = AnyVersion, AnyVersion
		}
		if _, err := c.Commit(ops, ACL{}); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		// This session's write is in the state once Settle returns.
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		err := tree.Settle(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		st, _ := tree.State()
		if got := names(st, a) + "|" + names(st, b); got != "x="+v+"|y="+v {
			t.Fatalf("after commit %d and Settle: %s", i, got)
		}
	}
	for _, st := range rec.all() {
		na, nb := names(st, a), names(st, b)
		if strings.TrimPrefix(na, "x=") != strings.TrimPrefix(nb, "y=") {
			t.Errorf("a state holds half a transaction: %s | %s", na, nb)
		}
	}
	// Another session's write is in the state once Sync returns.
	other := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	for i := range 5 {
		v := string(rune('a' + i))
		if _, err := other.Commit([]Op{{Path: b + "/y", Data: []byte(v), Version: AnyVersion}}, ACL{}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		err := tree.Sync(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := tree.State(); names(st, b) != "y="+v {
			t.Fatalf("after another session's write %s and Sync: %s", v, names(st, b))
		}
	}
	// The version is the zxid of the last change: a delete moves it on.
	st, _ := tree.State()
	if _, err := c.Commit([]Op{{Path: a + "/x", Delete: true, Version: AnyVersion}}, ACL{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delete published", func() bool { s, _ := tree.State(); return s.Zxid > st.Zxid && names(s, a) == "" })
}

func testCommitChecks(t *testing.T, srv *zktest.Server) {
	writer := dial(t, ClientConfig{Servers: []string{srv.Addr()}, Auth: Auth{Scheme: "digest", Credentials: "writer:s3cret"}})
	other := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	p := testPath(t) + "/r"
	acl := ACL{Digest: "writer:s3cret", WorldRead: true}
	v, err := writer.Commit([]Op{{Path: p, Data: []byte("1"), Create: true}}, acl)
	if err != nil || v[0] != 0 {
		t.Fatalf("create: %v %v", v, err)
	}
	if _, err := writer.Commit([]Op{{Path: p, Data: []byte("x"), Create: true}}, acl); !errors.Is(err, ErrConflict) {
		t.Errorf("create of an existing znode: %v, want ErrConflict", err)
	}
	v, err = writer.Commit([]Op{{Path: p, Data: []byte("2"), Version: 0}}, acl)
	if err != nil || v[0] != 1 {
		t.Fatalf("set with version 0: %v %v", v, err)
	}
	if _, err := writer.Commit([]Op{{Path: p, Data: []byte("3"), Version: 0}}, acl); !errors.Is(err, ErrConflict) {
		t.Errorf("set with a stale version: %v, want ErrConflict", err)
	}
	// A transaction fails whole: the set before the failing op is undone.
	if _, err := writer.Commit([]Op{{Path: p, Data: []byte("4"), Version: 1}, {Path: p + "-missing", Version: 0}}, acl); !errors.Is(err, ErrConflict) ||
		!strings.Contains(err.Error(), p+"-missing") {
		t.Errorf("transaction with a missing znode: %v, want ErrConflict naming it", err)
	}
	st, err := other.ReadDirs([]string{p[:strings.LastIndexByte(p, '/')]})
	if err != nil || len(st.Dirs) != 1 || string(st.Dirs[p[:strings.LastIndexByte(p, '/')]][0].Data) != "2" {
		t.Errorf("after the failed transaction: %+v %v, want data 2 (read by anyone)", st, err)
	}
	if _, err := other.Commit([]Op{{Path: p, Data: []byte("5"), Version: AnyVersion}}, ACL{}); !errors.Is(err, ErrNotAuthorized) {
		t.Errorf("write without the credentials: %v, want ErrNotAuthorized", err)
	}
}

func testAnnouncement(t *testing.T, srv *zktest.Server) {
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	conn := zktest.Connect(t, srv.Addr())
	p := testPath(t) + "/gw-1"
	log, _ := testLog()
	a, err := NewAnnouncement(c, p, []byte("v1"), ACL{}, log)
	if err != nil {
		t.Fatal(err)
	}
	a.Start()
	read := func() string {
		data, st, err := conn.Get(p)
		if err != nil || st.EphemeralOwner != c.conn.SessionID() {
			return ""
		}
		return string(data)
	}
	waitFor(t, "announced", func() bool { return read() == "v1" })
	a.Set([]byte("v2"))
	waitFor(t, "updated", func() bool { return read() == "v2" })
	// Deleted by someone else: created again.
	if err := conn.Delete(p, -1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "announced again", func() bool { return read() == "v2" })
	a.Close()
	if ok, _, err := conn.Exists(p); err != nil || ok {
		t.Errorf("after Close the znode exists: %v %v", ok, err)
	}
}
