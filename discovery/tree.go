package discovery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/sirupsen/logrus"
)

// Tree watches the children of a few directory znodes and the data of each
// child, as a LoadBalanceZkConf does for one service, but hands the raw data
// on: it is how fleet mode reads its route and service znodes. Every change
// is published as a whole TreeState, and a transaction (Client.Commit) that
// changes several children is published as one state, never half of it.
//
// Watches are set as by LoadBalanceZkConf: their events reach the tree
// through the client's routing by path; a new session or lost watches read
// everything again; a reconnect that kept the session and every
// ResyncInterval verify what the tree knows with reads without watches.
type Tree struct {
	client   *Client
	dirs     []string
	onChange func(TreeState)
	log      logrus.FieldLogger

	signal    chan struct{}
	pmu       sync.Mutex
	pendDirs  map[string]struct{}
	pendNodes map[string]struct{}
	takes     uint64   // takePending calls so far
	waiters   []waiter // Settle calls waiting

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once

	// Owned by the run goroutine.
	nodes  map[string]map[string]TreeNode // dir → child name → node
	pzxid  map[string]int64               // dir → zxid of its last child change
	synced session
	ok     bool // a first read completed

	state atomic.Pointer[TreeState]
}

// waiter is a Settle call: done is closed once a step took the pending
// work after the call (its take count is above after).
type waiter struct {
	after uint64
	done  chan struct{}
}

// TreeNode is one child of a watched directory.
type TreeNode struct {
	Name    string // the last element of Path
	Path    string
	Data    []byte
	Version int32 // the data version, for Client.Commit's version checks
	Mzxid   int64 // the zxid of the data's last change
	// Modified is when the data last changed, by ZooKeeper's clock.
	Modified time.Time
	// Err is set when the node cannot be read (its ACL forbids it).
	Err error
}

// TreeState is what a Tree knows.
type TreeState struct {
	// Dirs holds the children of each watched directory, sorted by name;
	// a missing directory has none.
	Dirs map[string][]TreeNode
	// Zxid identifies this content: the zxid of the last change to it
	// (the highest of the directories' child changes and the children's
	// data changes). Two states with one Zxid are equal.
	Zxid int64
	// ReadAt is when the state was last read or verified.
	ReadAt time.Time
}

// NewTree starts watching dirs (absolute paths). onChange, when set, is
// called from the tree's goroutine with every new state, the first one
// included. Close stops it.
func NewTree(c *Client, dirs []string, onChange func(TreeState), log logrus.FieldLogger) (*Tree, error) {
	for _, d := range dirs {
		if err := validatePath("tree directory", d); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Tree{
		client:    c,
		dirs:      slices.Clone(dirs),
		onChange:  onChange,
		log:       log.WithField("component", "tree"),
		signal:    make(chan struct{}, 1),
		pendDirs:  map[string]struct{}{},
		pendNodes: map[string]struct{}{},
		cancel:    cancel,
		done:      make(chan struct{}),
		nodes:     map[string]map[string]TreeNode{},
		pzxid:     map[string]int64{},
	}
	for _, d := range t.dirs {
		c.subscribe(d, t)
	}
	go t.run(ctx)
	return t, nil
}

// Close stops watching and waits for the tree's goroutine.
func (t *Tree) Close() {
	t.closeOnce.Do(func() {
		for _, d := range t.dirs {
			t.client.unsubscribe(d, t)
		}
		t.cancel()
		<-t.done
	})
}

// State returns the last state read; ok is false before the first read.
func (t *Tree) State() (TreeState, bool) {
	s := t.state.Load()
	if s == nil {
		return TreeState{}, false
	}
	return *s, true
}

// Stale reports whether the state may be out of date: the client has no
// session.
func (t *Tree) Stale() bool { return !t.client.HasSession() }

// nodeEvent implements subscriber.
func (t *Tree) nodeEvent(ev zk.Event, child bool) {
	t.pmu.Lock()
	switch {
	case !child && ev.Type != zk.EventNodeDataChanged:
		t.pendDirs[ev.Path] = struct{}{}
	case child && (ev.Type == zk.EventNodeDataChanged || ev.Type == zk.EventNodeDeleted):
		t.pendNodes[ev.Path] = struct{}{}
	default:
		t.pmu.Unlock()
		return
	}
	t.pmu.Unlock()
	t.wake()
}

// sessionEvent implements subscriber.
func (t *Tree) sessionEvent() { t.wake() }

// Settle waits until every watch event received before the call has been
// read and published, or ctx ends. After a write of this session returns,
// its events have been received (ZooKeeper sends them before the answer),
// so Settle then State give a state that includes the write.
func (t *Tree) Settle(ctx context.Context) error {
	w := waiter{done: make(chan struct{})}
	t.pmu.Lock()
	w.after = t.takes
	t.waiters = append(t.waiters, w)
	t.pmu.Unlock()
	t.wake()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Sync waits until the state includes every change committed in the
// ensemble before the call, whoever wrote it, or ctx ends: ZooKeeper's sync
// brings the session's server up to date with the leader, and that server
// sends the watch events of the changes it applies before its answer.
func (t *Tree) Sync(ctx context.Context) error {
	if !t.client.HasSession() {
		return ErrNoSession
	}
	if _, err := t.client.conn.Sync("/"); err != nil {
		return opError("sync", err)
	}
	return t.Settle(ctx)
}

// release ends the Settle calls made before the last take of pending work,
// which the step that just succeeded did.
func (t *Tree) release() {
	t.pmu.Lock()
	defer t.pmu.Unlock()
	kept := t.waiters[:0]
	for _, w := range t.waiters {
		if w.after < t.takes {
			close(w.done)
		} else {
			kept = append(kept, w)
		}
	}
	t.waiters = kept
}

func (t *Tree) wake() {
	select {
	case t.signal <- struct{}{}:
	default:
	}
}

func (t *Tree) takePending() (dirs, nodes map[string]struct{}) {
	t.pmu.Lock()
	defer t.pmu.Unlock()
	t.takes++
	dirs, nodes = t.pendDirs, t.pendNodes
	t.pendDirs, t.pendNodes = map[string]struct{}{}, map[string]struct{}{}
	return dirs, nodes
}

func (t *Tree) requeue(dirs, nodes map[string]struct{}) {
	t.pmu.Lock()
	defer t.pmu.Unlock()
	maps.Copy(t.pendDirs, dirs)
	maps.Copy(t.pendNodes, nodes)
}

func (t *Tree) run(ctx context.Context) {
	defer close(t.done)
	var resync <-chan time.Time
	if iv := t.client.ResyncInterval(); iv > 0 {
		tk := time.NewTicker(iv)
		defer tk.Stop()
		resync = tk.C
	}
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	backoff, verify, failing := time.Duration(0), false, false
	for {
		err := t.step(verify)
		switch {
		case errors.Is(err, errNoSession):
			retry.Stop()
		case err != nil:
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			if !failing {
				t.log.WithError(err).Warn("reading ZooKeeper failed; keeping the last state, retrying")
			}
			failing = true
			retry.Reset(backoff)
		default:
			if failing {
				t.log.Info("reading ZooKeeper works again")
			}
			failing, backoff = false, 0
			t.release()
		}
		verify = false
		select {
		case <-ctx.Done():
			return
		case <-t.signal:
		case <-resync:
			verify = true
		case <-retry.C:
		}
	}
}

// step does the pending work and publishes the result. Reads go on while
// events keep arriving, so that the children a transaction changed are all
// read before anything is published: ZooKeeper sends a transaction's watch
// events before its answers to later reads, so once a read answers, every
// event of the transactions it sees has been received.
func (t *Tree) step(verify bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("discovery: tree watcher panicked: %v", r)
		}
	}()
	changed := false
	// Bounded: a writer changing the tree without pause would otherwise
	// keep it from ever publishing. A state published at the bound may
	// hold part of a transaction whose other changes the next step reads.
	for range 100 {
		s := t.client.session()
		if !s.ok {
			return errNoSession
		}
		dirs, nodes := t.takePending()
		switch {
		case !t.ok || s.id != t.synced.id || s.rearm != t.synced.rearm:
			err = t.fullRead()
		case s.gen != t.synced.gen || verify:
			if err = t.update(dirs, nodes); err == nil {
				var drift bool
				if drift, err = t.drifted(); err == nil && drift {
					t.log.Info("verification found a change that no watch reported; reading everything again")
					err = t.fullRead()
				}
			}
		case len(dirs) > 0 || len(nodes) > 0:
			err = t.update(dirs, nodes)
		default:
			if changed {
				t.publish()
			}
			return nil
		}
		if err != nil {
			t.requeue(dirs, nodes)
			return err
		}
		t.synced, t.ok, changed, verify = s, true, true, false
	}
	t.publish()
	return nil
}

// fullRead lists every directory and reads every child, setting watches.
func (t *Tree) fullRead() error {
	nodes := make(map[string]map[string]TreeNode, len(t.dirs))
	pzxid := make(map[string]int64, len(t.dirs))
	for _, d := range t.dirs {
		names, pz, err := t.client.listDir(d, true)
		if err != nil {
			return err
		}
		read, err := t.client.fetchDir(d, names, true)
		if err != nil {
			return err
		}
		nodes[d], pzxid[d] = read, pz
	}
	t.nodes, t.pzxid = nodes, pzxid
	return nil
}

// update re-lists the directories whose children changed and reads the new
// children and those whose data changed, setting watches.
func (t *Tree) update(dirs, nodes map[string]struct{}) error {
	for _, d := range t.dirs {
		_, listed := dirs[d]
		var toRead []string
		known := t.nodes[d]
		if known == nil {
			known = map[string]TreeNode{}
		}
		next := known
		if listed {
			names, pz, err := t.client.listDir(d, true)
			if err != nil {
				return err
			}
			next = make(map[string]TreeNode, len(names))
			for _, n := range names {
				if old, ok := known[n]; ok {
					next[n] = old
				} else {
					toRead = append(toRead, n)
				}
			}
			t.pzxid[d] = pz
		}
		for p := range nodes {
			if parentPath(p) != d {
				continue
			}
			n := p[len(d)+1:]
			if d == "/" {
				n = p[1:]
			}
			if _, ok := next[n]; ok {
				toRead = append(toRead, n)
			}
		}
		read, err := t.client.fetchDir(d, toRead, true)
		if err != nil {
			return err
		}
		if listed || len(toRead) > 0 {
			next = maps.Clone(next)
		}
		for _, n := range toRead {
			if r, ok := read[n]; ok {
				next[n] = r
			} else {
				delete(next, n) // gone meanwhile
			}
		}
		t.nodes[d] = next
	}
	return nil
}

// drifted reads everything without watches and reports whether it differs
// from what the tree knows.
func (t *Tree) drifted() (bool, error) {
	for _, d := range t.dirs {
		names, pz, err := t.client.listDir(d, false)
		if err != nil {
			return false, err
		}
		if pz != t.pzxid[d] || len(names) != len(t.nodes[d]) {
			return true, nil
		}
		read, err := t.client.fetchDir(d, names, false)
		if err != nil {
			return false, err
		}
		for n, r := range read {
			if old, ok := t.nodes[d][n]; !ok || old.Mzxid != r.Mzxid {
				return true, nil
			}
		}
		if len(read) != len(names) {
			return true, nil
		}
	}
	return false, nil
}

// list lists a directory's children (with a watch when watch is set) and
// returns the zxid of its last child change. A missing directory has no
// children; with watch set, an existence watch is left on it.
func (c *Client) listDir(dir string, watch bool) ([]string, int64, error) {
	conn := c.conn
	for range 3 {
		var (
			names []string
			st    *zk.Stat
			err   error
		)
		if watch {
			names, st, _, err = conn.ChildrenW(dir)
		} else {
			names, st, err = conn.Children(dir)
		}
		switch {
		case err == nil:
			return names, st.Pzxid, nil
		case !errors.Is(err, zk.ErrNoNode):
			return nil, 0, fmt.Errorf("discovery: list %s: %w", dir, err)
		case !watch:
			return nil, 0, nil
		}
		found, _, _, err := conn.ExistsW(dir)
		if err != nil {
			return nil, 0, fmt.Errorf("discovery: watch for %s to exist: %w", dir, err)
		}
		if !found {
			return nil, 0, nil
		}
	}
	return nil, 0, fmt.Errorf("discovery: list %s: the path keeps appearing and vanishing", dir)
}

// fetch reads the named children of dir, pipelined on the connection; a
// child gone meanwhile is left out.
func (c *Client) fetchDir(dir string, names []string, watch bool) (map[string]TreeNode, error) {
	out := make(map[string]TreeNode, len(names))
	if len(names) == 0 {
		return out, nil
	}
	prefix := dir + "/"
	if dir == "/" {
		prefix = "/"
	}
	results := make([]TreeNode, len(names))
	gone := make([]bool, len(names))
	conn := c.conn
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(DefaultConcurrency, len(names)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(names) {
					return
				}
				p := prefix + names[i]
				var (
					data []byte
					st   *zk.Stat
					err  error
				)
				if watch {
					data, st, _, err = conn.GetW(p)
				} else {
					data, st, err = conn.Get(p)
				}
				switch {
				case err == nil:
					results[i] = TreeNode{Name: names[i], Path: p, Data: data, Version: st.Version, Mzxid: st.Mzxid, Modified: time.UnixMilli(st.Mtime)}
				case errors.Is(err, zk.ErrNoNode):
					gone[i] = true
				case errors.Is(err, zk.ErrNoAuth):
					results[i] = TreeNode{Name: names[i], Path: p, Mzxid: unreadable, Err: fmt.Errorf("unreadable: %w", err)}
				default:
					errOnce.Do(func() { firstErr = fmt.Errorf("discovery: read %s: %w", p, err) })
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	for i, n := range names {
		if !gone[i] {
			out[n] = results[i]
		}
	}
	return out, nil
}

// publish stores the state and hands it to onChange when its content
// changed.
func (t *Tree) publish() {
	st := TreeState{Dirs: make(map[string][]TreeNode, len(t.dirs)), ReadAt: time.Now()}
	for _, d := range t.dirs {
		st.Zxid = max(st.Zxid, t.pzxid[d])
		list := make([]TreeNode, 0, len(t.nodes[d]))
		for _, n := range t.nodes[d] {
			st.Zxid = max(st.Zxid, n.Mzxid)
			list = append(list, n)
		}
		slices.SortFunc(list, func(a, b TreeNode) int { return cmpString(a.Name, b.Name) })
		st.Dirs[d] = list
	}
	prev := t.state.Swap(&st)
	if prev != nil && prev.Zxid == st.Zxid && sameNames(prev.Dirs, st.Dirs) {
		return
	}
	t.log.WithField("zxid", fmt.Sprintf("0x%x", st.Zxid)).Debug("tree changed")
	if t.onChange != nil {
		t.onChange(st)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// sameNames reports whether two states list the same children; with equal
// zxids their data are then equal too.
func sameNames(a, b map[string][]TreeNode) bool {
	for d, la := range a {
		lb := b[d]
		if len(la) != len(lb) {
			return false
		}
		for i := range la {
			if la[i].Name != lb[i].Name {
				return false
			}
		}
	}
	return true
}
