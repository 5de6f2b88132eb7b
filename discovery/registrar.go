package discovery

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/sirupsen/logrus"
	"github.com/zkgate/zkgate/internal/logging"
)

// RegistrarConfig configures a Registrar.
type RegistrarConfig struct {
	// Path is the service path, e.g. /services/echo. It and its parents
	// are created as persistent nodes when missing. Required.
	Path string
	// Addr is the "host:port" clients reach the backend at. The host must
	// be reachable by the gateway (not empty, not 0.0.0.0). Required.
	Addr string
	// Weight is the backend's relative share, 1 to MaxWeight. Default 1.
	Weight int
	// Format is FormatPlain (default: node name host:port, data
	// "host:port,weight") or FormatCurator (node name ID, Curator JSON
	// with the weight in its payload).
	Format Format
	// Name is the Curator service name. Default: the last element of Path.
	Name string
	// ID is the Curator instance id (the node name). Default: a random
	// UUID.
	ID string
	// Meta are extra Curator payload entries.
	Meta map[string]string
	// ACL is the instance node's ACL. Default world:anyone with every
	// permission; see DigestACL. ZooKeeper checks the permission to delete
	// a node against its parent's ACL (ParentACL), not its own.
	ACL []zk.ACL
	// ParentACL is the ACL of the parents Register creates. Default
	// world:anyone with every permission, so that other registrars can
	// add their nodes.
	ParentACL []zk.ACL
}

// DigestACL gives every permission to the digest identity user:password
// and read permission to everyone (the gateway must read the node). Use
// with a Client whose Auth is {Scheme: "digest", Credentials:
// "user:password"}.
func DigestACL(user, password string) []zk.ACL {
	return append(zk.DigestACL(zk.PermAll, user, password), zk.WorldACL(zk.PermRead)...)
}

// Registrar keeps one ephemeral znode registered for a Go backend: it
// creates it on Register, creates it again after every new session (the
// server deletes ephemeral nodes when their session expires) and deletes it
// on Deregister.
//
// Between Register and Deregister it also keeps a watch on its node, as
// Curator's ServiceDiscovery does, and repairs what another client does to
// it while the session lives: a deleted node is created again and data
// changed by someone else is written back (the node describes this backend,
// so its configuration is the truth; change the weight there), each logged
// at warn level. A node that another session created in place of a deleted
// one is left to that session rather than fought over; the Registrar takes
// the node back only when that node goes, or after a new session of its own.
type Registrar struct {
	client *Client
	cfg    RegistrarConfig
	node   string // the instance's znode path
	data   []byte
	log    logrus.FieldLogger

	mu     sync.Mutex // serializes Register and Deregister
	cancel context.CancelFunc
	done   chan struct{}

	signal      chan struct{} // a session event
	changed     chan struct{} // a watch event on the node
	events      atomic.Uint64 // watch events on the node so far
	registered  atomic.Bool
	created     atomic.Bool // the node was created at least once
	recreations atomic.Uint64

	// Used only by the goroutine that calls ensure: Register's, then
	// keep's; Deregister resets them once keep has stopped.
	owned int64    // the session in which the node was last seen ours
	armed watchArm // the watch set on the node, if still pending
}

// watchArm identifies a watch set on the node: the session and watch
// re-arming it was set in, and the count of node events before it was set.
// A watch is still pending while all three are unchanged.
type watchArm struct {
	set           bool
	session       int64
	rearm, events uint64
}

// NewRegistrar validates cfg and prepares the instance node. Nothing is
// written before Register.
func NewRegistrar(c *Client, cfg RegistrarConfig, log logrus.FieldLogger) (*Registrar, error) {
	if err := validatePath("registrar path", cfg.Path); err != nil {
		return nil, err
	}
	host, portText, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("discovery: registrar addr %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("discovery: registrar addr %q: port must be 1-65535", cfg.Addr)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		return nil, fmt.Errorf("discovery: registrar addr %q: give the host the gateway can reach, not a wildcard", cfg.Addr)
	}
	if cfg.Weight == 0 {
		cfg.Weight = 1
	}
	if cfg.Weight < 1 || cfg.Weight > MaxWeight {
		return nil, fmt.Errorf("discovery: registrar weight %d: must be 1-%d", cfg.Weight, MaxWeight)
	}
	if cfg.ACL == nil {
		cfg.ACL = zk.WorldACL(zk.PermAll)
	}
	if cfg.ParentACL == nil {
		cfg.ParentACL = zk.WorldACL(zk.PermAll)
	}
	f, err := ParseFormat(string(cfg.Format))
	if err != nil {
		return nil, fmt.Errorf("discovery: registrar: %w", err)
	}
	r := &Registrar{client: c, cfg: cfg, signal: make(chan struct{}, 1), changed: make(chan struct{}, 1)}
	switch f {
	case FormatAuto, FormatPlain:
		addr, err := joinAddr(host, port)
		if err != nil {
			return nil, fmt.Errorf("discovery: registrar addr %q: %w", cfg.Addr, err)
		}
		r.node = cfg.Path + "/" + addr
		r.data = []byte(addr + "," + strconv.Itoa(cfg.Weight))
	case FormatCurator:
		if cfg.Name == "" {
			cfg.Name = cfg.Path[strings.LastIndexByte(cfg.Path, '/')+1:]
		}
		if cfg.ID == "" {
			cfg.ID = newUUID()
		}
		if strings.ContainsRune(cfg.ID, '/') {
			return nil, fmt.Errorf("discovery: registrar id %q: must not contain /", cfg.ID)
		}
		r.node = cfg.Path + "/" + cfg.ID
		if r.data, err = encodeCurator(cfg.Name, cfg.ID, host, port, cfg.Weight, cfg.Meta, time.Now()); err != nil {
			return nil, fmt.Errorf("discovery: registrar: encode Curator instance: %w", err)
		}
	default:
		return nil, fmt.Errorf("discovery: registrar format %q: want plain or curator", f)
	}
	r.cfg = cfg
	r.log = log.WithFields(logrus.Fields{"component": "registrar", "znode": r.node})
	return r, nil
}

// Node returns the instance's znode path.
func (r *Registrar) Node() string { return r.node }

// Registered reports whether the node is known to exist in the current,
// live session: false while the session is lost, until the node is checked
// or created again in the next one, while another session holds the node,
// and after Deregister.
func (r *Registrar) Registered() bool { return r.registered.Load() }

// Recreations counts the times the node was created again after the first.
func (r *Registrar) Recreations() uint64 { return r.recreations.Load() }

// Register creates the instance node, waiting for a session and retrying
// connection errors until ctx ends, and keeps it registered until
// Deregister. Registering a registered Registrar does nothing.
func (r *Registrar) Register(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		return nil
	}
	r.client.subscribe(r.node, r)
	backoff := minBackoff
	for {
		err := errNoSession
		if r.client.HasSession() {
			err = r.ensure()
		}
		if err == nil {
			break
		}
		if permanent(err) {
			r.client.unsubscribe(r.node, r)
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			r.client.unsubscribe(r.node, r)
			return fmt.Errorf("discovery: register %s: %w (last error: %w)", r.node, ctx.Err(), err)
		case <-r.signal:
		case <-t.C:
		}
		t.Stop()
		backoff = min(2*backoff, maxBackoff)
	}
	r.log.WithField("data", string(r.data)).Info("registered")
	kctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go r.keep(kctx, r.done)
	return nil
}

// Deregister deletes the instance node at once and stops re-creating it.
// Call it on graceful shutdown before the backend stops serving. It fails
// when there is no session (the node then vanishes with the session).
func (r *Registrar) Deregister(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		r.cancel()
		<-r.done
		r.cancel, r.done = nil, nil
	}
	r.owned, r.armed = 0, watchArm{}
	r.client.unsubscribe(r.node, r)
	r.registered.Store(false)
	done := make(chan error, 1)
	go func() { done <- r.deleteOwn() }()
	select {
	case err := <-done:
		if err == nil {
			r.log.Info("deregistered")
		}
		return err
	case <-ctx.Done():
		return fmt.Errorf("discovery: deregister %s: %w", r.node, ctx.Err())
	}
}

// deleteOwn deletes the node if this client's session owns it.
func (r *Registrar) deleteOwn() error {
	conn := r.client.conn
	_, st, err := conn.Get(r.node)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return nil
	case err != nil:
		return fmt.Errorf("discovery: deregister %s: %w", r.node, err)
	case st.EphemeralOwner != conn.SessionID():
		return nil // another session's node (a newer process at the same address)
	}
	if err := conn.Delete(r.node, st.Version); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("discovery: deregister %s: delete: %w", r.node, err)
	}
	return nil
}

// sessionEvent implements subscriber.
func (r *Registrar) sessionEvent() {
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// nodeEvent implements subscriber: the watch on the node fired.
func (r *Registrar) nodeEvent(ev zk.Event, child bool) {
	if child || ev.Type == zk.EventNodeChildrenChanged {
		return // an ephemeral node has no children
	}
	r.events.Add(1)
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// keep checks the node after each session (re-)establishment and each event
// of its watch, until ctx ends. Only keep acts on those, so a repair and a
// re-registration after a new session never run at the same time.
func (r *Registrar) keep(ctx context.Context, done chan struct{}) {
	defer close(done)
	var retry <-chan time.Time
	backoff := time.Duration(0)
	for {
		// A node event waits for a pending retry (it stays in the channel):
		// the failed attempt's own writes may have fired the watch.
		changed := r.changed
		if retry != nil {
			changed = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-r.signal:
		case <-changed:
		case <-retry:
		}
		retry = nil
		s := r.client.session()
		if !s.ok {
			r.registered.Store(false)
			continue // the next session event wakes us
		}
		if err := r.ensure(); err != nil {
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			r.log.WithError(err).Warnf("re-registering failed; retrying in %s", logging.Duration(backoff))
			retry = time.After(backoff)
			continue
		}
		backoff = 0
	}
}

// ensure makes sure the node exists, belongs to the current session and
// holds the Registrar's data, with a watch on it: it creates the parents and
// the node, replacing a node left by a previous session of this instance.
func (r *Registrar) ensure() error {
	conn := r.client.conn
	sid := conn.SessionID()
	// Armed before the node is read, so that any change after the read
	// fires it.
	if err := r.arm(); err != nil {
		return err
	}
	for range 3 {
		data, st, err := conn.Get(r.node)
		switch {
		case err == nil && st.EphemeralOwner == sid:
			if !bytes.Equal(data, r.data) {
				if _, err := conn.Set(r.node, r.data, st.Version); err != nil {
					return fmt.Errorf("discovery: register %s: update data: %w", r.node, err)
				}
				// Only this session writes the node, and only r.data.
				r.log.WithField("found", string(data)).Warn("registration data changed by another client; restored")
			}
			r.owned = sid
			r.registered.Store(true)
			return nil
		case err == nil && r.owned == sid:
			// Ours was deleted in this session and another session
			// created the node since: a live client, which would delete
			// ours in turn. Leave it; the watch tells when it goes.
			if r.registered.Swap(false) {
				r.log.WithField("owner", fmt.Sprintf("0x%x", st.EphemeralOwner)).Warn("registration replaced by another session; leaving it to that session")
			}
			return nil
		case err == nil:
			// Left by a previous session of this instance (a restart, or
			// an expired session the server has not yet cleaned up).
			r.log.WithField("owner", fmt.Sprintf("0x%x", st.EphemeralOwner)).Info("replacing the node of a previous session")
			if err := conn.Delete(r.node, st.Version); err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
				return fmt.Errorf("discovery: register %s: delete stale node: %w", r.node, err)
			}
			continue
		case !errors.Is(err, zk.ErrNoNode):
			return fmt.Errorf("discovery: register %s: %w", r.node, err)
		}
		_, err = conn.Create(r.node, r.data, zk.FlagEphemeral, r.cfg.ACL)
		if errors.Is(err, zk.ErrNoNode) {
			if err = r.mkdirs(); err == nil {
				_, err = conn.Create(r.node, r.data, zk.FlagEphemeral, r.cfg.ACL)
			}
		}
		switch {
		case err == nil:
			r.registered.Store(true)
			switch {
			case !r.created.Swap(true):
			case r.owned == sid:
				r.recreations.Add(1)
				r.log.Warn("registration deleted by another client; re-registered")
			default:
				r.recreations.Add(1)
				r.log.Info("node created again")
			}
			r.owned = sid
			return nil
		case errors.Is(err, zk.ErrNodeExists):
			continue // created meanwhile (by us, before a lost reply?): look again
		default:
			return fmt.Errorf("discovery: register %s: create: %w", r.node, err)
		}
	}
	return fmt.Errorf("discovery: register %s: the node keeps changing under us", r.node)
}

// arm sets a watch on the node (ExistsW: it fires on the node's creation,
// deletion and data change) unless one set in this session is pending. Its
// events reach nodeEvent through the client's routing by path.
func (r *Registrar) arm() error {
	s := r.client.session()
	want := watchArm{set: true, session: s.id, rearm: s.rearm, events: r.events.Load()}
	if r.armed == want {
		return nil
	}
	if _, _, _, err := r.client.conn.ExistsW(r.node); err != nil {
		return fmt.Errorf("discovery: watch %s: %w", r.node, err)
	}
	r.armed = want
	return nil
}

// mkdirs creates the service path and its parents as persistent nodes,
// tolerating concurrent creation.
func (r *Registrar) mkdirs() error {
	conn := r.client.conn
	p := ""
	for _, seg := range strings.Split(r.cfg.Path[1:], "/") {
		p += "/" + seg
		_, err := conn.Create(p, nil, 0, r.cfg.ParentACL)
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("discovery: create %s: %w", p, err)
		}
	}
	return nil
}

// permanent reports errors that retrying cannot fix.
func permanent(err error) bool {
	return errors.Is(err, zk.ErrNoAuth) || errors.Is(err, zk.ErrInvalidACL) ||
		errors.Is(err, zk.ErrNoChildrenForEphemerals) || errors.Is(err, zk.ErrBadArguments) ||
		errors.Is(err, zk.ErrInvalidPath) || errors.Is(err, zk.ErrAuthFailed)
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
