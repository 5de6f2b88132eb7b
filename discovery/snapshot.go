package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/zkgate/zkgate/balancer"
)

// A membership snapshot is the last membership of every service read from
// ZooKeeper, kept in a file, so that a gateway started while ZooKeeper
// cannot give a first membership routes to the last known members at once
// (LoadBalanceZkConf.Seed) instead of answering 503 until ZooKeeper is back.
// A SnapshotWriter keeps the file; ReadSnapshot reads and checks it.

// The snapshot file's identity: a file whose format or version differ is
// not read.
const (
	SnapshotFormat  = "zkgate-membership-snapshot"
	SnapshotVersion = 1
)

// maxSnapshotBytes bounds what ReadSnapshot reads: far above any real
// membership (100,000 members of 200 bytes), far below a memory problem.
const maxSnapshotBytes = 64 << 20

// DefaultSnapshotInterval is the least time between two writes of a
// snapshot file.
const DefaultSnapshotInterval = time.Second

// ErrSnapshot is wrapped by every error ReadSnapshot and Snapshot.Service
// return about the file's content (not about reading it).
var ErrSnapshot = errors.New("unusable membership snapshot")

// Snapshot is the content of a membership snapshot file (JSON).
type Snapshot struct {
	// Format is SnapshotFormat.
	Format string `json:"format"`
	// Version is SnapshotVersion.
	Version int `json:"version"`
	// Written is when the file was written.
	Written time.Time `json:"written"`
	// Services are the memberships by service name.
	Services map[string]SnapshotService `json:"services"`
}

// SnapshotService is one service's membership in a snapshot.
type SnapshotService struct {
	// Path is the znode path the members were read from.
	Path string `json:"path"`
	// ReadAt is when this membership was read from ZooKeeper.
	ReadAt time.Time `json:"read_at"`
	// Members are the published members, sorted by address.
	Members []SnapshotMember `json:"members"`
}

// SnapshotMember is one published member.
type SnapshotMember struct {
	Addr   string            `json:"addr"`
	Weight int               `json:"weight"`
	ZNode  string            `json:"znode"`
	Meta   map[string]string `json:"meta,omitempty"`
}

// ReadSnapshot reads and checks the snapshot at path. A missing file is an
// error wrapping fs.ErrNotExist; a file that is not a snapshot of this
// format and version, or is truncated or corrupt, is an error wrapping
// ErrSnapshot that names the file and the problem.
func ReadSnapshot(path string) (*Snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("discovery: membership snapshot: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSnapshotBytes+1))
	if err != nil {
		return nil, fmt.Errorf("discovery: membership snapshot %s: %w", path, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("discovery: membership snapshot %s: %w: %s", path, ErrSnapshot, fmt.Sprintf(format, args...))
	}
	if len(data) > maxSnapshotBytes {
		return nil, bad("larger than %d bytes", maxSnapshotBytes)
	}
	// The identity first, so that a foreign file is named as such rather
	// than by the first field it does not share.
	var head struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, bad("not valid JSON (truncated or corrupt?): %v", err)
	}
	if head.Format != SnapshotFormat {
		return nil, bad("format %q, want %q", head.Format, SnapshotFormat)
	}
	if head.Version != SnapshotVersion {
		return nil, bad("version %d, this gateway reads version %d", head.Version, SnapshotVersion)
	}
	var s Snapshot
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, bad("%v", err)
	}
	if dec.More() {
		return nil, bad("data after the snapshot")
	}
	if s.Written.IsZero() {
		return nil, bad("no time written")
	}
	for _, name := range slices.Sorted(maps.Keys(s.Services)) {
		if err := s.Services[name].check(name); err != nil {
			return nil, bad("%v", err)
		}
	}
	return &s, nil
}

func (ss SnapshotService) check(name string) error {
	if name == "" {
		return errors.New("a service without a name")
	}
	if err := validatePath("path", ss.Path); err != nil {
		return fmt.Errorf("service %q: %w", name, err)
	}
	if ss.ReadAt.IsZero() {
		return fmt.Errorf("service %q: no read_at", name)
	}
	for i, m := range ss.Members {
		host, port, err := net.SplitHostPort(m.Addr)
		if err == nil && host == "" {
			err = errors.New("no host")
		}
		if err == nil {
			if p, perr := strconv.Atoi(port); perr != nil || p < 1 || p > 65535 {
				err = fmt.Errorf("invalid port %q", port)
			}
		}
		switch {
		case err != nil:
			return fmt.Errorf("service %q: members[%d].addr %q: %v", name, i, m.Addr, err)
		case m.Weight < 0:
			return fmt.Errorf("service %q: members[%d].weight %d is negative", name, i, m.Weight)
		case m.ZNode == "":
			return fmt.Errorf("service %q: members[%d].znode is empty", name, i)
		}
	}
	return nil
}

// Service returns the members the snapshot holds for the service name
// watched at path, and when they were read. found is false when the
// snapshot has no entry for name. An entry written for another path (the
// service's configuration changed) is an error wrapping ErrSnapshot: its
// members belong to another service.
func (s *Snapshot) Service(name, path string) (eps []balancer.Endpoint, readAt time.Time, found bool, err error) {
	ss, ok := s.Services[name]
	if !ok {
		return nil, time.Time{}, false, nil
	}
	if ss.Path != path {
		return nil, time.Time{}, true, fmt.Errorf("discovery: membership snapshot: service %q: %w: written for %s, the service is now watched at %s", name, ErrSnapshot, ss.Path, path)
	}
	eps = make([]balancer.Endpoint, len(ss.Members))
	for i, m := range ss.Members {
		eps[i] = balancer.Endpoint{ID: m.ZNode, Addr: m.Addr, Weight: m.Weight, Meta: m.Meta}
	}
	return eps, ss.ReadAt, true, nil
}

// SnapshotWriterOptions configure a SnapshotWriter.
type SnapshotWriterOptions struct {
	// Interval is the least time between two writes; changes in between
	// are coalesced into one. Default DefaultSnapshotInterval.
	Interval time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// SnapshotWriterStats are a writer's counters.
type SnapshotWriterStats struct {
	Writes      uint64    // files written
	Errors      uint64    // writes that failed
	LastWrite   time.Time // last successful write (zero: none)
	LastError   string    // last failure, "" after a success
	LastErrorAt time.Time
}

// SnapshotWriter keeps a snapshot file of the memberships recorded with
// Record: after a change it writes the file at most once per interval,
// atomically (a temporary file in the same directory, synced, renamed over
// the old one, and the directory synced), so that a crash leaves either
// the old file or the new one. The last change is always written: by the
// writer's goroutine, or by Close.
type SnapshotWriter struct {
	path     string
	interval time.Duration
	now      func() time.Time
	log      logrus.FieldLogger

	mu       sync.Mutex
	services map[string]SnapshotService
	dirty    bool

	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	wmu    sync.Mutex // serializes writes of the file

	writes, errs atomic.Uint64
	lastWrite    atomic.Int64
	smu          sync.Mutex // guards lastErr and lastErrAt
	lastErr      string
	lastErrAt    time.Time
	failing      bool // owned by write (under wmu)
}

// NewSnapshotWriter starts a writer of the snapshot file at path. Nothing
// is written before the first Record or Retain that changes something.
func NewSnapshotWriter(path string, opts SnapshotWriterOptions, log logrus.FieldLogger) *SnapshotWriter {
	if opts.Interval <= 0 {
		opts.Interval = DefaultSnapshotInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &SnapshotWriter{
		path:     path,
		interval: opts.Interval,
		now:      opts.Now,
		log:      log.WithFields(logrus.Fields{"component": "discovery", "snapshot_file": path}),
		services: map[string]SnapshotService{},
		wake:     make(chan struct{}, 1),
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	go w.run(ctx)
	return w
}

// Path returns the file's path.
func (w *SnapshotWriter) Path() string { return w.path }

// Keep takes over entries of a snapshot read at start, for services not
// recorded yet, so that rewriting the file does not lose the last known
// members of a service ZooKeeper has not given yet. It marks nothing dirty.
func (w *SnapshotWriter) Keep(name string, ss SnapshotService) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.services[name]; !ok {
		w.services[name] = ss
	}
}

// Record sets the membership of the service name, read from ZooKeeper at
// path, and schedules a write. It is quick; it never waits for the file.
func (w *SnapshotWriter) Record(name, path string, eps []balancer.Endpoint) {
	members := make([]SnapshotMember, len(eps))
	for i, e := range eps {
		members[i] = SnapshotMember{Addr: e.Addr, Weight: e.Weight, ZNode: e.ID, Meta: e.Meta}
	}
	w.mu.Lock()
	w.services[name] = SnapshotService{Path: path, ReadAt: w.now().UTC(), Members: members}
	w.dirty = true
	w.mu.Unlock()
	w.signal()
}

// Retain drops the entries of services not in keep (name to path) or
// watched at another path now, and schedules a write if one was dropped.
func (w *SnapshotWriter) Retain(keep map[string]string) {
	w.mu.Lock()
	changed := false
	for name, ss := range w.services {
		if p, ok := keep[name]; !ok || p != ss.Path {
			delete(w.services, name)
			changed = true
		}
	}
	w.dirty = w.dirty || changed
	w.mu.Unlock()
	if changed {
		w.signal()
	}
}

func (w *SnapshotWriter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Close stops the writer and writes the file once more if a change is not
// written yet.
func (w *SnapshotWriter) Close() {
	w.once.Do(func() {
		w.cancel()
		<-w.done
		w.flush()
	})
}

// Stats returns the writer's counters.
func (w *SnapshotWriter) Stats() SnapshotWriterStats {
	st := SnapshotWriterStats{Writes: w.writes.Load(), Errors: w.errs.Load()}
	if ns := w.lastWrite.Load(); ns != 0 {
		st.LastWrite = time.Unix(0, ns)
	}
	w.smu.Lock()
	st.LastError, st.LastErrorAt = w.lastErr, w.lastErrAt
	w.smu.Unlock()
	return st
}

// run writes after each change, at most once per interval. A failed write
// is retried after the interval.
func (w *SnapshotWriter) run(ctx context.Context) {
	defer close(w.done)
	defer func() {
		if r := recover(); r != nil {
			w.log.Errorf("membership snapshot writer panicked: %v; the snapshot is written at shutdown only", r)
		}
	}()
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		if wait := last.Add(w.interval).Sub(w.now()); wait > 0 {
			t.Reset(wait)
			select {
			case <-ctx.Done():
				return // Close writes what is pending
			case <-t.C:
			}
		}
		last = w.now()
		if !w.flush() {
			w.signal() // retry after the interval
		}
	}
}

// flush writes the file if a change is pending. It reports false when the
// write failed (the change stays pending).
func (w *SnapshotWriter) flush() bool {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.mu.Lock()
	if !w.dirty {
		w.mu.Unlock()
		return true
	}
	snap := Snapshot{Format: SnapshotFormat, Version: SnapshotVersion, Written: w.now().UTC(), Services: make(map[string]SnapshotService, len(w.services))}
	for name, ss := range w.services {
		snap.Services[name] = ss // members are never modified once recorded
	}
	w.dirty = false
	w.mu.Unlock()

	err := writeFileAtomic(w.path, &snap)
	if err != nil {
		w.mu.Lock()
		w.dirty = true
		w.mu.Unlock()
		w.errs.Add(1)
		w.smu.Lock()
		w.lastErr, w.lastErrAt = err.Error(), w.now()
		w.smu.Unlock()
		if !w.failing {
			w.log.WithError(err).Warn("writing the membership snapshot failed; retrying")
		}
		w.failing = true
		return false
	}
	w.writes.Add(1)
	w.lastWrite.Store(w.now().UnixNano())
	w.smu.Lock()
	w.lastErr = ""
	w.smu.Unlock()
	if w.failing {
		w.log.Info("writing the membership snapshot works again")
	}
	w.failing = false
	w.log.WithField("services", len(snap.Services)).Debug("membership snapshot written")
	return true
}

// writeFileAtomic writes snap to path through a temporary file in the same
// directory: written, synced, renamed over path, and the directory synced
// so that the rename survives a crash.
func writeFileAtomic(path string, snap *Snapshot) (err error) {
	data, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		return fmt.Errorf("discovery: membership snapshot %s: %w", path, err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("discovery: membership snapshot %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("discovery: membership snapshot %s: write %s: %w", path, tmp.Name(), err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("discovery: membership snapshot %s: sync %s: %w", path, tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("discovery: membership snapshot %s: close %s: %w", path, tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("discovery: membership snapshot %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("discovery: membership snapshot %s: open directory: %w", path, err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("discovery: membership snapshot %s: sync directory %s: %w", path, dir, err)
	}
	return nil
}
