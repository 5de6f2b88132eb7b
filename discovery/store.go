package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/sirupsen/logrus"
)

// This file holds what fleet mode needs besides a Tree: reads of whole
// directories, transactions with version checks, and an announcement (an
// ephemeral znode whose data its owner updates).

// Errors of Commit, to be tested with errors.Is.
var (
	// ErrNoSession: the client holds no session; nothing was written.
	ErrNoSession = errNoSession
	// ErrConflict: a version check failed (a znode changed since it was
	// read, or exists where it was to be created, or is gone); nothing
	// was written.
	ErrConflict = errors.New("discovery: the znode changed meanwhile")
	// ErrNotAuthorized: the ACL of a znode (or of its parent) refuses the
	// session's identity; nothing was written.
	ErrNotAuthorized = errors.New("discovery: not authorized by the znode's ACL")
)

// AnyVersion is an Op.Version that matches any version.
const AnyVersion = -1

// Op is one operation of a transaction.
type Op struct {
	// Path is the znode.
	Path string
	// Data is the data to write; ignored by a delete.
	Data []byte
	// Create creates the znode, which must not exist; its missing parents
	// are created beforehand, outside the transaction.
	Create bool
	// Delete deletes the znode.
	Delete bool
	// Version is, for a set (neither Create nor Delete) or a delete, the
	// data version the znode must have: AnyVersion for any.
	Version int32
}

// ACL is the access control of the znodes a transaction creates.
type ACL struct {
	// Digest, "user:password", gives every permission to that digest
	// identity and, unless WorldRead is off, read permission to anyone.
	// Empty gives every permission to anyone.
	Digest string
	// WorldRead lets anyone read when Digest is set.
	WorldRead bool
}

func (a ACL) zk() []zk.ACL {
	user, password, ok := strings.Cut(a.Digest, ":")
	if a.Digest == "" || !ok {
		return zk.WorldACL(zk.PermAll)
	}
	acl := zk.DigestACL(zk.PermAll, user, password)
	if a.WorldRead {
		acl = append(acl, zk.WorldACL(zk.PermRead)...)
	}
	return acl
}

// Commit applies ops as one ZooKeeper transaction (multi): all of them or
// none. Missing parents of the znodes created are made, with acl, when
// the transaction fails for want of them, and it is tried once more. An
// error wrapping ErrNoSession after the transaction was sent (the
// connection was lost) leaves its outcome unknown, as in ZooKeeper.
// It returns the data version of each znode written (-1 for a delete). The
// error wraps ErrNoSession, ErrConflict or ErrNotAuthorized, naming the
// znode, where one of those is the reason.
func (c *Client) Commit(ops []Op, acl ACL) ([]int32, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	if !c.HasSession() {
		return nil, ErrNoSession
	}
	zacl := acl.zk()
	reqs := make([]any, 0, len(ops))
	for _, op := range ops {
		switch {
		case op.Create:
			reqs = append(reqs, &zk.CreateRequest{Path: op.Path, Data: op.Data, Acl: zacl})
		case op.Delete:
			reqs = append(reqs, &zk.DeleteRequest{Path: op.Path, Version: op.Version})
		default:
			reqs = append(reqs, &zk.SetDataRequest{Path: op.Path, Data: op.Data, Version: op.Version})
		}
	}
	res, err := c.conn.Multi(reqs...)
	if i := failedOp(res); err != nil && i >= 0 && ops[i].Create && errors.Is(res[i].Error, zk.ErrNoNode) {
		// A missing parent: make the parents of every znode created.
		made := map[string]bool{}
		for _, op := range ops {
			if parent := parentPath(op.Path); op.Create && parent != "/" && !made[parent] {
				if err := c.mkdirs(parent, zacl); err != nil {
					return nil, err
				}
				made[parent] = true
			}
		}
		res, err = c.conn.Multi(reqs...)
	}
	if err != nil {
		for i, r := range res {
			if r.Error != nil && i < len(ops) {
				return nil, opError(ops[i].Path, r.Error)
			}
		}
		return nil, opError("", err)
	}
	versions := make([]int32, len(ops))
	for i, op := range ops {
		switch {
		case op.Delete:
			versions[i] = -1
		case op.Create:
			versions[i] = 0
		case i < len(res) && res[i].Stat != nil:
			versions[i] = res[i].Stat.Version
		}
	}
	return versions, nil
}

// failedOp returns the index of the first failed operation of a
// transaction's results, -1 when none failed.
func failedOp(res []zk.MultiResponse) int {
	for i, r := range res {
		if r.Error != nil {
			return i
		}
	}
	return -1
}

// opError maps a ZooKeeper error to this package's.
func opError(path string, err error) error {
	what := "transaction"
	if path != "" {
		what = path
	}
	switch {
	case errors.Is(err, zk.ErrBadVersion), errors.Is(err, zk.ErrNodeExists), errors.Is(err, zk.ErrNoNode), errors.Is(err, zk.ErrNotEmpty):
		return fmt.Errorf("%w: %s: %v", ErrConflict, what, err)
	case errors.Is(err, zk.ErrNoAuth):
		return fmt.Errorf("%w: %s", ErrNotAuthorized, what)
	case errors.Is(err, zk.ErrConnectionClosed), errors.Is(err, zk.ErrNoServer), errors.Is(err, zk.ErrSessionExpired):
		return fmt.Errorf("%w: %s: %v", ErrNoSession, what, err)
	}
	return fmt.Errorf("discovery: write %s: %w", what, err)
}

// mkdirs creates p and its parents as persistent znodes with acl,
// tolerating concurrent creation.
func (c *Client) mkdirs(p string, acl []zk.ACL) error {
	cur := ""
	for seg := range strings.SplitSeq(p[1:], "/") {
		cur += "/" + seg
		if _, err := c.conn.Create(cur, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return opError(cur, err)
		}
	}
	return nil
}

// ReadDirs reads the children of dirs and their data once, without
// watches, as a Tree would publish them.
func (c *Client) ReadDirs(dirs []string) (TreeState, error) {
	if !c.HasSession() {
		return TreeState{}, ErrNoSession
	}
	st := TreeState{Dirs: make(map[string][]TreeNode, len(dirs)), ReadAt: time.Now()}
	for _, d := range dirs {
		if err := validatePath("directory", d); err != nil {
			return TreeState{}, err
		}
		names, pz, err := c.listDir(d, false)
		if err != nil {
			return TreeState{}, err
		}
		read, err := c.fetchDir(d, names, false)
		if err != nil {
			return TreeState{}, err
		}
		st.Zxid = max(st.Zxid, pz)
		list := make([]TreeNode, 0, len(read))
		for _, n := range read {
			st.Zxid = max(st.Zxid, n.Mzxid)
			list = append(list, n)
		}
		slices.SortFunc(list, func(a, b TreeNode) int { return cmpString(a.Name, b.Name) })
		st.Dirs[d] = list
	}
	return st, nil
}

// Announcement keeps an ephemeral znode holding data that its owner
// updates (Set): it is created on Start, created again after every new
// session, and deleted on Close. It is how a fleet gateway says that it
// runs, and which configuration.
type Announcement struct {
	client *Client
	path   string
	acl    []zk.ACL
	log    logrus.FieldLogger

	mu      sync.Mutex
	data    []byte
	want    uint64 // incremented by every Set and event: the znode must be looked at
	handled uint64 // the want last handled

	signal    chan struct{}
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// NewAnnouncement prepares the ephemeral znode at path with data; nothing
// is written before Start.
func NewAnnouncement(c *Client, path string, data []byte, acl ACL, log logrus.FieldLogger) (*Announcement, error) {
	if err := validatePath("announcement path", path); err != nil {
		return nil, err
	}
	return &Announcement{client: c, path: path, acl: acl.zk(), data: data, log: log.WithField("znode", path),
		signal: make(chan struct{}, 1), done: make(chan struct{})}, nil
}

// Start keeps the znode until Close.
func (a *Announcement) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.client.subscribe(a.path, a)
	go a.run(ctx)
}

// Set replaces the data; the znode is updated in the background.
func (a *Announcement) Set(data []byte) {
	a.mu.Lock()
	a.data = data
	a.want++
	a.mu.Unlock()
	a.wake()
}

// Close deletes the znode (when the session allows) and stops.
func (a *Announcement) Close() {
	a.closeOnce.Do(func() {
		if a.cancel == nil {
			return
		}
		a.client.unsubscribe(a.path, a)
		a.cancel()
		<-a.done
		if a.client.HasSession() {
			if err := a.client.conn.Delete(a.path, AnyVersion); err != nil && !errors.Is(err, zk.ErrNoNode) {
				a.log.WithError(err).Debug("announcement not deleted; it goes with the session")
			}
		}
	})
}

// nodeEvent implements subscriber: any event on the znode (its watch is
// then spent) has it looked at again, and the watch set again.
func (a *Announcement) nodeEvent(ev zk.Event, child bool) {
	if !child {
		a.sessionEvent()
	}
}

func (a *Announcement) sessionEvent() {
	a.mu.Lock()
	a.want++
	a.mu.Unlock()
	a.wake()
}

func (a *Announcement) wake() {
	select {
	case a.signal <- struct{}{}:
	default:
	}
}

func (a *Announcement) run(ctx context.Context) {
	defer close(a.done)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	backoff := time.Duration(0)
	a.sessionEvent() // the first write
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.signal:
		case <-retry.C:
		}
		a.mu.Lock()
		data, want, handled := a.data, a.want, a.handled
		a.mu.Unlock()
		if want == handled || !a.client.HasSession() {
			continue
		}
		if err := a.write(data); err != nil {
			if backoff == 0 {
				a.log.WithError(err).Warn("announcement not written; retrying")
			}
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			retry.Reset(backoff)
			continue
		}
		backoff = 0
		a.mu.Lock()
		a.handled = want
		more := a.want != want
		a.mu.Unlock()
		if more {
			a.wake()
		}
	}
}

// write makes the znode this session's, holding data, with a watch on it.
func (a *Announcement) write(data []byte) error {
	conn := a.client.conn
	sid := conn.SessionID()
	for range 3 {
		cur, st, _, err := conn.GetW(a.path)
		found := err == nil
		switch {
		case err != nil && !errors.Is(err, zk.ErrNoNode):
			return err
		case found && st.EphemeralOwner == sid:
			if bytesEqual(cur, data) {
				return nil // the watch is set again
			}
			_, err = conn.Set(a.path, data, AnyVersion)
			return err
		case found:
			// A previous session's (a restart): it is ours to replace.
			if err := conn.Delete(a.path, st.Version); err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
				return err
			}
			continue
		}
		if err := a.client.mkdirs(parentPath(a.path), a.acl); err != nil && parentPath(a.path) != "/" {
			return err
		}
		_, err = conn.Create(a.path, data, zk.FlagEphemeral, a.acl)
		if err == nil {
			_, _, _, err = conn.ExistsW(a.path) // watch it
			return err
		}
		if !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
	}
	return fmt.Errorf("discovery: announce %s: the znode keeps changing", a.path)
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }
