package e2e

import (
	"context"
	"errors"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// ensurePath creates p and its parents as persistent nodes when missing.
func ensurePath(t *testing.T, conn *zk.Conn, p string) {
	t.Helper()
	cur := ""
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		cur += "/" + part
		_, err := conn.Create(cur, nil, 0, zk.WorldACL(zk.PermAll))
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatalf("create %s: %v", cur, err)
		}
	}
}

// tracker follows the children of a znode through watches and records when
// each appeared (its creation time, from the node's ctime) and when it went
// (when the watch reported it).
type tracker struct {
	conn *zk.Conn
	path string

	mu      sync.Mutex
	created map[string]time.Time
	gone    map[string]time.Time
	present map[string]bool
	listed  bool // a first listing completed
}

// trackChildren starts following the children of p (which must exist) until
// the test ends.
func trackChildren(t *testing.T, conn *zk.Conn, p string) *tracker {
	t.Helper()
	tr := &tracker{
		conn:    conn,
		path:    p,
		created: map[string]time.Time{},
		gone:    map[string]time.Time{},
		present: map[string]bool{},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		// The loop may be blocked in a request while ZooKeeper is away;
		// the connection's close (a later cleanup) ends it. Bounded wait.
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	})
	await(t, 30*time.Second, func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.listed
	}, "a first listing of %s", p)
	return tr
}

func (tr *tracker) run(ctx context.Context) {
	for ctx.Err() == nil {
		children, _, ch, err := tr.conn.ChildrenW(tr.path)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		tr.update(children)
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// update records the children now listed.
func (tr *tracker) update(children []string) {
	now := time.Now()
	names := map[string]bool{}
	for _, c := range children {
		names[c] = true
	}
	tr.mu.Lock()
	var fresh []string
	for c := range names {
		if !tr.present[c] {
			fresh = append(fresh, c)
		}
	}
	for c := range tr.present {
		if !names[c] {
			tr.gone[c] = now
		}
	}
	tr.present = names
	tr.listed = true
	tr.mu.Unlock()
	// Outside the lock: the creation time is the node's ctime, the
	// server's clock on this same machine, in milliseconds.
	for _, c := range fresh {
		at := now
		if ok, st, err := tr.conn.Exists(path.Join(tr.path, c)); err == nil && ok {
			at = time.UnixMilli(st.Ctime)
		}
		tr.mu.Lock()
		tr.created[c] = at
		delete(tr.gone, c)
		tr.mu.Unlock()
	}
}

// createdAt returns when child was created, false if it was not seen.
func (tr *tracker) createdAt(child string) (time.Time, bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	at, ok := tr.created[child]
	return at, ok
}

// goneAt returns when child was seen to go, false while it is present or
// was never seen.
func (tr *tracker) goneAt(child string) (time.Time, bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	at, ok := tr.gone[child]
	return at, ok && !tr.present[child]
}

// has reports whether child is listed now.
func (tr *tracker) has(child string) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.present[child]
}

// goneCount returns how many children went away since tracking began.
func (tr *tracker) goneCount() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.gone)
}
