package benchkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zkgate/zkgate/discovery"
)

// Instance is a backend that serves its ID at IDPath and joins and leaves
// a service on request.
type Instance interface {
	// ID is what the instance answers at IDPath.
	ID() string
	// Register adds the instance to the service and returns once the
	// registry has acknowledged it.
	Register(ctx context.Context) error
	// Deregister removes it from the service; the instance keeps serving.
	Deregister(ctx context.Context) error
	// Close stops serving.
	Close() error
}

// PropagationConfig configures MeasurePropagation.
type PropagationConfig struct {
	// URL is polled for the ID of the instance that served it: the
	// gateway's route to the service, with IDPath. Required.
	URL string
	// Events is the number of register/deregister cycles. Default 100.
	Events int
	// Quiet ends a deregistration event: once no answer has come from the
	// departed instance for this long, it is taken to be out. Default 150ms.
	Quiet time.Duration
	// Timeout bounds each phase of an event. Default 10s.
	Timeout time.Duration
	// Spawn starts the i-th instance (serving, not registered). Required.
	Spawn func(i int) (Instance, error)
	// Progress, when set, is called after each event.
	Progress func(i int, join, leave time.Duration)
}

// Propagation is what MeasurePropagation measured, one value per event.
type Propagation struct {
	// Join is the time from the start of a registration to the arrival of
	// the first answer the gateway routed to the new instance.
	Join []time.Duration
	// Leave is the time from the start of a deregistration to the arrival
	// of the last answer the gateway routed to the departed instance (0
	// when none came after the deregistration started).
	Leave []time.Duration
	// JoinWrite and LeaveWrite are the parts of Join and Leave spent in
	// Register and Deregister: until the registry acknowledged the change.
	JoinWrite, LeaveWrite []time.Duration
}

// event is one register/deregister cycle's measurements.
type event struct{ join, leave, joinWrite, leaveWrite time.Duration }

// MeasurePropagation registers and deregisters instances one at a time
// while polling the gateway in a tight loop over one keep-alive
// connection, and measures how long each change takes to show in the
// gateway's routing. Both figures are exact to about a poll's round trip
// (two with round robin over two members): the first sighting arrives
// after the change, the last one may arrive a poll before it.
func MeasurePropagation(ctx context.Context, cfg PropagationConfig) (Propagation, error) {
	if cfg.URL == "" || cfg.Spawn == nil {
		return Propagation{}, errors.New("benchkit: propagation: URL and Spawn are required")
	}
	if cfg.Events <= 0 {
		cfg.Events = 100
	}
	if cfg.Quiet <= 0 {
		cfg.Quiet = 150 * time.Millisecond
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	buf := make([]byte, 256)
	poll := func() (string, time.Time, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.URL, nil)
		if err != nil {
			return "", time.Time{}, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("benchkit: propagation: poll %s: %w", cfg.URL, err)
		}
		n, _ := io.ReadFull(resp.Body, buf)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", time.Now(), nil // e.g. 503 while the service has no member
		}
		return string(buf[:n]), time.Now(), nil
	}

	var out Propagation
	for i := range cfg.Events {
		ev, err := propagationEvent(ctx, cfg, i, poll)
		if err != nil {
			return out, err
		}
		out.Join = append(out.Join, ev.join)
		out.Leave = append(out.Leave, ev.leave)
		out.JoinWrite = append(out.JoinWrite, ev.joinWrite)
		out.LeaveWrite = append(out.LeaveWrite, ev.leaveWrite)
		if cfg.Progress != nil {
			cfg.Progress(i, ev.join, ev.leave)
		}
	}
	return out, nil
}

func propagationEvent(ctx context.Context, cfg PropagationConfig, i int, poll func() (string, time.Time, error)) (ev event, err error) {
	inst, err := cfg.Spawn(i)
	if err != nil {
		return ev, fmt.Errorf("benchkit: propagation event %d: %w", i, err)
	}
	defer inst.Close()
	id := inst.ID()

	pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	start := time.Now()
	if err := inst.Register(pctx); err != nil {
		return ev, fmt.Errorf("benchkit: propagation event %d: register %s: %w", i, id, err)
	}
	ev.joinWrite = time.Since(start)
	for {
		got, at, err := poll()
		if err != nil {
			return ev, err
		}
		if got == id {
			ev.join = at.Sub(start)
			break
		}
		if at.Sub(start) > cfg.Timeout {
			return ev, fmt.Errorf("benchkit: propagation event %d: %s registered but not routed to within %v", i, id, cfg.Timeout)
		}
	}

	dctx, cancel2 := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel2()
	start = time.Now()
	if err := inst.Deregister(dctx); err != nil {
		return ev, fmt.Errorf("benchkit: propagation event %d: deregister %s: %w", i, id, err)
	}
	ev.leaveWrite = time.Since(start)
	last := start
	for {
		got, at, err := poll()
		if err != nil {
			return ev, err
		}
		if got == id {
			last = at
		}
		if at.Sub(last) >= cfg.Quiet {
			break
		}
		if at.Sub(start) > cfg.Timeout {
			return ev, fmt.Errorf("benchkit: propagation event %d: %s deregistered but still routed to after %v", i, id, cfg.Timeout)
		}
	}
	ev.leave = last.Sub(start)
	return ev, nil
}

// ZkInstances spawns instances that serve Backend on a fresh loopback port
// each and register under path through client (plain format: node
// host:port).
type ZkInstances struct {
	Client *discovery.Client
	Path   string
	// Prefix starts each instance's ID ("prop-" gives prop-0, prop-1...).
	Prefix string
	Log    logrus.FieldLogger
}

// Spawn implements PropagationConfig.Spawn.
func (z ZkInstances) Spawn(i int) (Instance, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("benchkit: instance %d: listen: %w", i, err)
	}
	id := fmt.Sprintf("%s%d", z.Prefix, i)
	reg, err := discovery.NewRegistrar(z.Client, discovery.RegistrarConfig{Path: z.Path, Addr: ln.Addr().String()}, z.Log)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("benchkit: instance %s: %w", id, err)
	}
	srv := &http.Server{Handler: &Backend{ID: id}, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &zkInstance{id: id, srv: srv, reg: reg}, nil
}

type zkInstance struct {
	id  string
	srv *http.Server
	reg *discovery.Registrar
}

func (z *zkInstance) ID() string                           { return z.id }
func (z *zkInstance) Register(ctx context.Context) error   { return z.reg.Register(ctx) }
func (z *zkInstance) Deregister(ctx context.Context) error { return z.reg.Deregister(ctx) }

// Close deregisters (when still registered) and stops serving.
func (z *zkInstance) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	if z.reg.Registered() {
		errs = append(errs, z.reg.Deregister(ctx))
	}
	errs = append(errs, z.srv.Close())
	return errors.Join(errs...)
}
