package app

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/discovery"
	"github.com/zkgate/zkgate/internal/admin"
	"github.com/zkgate/zkgate/internal/config"
)

// seedWait is how long a service started while the ZooKeeper session is up
// waits for its first read before it is seeded from the snapshot anyway
// (without a session it is seeded at once).
const seedWait = time.Second

// membershipSnapshot is the gateway's membership snapshot
// (zookeeper.snapshot_file): the file read at start, whose members seed the
// services started without a first read of ZooKeeper, and the writer that
// keeps the file current.
type membershipSnapshot struct {
	path   string
	writer *discovery.SnapshotWriter
	log    logrus.FieldLogger

	mu      sync.Mutex
	loaded  *discovery.Snapshot // nil: none usable; set to nil once the start's services are seeded
	written time.Time           // of the file read at start
	problem string              // why the file read at start is not used

	wg     sync.WaitGroup // seeders waiting for a first read
	stop   chan struct{}
	closed sync.Once
}

// openSnapshot reads the snapshot file configured in cfg, if any, and starts
// its writer. A missing, corrupt, truncated or foreign file is logged with
// its path and the problem, and ignored.
func openSnapshot(cfg *config.Config, log logrus.FieldLogger) *membershipSnapshot {
	path := cfg.ZooKeeper.SnapshotFile
	if path == "" || len(cfg.ZooKeeper.Servers) == 0 {
		return nil
	}
	log = log.WithFields(logrus.Fields{"component": "snapshot", "snapshot_file": path})
	m := &membershipSnapshot{path: path, log: log, stop: make(chan struct{})}
	snap, err := discovery.ReadSnapshot(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		m.problem = "no snapshot file yet"
		log.Info("no membership snapshot yet; one is written after the first membership is read")
	case err != nil:
		m.problem = err.Error()
		log.WithError(err).Warn("membership snapshot ignored: services wait for ZooKeeper")
	default:
		m.loaded, m.written = snap, snap.Written
		log.WithFields(logrus.Fields{"services": len(snap.Services), "written": snap.Written.Format(time.RFC3339)}).
			Info("membership snapshot read")
	}
	m.writer = discovery.NewSnapshotWriter(path, discovery.SnapshotWriterOptions{}, log)
	if snap != nil {
		// Until their first read, services keep their snapshot entries
		// in the file (the first apply drops those of other paths).
		for name, ss := range snap.Services {
			m.writer.Keep(name, ss)
		}
	}
	return m
}

// record returns the OnPublish hook of the service name watched at path;
// nil without a snapshot file.
func (m *membershipSnapshot) record(name, path string) func([]balancer.Endpoint) {
	if m == nil {
		return nil
	}
	return func(eps []balancer.Endpoint) { m.writer.Record(name, path, eps) }
}

// applied is called after every apply with the running services: the file
// keeps only their entries, and the services of the first apply are seeded
// from the snapshot read at start, at once when the ZooKeeper session is not
// there, else when their first read takes longer than seedWait.
func (m *membershipSnapshot) applied(services map[string]*service, zk *discovery.Client) {
	keep := make(map[string]string, len(services))
	for name, s := range services {
		if s.zkconf != nil {
			keep[name] = s.zkconf.Path()
		}
	}
	m.writer.Retain(keep)

	m.mu.Lock()
	snap := m.loaded
	m.loaded = nil // only the start is seeded: later services have a live view to wait for
	m.mu.Unlock()
	if snap == nil {
		return
	}
	now := zk == nil || !zk.HasSession()
	for _, name := range slices.Sorted(maps.Keys(services)) {
		s := services[name]
		if s.zkconf == nil {
			continue
		}
		log := m.log.WithField("service", name)
		eps, readAt, found, err := snap.Service(name, s.zkconf.Path())
		switch {
		case err != nil:
			log.WithError(err).Warn("membership snapshot entry ignored")
			continue
		case !found:
			continue
		}
		if now {
			s.zkconf.Seed(eps, readAt)
			continue
		}
		m.wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), seedWait)
			defer cancel()
			go func() {
				select {
				case <-m.stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			if s.zkconf.WaitSynced(ctx) != nil && !isClosed(m.stop) {
				s.zkconf.Seed(eps, readAt)
			}
		})
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// close stops the seeders and writes the file once more if a change is not
// written yet. The services must be closed (no more records).
func (m *membershipSnapshot) close() {
	m.closed.Do(func() {
		close(m.stop)
		m.wg.Wait()
		m.writer.Close()
	})
}

// info is the snapshot as /api/zookeeper shows it.
func (m *membershipSnapshot) info(services map[string]*service) *admin.SnapshotFileInfo {
	st := m.writer.Stats()
	fi := &admin.SnapshotFileInfo{
		Path:           m.path,
		Seeded:         []string{},
		Writes:         st.Writes,
		LastWrite:      st.LastWrite,
		WriteErrors:    st.Errors,
		LastWriteError: st.LastError,
	}
	m.mu.Lock()
	fi.Written, fi.Problem = m.written, m.problem
	m.mu.Unlock()
	fi.Loaded = fi.Problem == ""
	for _, name := range slices.Sorted(maps.Keys(services)) {
		if s := services[name]; s.zkconf != nil {
			if _, ok := s.zkconf.Seeded(); ok {
				fi.Seeded = append(fi.Seeded, name)
			}
		}
	}
	return fi
}
