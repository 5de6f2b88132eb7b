package app

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/sirupsen/logrus"

	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/discovery"
	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/proxy"
)

// plan is a configuration's services and routes, built and checked, with
// nothing started. Gateway.apply starts and installs a plan; zkgate
// validate only builds one. Both therefore give one verdict on a file:
// what build refuses, serve would have refused at start or reload.
type plan struct {
	services map[string]*service // every configured service, by name
	fresh    []*service          // the services build made, which start starts
	routes   []*route
	router   *proxy.Router
}

// build builds cfg's services and routes. A service of running (which may
// be nil) whose configuration is unchanged is taken over as it is; the
// others are built new and not started. A route's rate limiter in
// limiters (by route name; may be nil) is kept when its rate_limit is
// unchanged, so that a reload does not refill every bucket. Every problem found is returned.
func build(cfg *config.Config, running map[string]*service, log logrus.FieldLogger, limiters map[string]*routeLimiter) (*plan, error) {
	p := &plan{services: make(map[string]*service, len(cfg.Services))}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(cfg.Services)) {
		sc := cfg.Services[name]
		if old, ok := running[name]; ok && old.sameConfig(sc) {
			p.services[name] = old
			continue
		}
		s, err := newService(name, sc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.fresh = append(p.fresh, s)
		p.services[name] = s
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	p.routes = make([]*route, 0, len(cfg.Routes))
	prs := make([]*proxy.Route, 0, len(cfg.Routes))
	for i, rc := range cfg.Routes {
		svc := p.services[rc.Service]
		if svc == nil {
			errs = append(errs, fmt.Errorf("routes[%d].service: unknown service %q", i, rc.Service))
			continue
		}
		b, err := balancer.New(rc.Balancer, balancer.WithSlowStart(svc.cfg.SlowStart))
		if err != nil {
			errs = append(errs, fmt.Errorf("routes[%d].balancer: %w", i, err))
			continue
		}
		pol, files, lim, err := routePolicies(i, rc, log, limiters[rc.Name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.routes = append(p.routes, &route{cfg: rc, balancer: b, svc: svc, files: files, limiter: lim})
		prs = append(prs, &proxy.Route{
			Name:          rc.Name,
			Priority:      rc.Priority,
			Hosts:         rc.Match.Hosts,
			PathPrefix:    rc.Match.PathPrefix,
			Path:          rc.Match.Path,
			PathRegex:     rc.Match.PathRegex,
			Query:         rc.Match.Query,
			Methods:       rc.Match.Methods,
			Headers:       rc.Match.Headers,
			StripPrefix:   rc.StripPrefix,
			HashOn:        rc.HashOn,
			SetHeaders:    rc.RequestHeaders.Set,
			RemoveHeaders: rc.RequestHeaders.Remove,
			Timeout:       rc.Timeout,
			Service:       rc.Service,
			Balancer:      newCountingBalancer(b, svc.stats),
			Upstream:      svc.upstream,
			Policies:      pol,
		})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rt, err := proxy.NewRouter(prs)
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	p.router = rt
	return p, nil
}

// start starts the services build made, recording their memberships in
// snap (nil without a snapshot file). If one fails to start, those started
// before it are stopped again.
func (p *plan) start(zk *discovery.Client, snap *membershipSnapshot, log logrus.FieldLogger) error {
	for i, s := range p.fresh {
		if err := s.start(zk, snap, log); err != nil {
			for _, started := range p.fresh[:i] {
				started.close()
			}
			return err
		}
	}
	return nil
}
