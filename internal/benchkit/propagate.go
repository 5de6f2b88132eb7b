package benchkit

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/zkgate/zkgate/discovery"
)

// propagation starts a gateway for /services/prop, registers a permanent
// base member, and measures MeasurePropagation's events through it.
func (h *harness) propagation(ctx context.Context) (Propagation, error) {
	t := &target{TargetInfo: TargetInfo{Name: "zkgate-prop"}}
	if err := h.startZkgate(ctx, t, offZkgatePro, "/services/prop", true, true); err != nil {
		return Propagation{}, err
	}
	client, err := discovery.Dial(ctx, discovery.ClientConfig{Servers: []string{h.addr(offZooKeeper)}}, h.o.Log)
	if err != nil {
		return Propagation{}, fmt.Errorf("benchkit: propagation: %w", err)
	}
	defer client.Close()

	base, err := ZkInstances{Client: client, Path: "/services/prop", Prefix: "base-", Log: h.o.Log}.Spawn(0)
	if err != nil {
		return Propagation{}, err
	}
	defer base.Close()
	if err := base.Register(ctx); err != nil {
		return Propagation{}, fmt.Errorf("benchkit: propagation: register the base member: %w", err)
	}
	if err := WaitFor(ctx, 20*time.Second, "the propagation gateway to route to its base member",
		h.answers(t.proc, t.url+RoutePrefix+IDPath, []byte(base.ID()))); err != nil {
		return Propagation{}, err
	}
	h.say("discovery propagation: %d events through %s (log: %s)", h.o.PropEvents, t.url+RoutePrefix, filepath.Dir(t.accessLog))
	return MeasurePropagation(ctx, PropagationConfig{
		URL:    t.url + RoutePrefix + IDPath, // the strip_prefix route, as a user's requests
		Events: h.o.PropEvents,
		Quiet:  h.o.PropQuiet,
		Spawn:  ZkInstances{Client: client, Path: "/services/prop", Prefix: "prop-", Log: h.o.Log}.Spawn,
		Progress: func(i int, join, leave time.Duration) {
			if (i+1)%25 == 0 || i+1 == h.o.PropEvents {
				fmt.Fprintf(h.o.Progress, "    event %d/%d: join %v, leave %v\n", i+1, h.o.PropEvents,
					join.Round(time.Microsecond), leave.Round(time.Microsecond))
			}
		},
	})
}
