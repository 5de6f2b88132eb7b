package discovery

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/sirupsen/logrus"
	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/internal/logging"
)

// This file holds the conf's reads of ZooKeeper. Watches are set with
// ChildrenW, GetW and ExistsW, but their channels are never waited on: every
// watch event also reaches the client's event callback, which routes it to
// the conf by path (see Client.route). A failed call therefore never leaves
// the conf waiting on a nil channel, and 10,000 data watches need no
// goroutine each.

// step does the pending work: a full read that sets every watch after a new
// session, a verification after a reconnect that kept the session or when
// verify is set, and otherwise the reads that the received events call for.
// A panic is reported as an error, so that the conf retries.
func (z *LoadBalanceZkConf) step(verify bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("discovery: watcher of %s panicked: %v", z.path, r)
		}
	}()
	s := z.client.session()
	if !s.ok {
		return errNoSession // the next session event wakes the conf
	}
	children, data := z.takePending()
	switch {
	case !z.isSynced.Load() || s.id != z.synced.id || s.rearm != z.synced.rearm:
		// A new session has no watches; or they were lost.
		err = z.fullSync()
	case s.gen != z.synced.gen || verify:
		// After a reconnect go-zookeeper set the watches again, telling
		// the server the last zxid seen; check that nothing was missed.
		if err = z.update(children, data); err == nil {
			err = z.verify(true)
		}
	default:
		err = z.update(children, data)
	}
	z.pubMu.Lock()
	defer z.pubMu.Unlock()
	if err != nil {
		z.requeue(children, data)
	} else {
		// Recorded before publishing: an observer handed the list sees
		// the conf synced.
		z.synced = s
		z.syncedGen.Store(s.gen)
		z.existsNow.Store(z.exists)
		if z.isSynced.CompareAndSwap(false, true) {
			close(z.syncedOnce)
			if z.seededAt.Load() != 0 {
				z.log.Info("first read of ZooKeeper done: its membership replaces the snapshot's")
			}
		}
	}
	if z.dirty {
		z.dirty = false
		z.publish()
	}
	return err
}

// fullSync lists the children with a watch, reads every child with a data
// watch, and replaces the nodes with the result.
func (z *LoadBalanceZkConf) fullSync() error {
	children, exists, err := z.listChildren(true)
	if err != nil {
		return err
	}
	paths := z.childPaths(children)
	results, err := z.fetch(paths, true)
	if err != nil {
		return err
	}
	next := make(map[string]*nodeState, len(paths))
	for i, p := range paths {
		if !results[i].gone {
			next[p] = z.decode(p, results[i], z.nodes[p])
		}
	}
	z.nodes, z.exists, z.dirty = next, exists, true
	z.fullSyncs.Add(1)
	z.lastSync.Store(time.Now().UnixNano())
	return nil
}

// update re-lists the children when they changed (setting the watch again)
// and reads, with a data watch, the new children and those whose data
// changed. A member found deleted makes it re-list the children too before
// anything is applied: the deletion's event may come before the others of
// the same transaction (several members deleted in one multi, as an
// operator or a deploy tool does), and ZooKeeper answers the listing only
// after the whole transaction, so the deletions are applied — and seen by
// the removal guard — together, not one member at a time.
func (z *LoadBalanceZkConf) update(children bool, data map[string]struct{}) error {
	if !children && len(data) == 0 {
		return nil
	}
	var (
		removed []string
		toRead  []string
		listed  map[string]bool
		exists  = z.exists
	)
	if children {
		names, ok, err := z.listChildren(true)
		if err != nil {
			return err
		}
		exists = ok
		listed = make(map[string]bool, len(names))
		for _, p := range z.childPaths(names) {
			listed[p] = true
			if z.nodes[p] == nil {
				toRead = append(toRead, p)
			}
		}
		for p := range z.nodes {
			if !listed[p] {
				removed = append(removed, p)
			}
		}
	}
	for p := range data {
		known := z.nodes[p] != nil && (listed == nil || listed[p])
		if known {
			toRead = append(toRead, p)
		}
	}
	results, err := z.fetch(toRead, true)
	if err != nil {
		return err
	}
	if !children && slices.ContainsFunc(results, func(r readResult) bool { return r.gone }) {
		return z.update(true, data)
	}
	for _, p := range removed {
		delete(z.nodes, p)
	}
	for i, p := range toRead {
		if results[i].gone {
			delete(z.nodes, p)
		} else {
			z.nodes[p] = z.decode(p, results[i], z.nodes[p])
		}
	}
	z.exists, z.dirty = exists, true
	z.lastSync.Store(time.Now().UnixNano())
	return nil
}

// verify reads the service without setting watches and compares it with
// what the conf knows. A difference means a watch was lost, unless events
// arrived meanwhile (after a reconnect, the server fires the re-set watches
// of nodes changed while disconnected): those are applied and, when retry
// is set, the service verified once more. A difference that remains has
// every watch set again by a full read.
func (z *LoadBalanceZkConf) verify(retry bool) error {
	names, exists, err := z.listChildren(false)
	if err != nil {
		return err
	}
	paths := z.childPaths(names)
	drift := exists != z.exists || len(paths) != len(z.nodes)
	for _, p := range paths {
		if drift {
			break
		}
		drift = z.nodes[p] == nil
	}
	if !drift {
		results, err := z.fetch(paths, false)
		if err != nil {
			return err
		}
		for i, p := range paths {
			r, known := results[i], z.nodes[p]
			if r.err != nil {
				drift = known.mzxid != unreadable
			} else {
				drift = r.gone || r.mzxid != known.mzxid
			}
			if drift {
				break
			}
		}
	}
	if !drift {
		z.lastSync.Store(time.Now().UnixNano())
		return nil
	}
	if retry {
		if children, data := z.takePending(); children || len(data) > 0 {
			if err := z.update(children, data); err != nil {
				z.requeue(children, data)
				return err
			}
			return z.verify(false)
		}
	}
	z.repairs.Add(1)
	z.log.Info("verification found a change that no watch reported; reading the service again and setting every watch")
	return z.fullSync()
}

// listChildren lists the service's children, with a children watch when
// watch is set. A missing path is not an error: it returns exists false,
// having set an existence watch (ChildrenW on a missing path sets none) when
// watch is set.
func (z *LoadBalanceZkConf) listChildren(watch bool) (children []string, exists bool, err error) {
	conn := z.client.conn
	for range 3 {
		if watch {
			children, _, _, err = conn.ChildrenW(z.path)
		} else {
			children, _, err = conn.Children(z.path)
		}
		switch {
		case err == nil:
			return children, true, nil
		case !errors.Is(err, zk.ErrNoNode):
			return nil, false, fmt.Errorf("discovery: list %s: %w", z.path, err)
		case !watch:
			return nil, false, nil
		}
		found, _, _, err := conn.ExistsW(z.path)
		if err != nil {
			return nil, false, fmt.Errorf("discovery: watch for %s to exist: %w", z.path, err)
		}
		if !found {
			return nil, false, nil
		}
		// Created between the two calls: list again.
	}
	return nil, false, fmt.Errorf("discovery: list %s: the path keeps appearing and vanishing", z.path)
}

func (z *LoadBalanceZkConf) childPaths(names []string) []string {
	prefix := z.path + "/"
	if z.path == "/" {
		prefix = "/"
	}
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = prefix + n
	}
	return paths
}

// unreadable is the zxid recorded for a node that could not be read.
const unreadable = -1

// readResult is the outcome of reading one child.
type readResult struct {
	data  []byte
	mzxid int64
	mtime int64 // Unix milliseconds, ZooKeeper's clock
	gone  bool  // the node no longer exists
	err   error // the node cannot be read (e.g. its ACL forbids it)
}

// fetch reads paths concurrently (the requests are pipelined on the one
// connection), with data watches when watch is set. It fails as a whole on
// the first error that is not about the node itself.
func (z *LoadBalanceZkConf) fetch(paths []string, watch bool) ([]readResult, error) {
	results := make([]readResult, len(paths))
	if len(paths) == 0 {
		return results, nil
	}
	conn := z.client.conn
	var (
		next     atomic.Int64
		stop     atomic.Bool
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	worker := func() {
		for !stop.Load() {
			i := int(next.Add(1) - 1)
			if i >= len(paths) {
				return
			}
			var (
				data []byte
				st   *zk.Stat
				err  error
			)
			if watch {
				data, st, _, err = conn.GetW(paths[i])
			} else {
				data, st, err = conn.Get(paths[i])
			}
			switch {
			case err == nil:
				results[i] = readResult{data: data, mzxid: st.Mzxid, mtime: st.Mtime}
			case errors.Is(err, zk.ErrNoNode):
				results[i].gone = true
			case errors.Is(err, zk.ErrNoAuth):
				results[i].err = err
			default:
				errOnce.Do(func() { firstErr = fmt.Errorf("discovery: read %s: %w", paths[i], err) })
				stop.Store(true)
			}
		}
	}
	for range min(z.opts.Concurrency, len(paths)) {
		wg.Go(worker)
	}
	wg.Wait()
	return results, firstErr
}

// decode turns a read into the node's state. Data already decoded (same
// zxid) is not decoded again, so a malformed node is warned about once per
// version of its data.
func (z *LoadBalanceZkConf) decode(p string, r readResult, old *nodeState) *nodeState {
	if r.err != nil {
		st := &nodeState{mzxid: unreadable, err: fmt.Errorf("discovery: node %s: %w: unreadable: %w", p, ErrMalformed, r.err)}
		if old == nil || old.err == nil || old.err.Error() != st.err.Error() {
			z.malformedAll.Add(1)
			z.log.WithField("znode", p).Warn(st.err.Error() + "; skipping it")
		}
		return st
	}
	if old != nil && old.mzxid == r.mzxid {
		return old
	}
	if z.isSynced.Load() { // the first read measures nothing
		z.changed = append(z.changed, r.mtime)
	}
	ep, err := z.codec.Decode(p, r.data)
	st := &nodeState{mzxid: r.mzxid, ep: ep, err: err}
	switch {
	case err == nil:
		st.filtered = !z.opts.Filter.Match(ep.Meta)
	case errors.Is(err, ErrNotServing):
		z.log.WithField("znode", p).Info(err.Error() + "; not serving it")
	default:
		z.malformedAll.Add(1)
		z.log.WithField("znode", p).Warn(err.Error() + "; skipping it")
	}
	return st
}

// publish hands the current list to the observers, when it changed. The
// reads that changed the nodes set dirty; step calls publish.
func (z *LoadBalanceZkConf) publish() {
	paths := make([]string, 0, len(z.nodes))
	for p := range z.nodes {
		paths = append(paths, p)
	}
	slices.Sort(paths) // for a stable choice among duplicate addresses
	eps := make([]balancer.Endpoint, 0, len(paths))
	var malformed, notServing, filtered int64
	for _, p := range paths {
		n := z.nodes[p]
		switch {
		case n.err == nil && n.filtered:
			filtered++
		case n.err == nil:
			eps = append(eps, n.ep)
		case errors.Is(n.err, ErrNotServing):
			notServing++
		default:
			malformed++
		}
	}
	z.malformedNow.Store(malformed)
	z.notServing.Store(notServing)
	z.filteredNow.Store(filtered)
	prev := z.Endpoints()
	changed := z.Publish(eps)
	var lag time.Duration
	if changed {
		now := time.Now()
		for _, mt := range z.changed {
			d := max(now.Sub(time.UnixMilli(mt)), 0) // clock skew: 0
			z.propagation.observe(d)
			lag = max(lag, d)
		}
	}
	measured := changed && len(z.changed) > 0
	z.changed = z.changed[:0]
	if changed {
		z.publishes.Add(1)
		z.logChange(prev, z.Endpoints(), lag, measured)
		if z.opts.OnPublish != nil {
			z.opts.OnPublish(z.Endpoints())
		}
	}
}

// logChange logs one line for a publication: the endpoints that joined and
// left (the first few of each, see logging.List), how many others changed
// (weight or metadata), and the longest propagation lag measured. It is the
// one log line of a membership change; the health checker does not log
// joins and leaves again.
func (z *LoadBalanceZkConf) logChange(prev, next []balancer.Endpoint, lag time.Duration, measured bool) {
	before := make(map[string]balancer.Endpoint, len(prev))
	for _, e := range prev {
		before[e.Addr] = e
	}
	var joined, left []string
	updated := 0
	for _, e := range next {
		old, ok := before[e.Addr]
		switch {
		case !ok:
			joined = append(joined, e.Addr)
		case !balancer.Equal([]balancer.Endpoint{old}, []balancer.Endpoint{e}):
			updated++
		}
		delete(before, e.Addr)
	}
	for addr := range before {
		left = append(left, addr)
	}
	slices.Sort(joined)
	slices.Sort(left)
	f := logrus.Fields{"endpoints": len(next)}
	if len(joined) > 0 {
		f["joined"] = logging.List(joined)
	}
	if len(left) > 0 {
		f["left"] = logging.List(left)
	}
	if updated > 0 {
		f["updated"] = updated
	}
	if measured {
		f["propagation"] = logging.Duration(lag)
	}
	z.log.WithFields(f).Infof("service membership changed: %d joined, %d left, %d updated", len(joined), len(left), updated)
}
