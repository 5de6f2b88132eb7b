package discovery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/sirupsen/logrus"
	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/internal/logging"
)

// Defaults of ZkConfOptions.
const (
	DefaultCoalesce    = 2 * time.Millisecond
	DefaultConcurrency = 32
)

// Retry backoff after a failed read.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// ZkConfOptions configure a LoadBalanceZkConf.
type ZkConfOptions struct {
	// Format is the node format; "" means FormatAuto.
	Format Format
	// EndpointName selects a ServerSet member's additional endpoint (see
	// Codec.EndpointName).
	EndpointName string
	// SSL serves a Curator instance's sslPort (see Codec.SSL).
	SSL bool
	// Coalesce is how long the conf waits after the first event of a burst
	// before reading ZooKeeper, so that a burst of changes is published as
	// few lists. Default 2ms; negative means no wait.
	Coalesce time.Duration
	// Concurrency bounds the reads in flight when many nodes are read at
	// once (they are pipelined on the one connection). Default 32; more
	// does not help, the server serves one session's requests in order.
	Concurrency int
	// OnPublish, when set, is called with every list read from ZooKeeper
	// and published (not with a list given to Seed), from the conf's
	// goroutine: it must be quick. A SnapshotWriter's Record fits.
	OnPublish func(eps []balancer.Endpoint)
	// Filter keeps only the members whose metadata matches (see Filter);
	// the zero Filter keeps every member.
	Filter Filter
}

// ConfStats are a conf's counters and state, for metrics and status pages.
type ConfStats struct {
	Path      string
	Endpoints int       // endpoints published
	Synced    bool      // a first full read has completed
	Stale     bool      // see LoadBalanceZkConf.Stale
	LastSync  time.Time // last completed read of ZooKeeper
	Exists    bool      // the service path existed at the last read
	// SeededAt is, while the published list is a snapshot's given to
	// Seed, when that list was read from ZooKeeper; zero otherwise.
	SeededAt time.Time

	WatchEvents    uint64 // watch events received
	Malformed      int    // nodes currently skipped as malformed
	NotServing     int    // nodes currently skipped as not serving
	Filtered       int    // members currently left out by the filter
	MalformedTotal uint64 // malformed node data seen (one per znode version)
	Publishes      uint64 // lists published to observers
	FullSyncs      uint64 // full reads that set every watch again
	Repairs        uint64 // verifications that found a missed change
	ReadErrors     uint64 // failed reads (each retried with backoff)

	// Propagation is the lag from znode changes to their publication.
	Propagation Propagation
}

// LoadBalanceZkConf is the membership of one service, read from the
// children of one znode (each child one instance) and kept current through
// ZooKeeper watches on the children list and on each child's data. It is a
// balancer.LoadBalanceConf: observers receive the full list on every change,
// and only then.
//
// While the client has no session the last known list is kept and Stale
// reports true. A missing service path is waited for, and reads as an empty
// list; so does a path deleted later (Curator removes empty parents).
type LoadBalanceZkConf struct {
	balancer.Subject

	client *Client
	path   string
	codec  Codec
	opts   ZkConfOptions
	log    logrus.FieldLogger

	// Pending work, set by the client's callbacks.
	signal       chan struct{}
	pmu          sync.Mutex
	pendChildren bool
	pendData     map[string]struct{}

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once

	// Owned by the run goroutine.
	nodes   map[string]*nodeState
	exists  bool    // the path existed at the last read (children watched)
	synced  session // the session the watches were last set or verified in
	failing bool    // the last step failed
	dirty   bool    // nodes changed since the last publication
	// changed holds the mtimes (Unix milliseconds, ZooKeeper's clock) of
	// the node versions read since the last publication, for the
	// propagation lag (see Propagation).
	changed []int64

	// pubMu orders Seed against the first publication of a read, so
	// that a seeded list never replaces a list read from ZooKeeper.
	pubMu sync.Mutex

	// Read by any goroutine.
	seededAt     atomic.Int64 // unix nanoseconds; 0: not seeded
	syncedOnce   chan struct{}
	isSynced     atomic.Bool
	syncedGen    atomic.Uint64
	lastSync     atomic.Int64 // unix nanoseconds
	existsNow    atomic.Bool
	malformedNow atomic.Int64
	notServing   atomic.Int64
	filteredNow  atomic.Int64
	watchEvents  atomic.Uint64
	malformedAll atomic.Uint64
	publishes    atomic.Uint64
	fullSyncs    atomic.Uint64
	repairs      atomic.Uint64
	readErrors   atomic.Uint64
	propagation  lagHistogram
}

// nodeState is what the conf knows of one child.
type nodeState struct {
	mzxid int64 // zxid of the data read; equal zxids mean equal data
	ep    balancer.Endpoint
	err   error // decode error: the node is skipped
	// filtered: the member decoded but its metadata does not match the
	// filter; it is not published.
	filtered bool
}

// NewLoadBalanceZkConf starts watching the service at path (e.g.
// /services/echo). It returns at once; Synced and WaitSynced tell when the
// first list is known. Close stops it.
func NewLoadBalanceZkConf(c *Client, path string, opts ZkConfOptions, log logrus.FieldLogger) (*LoadBalanceZkConf, error) {
	if err := validatePath("service path", path); err != nil {
		return nil, err
	}
	f, err := ParseFormat(string(opts.Format))
	if err != nil {
		return nil, fmt.Errorf("discovery: service %s: %w", path, err)
	}
	if opts.Coalesce == 0 {
		opts.Coalesce = DefaultCoalesce
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	ctx, cancel := context.WithCancel(context.Background())
	z := &LoadBalanceZkConf{
		client:     c,
		path:       path,
		codec:      Codec{Format: f, EndpointName: opts.EndpointName, SSL: opts.SSL},
		opts:       opts,
		log:        log.WithFields(logrus.Fields{"component": "discovery", "zk_path": path}),
		signal:     make(chan struct{}, 1),
		pendData:   make(map[string]struct{}),
		cancel:     cancel,
		done:       make(chan struct{}),
		nodes:      make(map[string]*nodeState),
		syncedOnce: make(chan struct{}),
	}
	c.subscribe(path, z)
	go z.run(ctx)
	return z, nil
}

// Close stops watching and waits for the conf's goroutine. The last list
// stays readable and observers stay attached.
func (z *LoadBalanceZkConf) Close() {
	z.closeOnce.Do(func() {
		z.client.unsubscribe(z.path, z)
		z.cancel()
		<-z.done
	})
}

// Path returns the watched service path.
func (z *LoadBalanceZkConf) Path() string { return z.path }

// Synced reports whether a first full read of the service has completed.
func (z *LoadBalanceZkConf) Synced() bool { return z.isSynced.Load() }

// WaitSynced waits until Synced or ctx ends.
func (z *LoadBalanceZkConf) WaitSynced(ctx context.Context) error {
	select {
	case <-z.syncedOnce:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("discovery: service %s: waiting for the first read: %w", z.path, ctx.Err())
	}
}

// Stale reports whether the published list may be out of date: no first
// read yet, no ZooKeeper session, or a session not yet verified since it was
// (re-)established.
func (z *LoadBalanceZkConf) Stale() bool {
	if !z.isSynced.Load() {
		return true
	}
	s := z.client.session()
	return !s.ok || z.syncedGen.Load() != s.gen
}

// LastSync returns when the conf last completed a read of ZooKeeper (zero
// before the first).
func (z *LoadBalanceZkConf) LastSync() time.Time {
	ns := z.lastSync.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Seed publishes eps, the service's members as a membership snapshot holds
// them, read from ZooKeeper at readAt, when no read of ZooKeeper has
// completed yet; it reports whether it did. The conf stays Stale and
// Seeded until its first read, which replaces the seeded list whatever it
// holds (an empty list too). Seed is meant for a gateway that starts while
// ZooKeeper cannot give a first membership: it routes to the last known
// members instead of to none.
func (z *LoadBalanceZkConf) Seed(eps []balancer.Endpoint, readAt time.Time) bool {
	z.pubMu.Lock()
	defer z.pubMu.Unlock()
	if z.isSynced.Load() {
		return false
	}
	if readAt.IsZero() {
		readAt = time.Unix(0, 1) // zero means "not seeded"
	}
	z.seededAt.Store(readAt.UnixNano())
	z.Publish(eps)
	z.log.WithFields(logrus.Fields{"endpoints": len(eps), "read_at": readAt.UTC().Format(time.RFC3339)}).
		Warn("no membership from ZooKeeper yet: serving the members of the snapshot, marked stale, until the first read")
	return true
}

// Seeded returns, while the published list is the one given to Seed (no
// read of ZooKeeper has completed since), when that list was read from
// ZooKeeper; ok is false otherwise.
func (z *LoadBalanceZkConf) Seeded() (readAt time.Time, ok bool) {
	ns := z.seededAt.Load()
	if ns == 0 || z.isSynced.Load() {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// Stats returns the conf's counters and state.
func (z *LoadBalanceZkConf) Stats() ConfStats {
	seededAt, _ := z.Seeded()
	return ConfStats{
		SeededAt:       seededAt,
		Path:           z.path,
		Endpoints:      len(z.Endpoints()),
		Synced:         z.Synced(),
		Stale:          z.Stale(),
		LastSync:       z.LastSync(),
		Exists:         z.existsNow.Load(),
		WatchEvents:    z.watchEvents.Load(),
		Malformed:      int(z.malformedNow.Load()),
		NotServing:     int(z.notServing.Load()),
		Filtered:       int(z.filteredNow.Load()),
		MalformedTotal: z.malformedAll.Load(),
		Publishes:      z.publishes.Load(),
		FullSyncs:      z.fullSyncs.Load(),
		Repairs:        z.repairs.Load(),
		ReadErrors:     z.readErrors.Load(),
		Propagation:    z.propagation.snapshot(),
	}
}

// nodeEvent implements subscriber.
func (z *LoadBalanceZkConf) nodeEvent(ev zk.Event, child bool) {
	z.watchEvents.Add(1)
	z.pmu.Lock()
	switch {
	case !child:
		// The service node: created, deleted or children changed.
		if ev.Type == zk.EventNodeDataChanged {
			z.pmu.Unlock()
			return
		}
		z.pendChildren = true
	case ev.Type == zk.EventNodeDataChanged || ev.Type == zk.EventNodeDeleted:
		z.pendData[ev.Path] = struct{}{}
	default:
		z.pmu.Unlock()
		return
	}
	z.pmu.Unlock()
	z.wake()
}

// sessionEvent implements subscriber.
func (z *LoadBalanceZkConf) sessionEvent() { z.wake() }

func (z *LoadBalanceZkConf) wake() {
	select {
	case z.signal <- struct{}{}:
	default:
	}
}

// takePending returns and clears the pending work.
func (z *LoadBalanceZkConf) takePending() (children bool, data map[string]struct{}) {
	z.pmu.Lock()
	defer z.pmu.Unlock()
	children = z.pendChildren
	z.pendChildren = false
	if len(z.pendData) == 0 {
		return children, nil // never hand out the map the callbacks write to
	}
	data = z.pendData
	z.pendData = make(map[string]struct{})
	return children, data
}

// requeue puts back work that a failed step could not do.
func (z *LoadBalanceZkConf) requeue(children bool, data map[string]struct{}) {
	z.pmu.Lock()
	defer z.pmu.Unlock()
	z.pendChildren = z.pendChildren || children
	for p := range data {
		z.pendData[p] = struct{}{}
	}
}

// run is the conf's goroutine: it does the pending work, then waits for
// more, for the periodic verification, or for a retry after a failure.
func (z *LoadBalanceZkConf) run(ctx context.Context) {
	defer close(z.done)
	var resync <-chan time.Time
	if iv := z.client.ResyncInterval(); iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		resync = t.C
	}
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	backoff := time.Duration(0)
	verify := false
	for {
		err := z.step(verify)
		switch {
		case errors.Is(err, errNoSession):
			// Neither a failure nor a recovery: nothing can be read
			// until a session, whose event wakes the conf.
			retry.Stop()
		case err != nil:
			z.readErrors.Add(1)
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			if !z.failing {
				z.log.WithError(err).Warnf("reading ZooKeeper failed; keeping the last list (%d endpoints), retrying", len(z.Endpoints()))
			} else {
				z.log.WithError(err).Debugf("reading ZooKeeper failed again; retrying in %s", logging.Duration(backoff))
			}
			z.failing = true
			retry.Reset(backoff)
		default:
			if z.failing {
				z.log.Info("reading ZooKeeper works again")
			}
			z.failing, backoff = false, 0
			retry.Stop()
		}
		verify = false
		select {
		case <-ctx.Done():
			return
		case <-z.signal:
			if z.opts.Coalesce > 0 {
				t := time.NewTimer(z.opts.Coalesce)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
		case <-resync:
			verify = true
		case <-retry.C:
		}
	}
}
