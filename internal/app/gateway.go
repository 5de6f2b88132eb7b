// Package app is zkgate's composition root: it turns a configuration into
// running services (ZooKeeper membership, health checking, connection pools),
// routes and listeners, reloads routes and services live, serves the admin
// API, and shuts everything down in order.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/discovery"
	"github.com/zkgate/zkgate/internal/admin"
	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/internal/fleet"
	"github.com/zkgate/zkgate/internal/logging"
	"github.com/zkgate/zkgate/internal/metrics"
	"github.com/zkgate/zkgate/internal/tlscert"
	"github.com/zkgate/zkgate/internal/version"
	"github.com/zkgate/zkgate/proxy"
)

// Gateway is a running zkgate.
type Gateway struct {
	path    string
	log     *logrus.Logger
	signals <-chan os.Signal                 // after ctx ends, one more ends the process at once
	zk      atomic.Pointer[discovery.Client] // set at start when ZooKeeper is configured
	// snapshot is the membership snapshot (zookeeper.snapshot_file); set
	// before the first apply, nil without one.
	snapshot atomic.Pointer[membershipSnapshot]
	metrics  *metrics.Metrics
	traffic  *traffic // the Handler's RequestObserver, in front of metrics
	access   *proxy.AccessLog
	handler  *proxy.Handler
	// tls are the certificate stores of the TLS entry points, by name;
	// set at start.
	tls map[string]*tlscert.Store

	draining atomic.Bool
	serving  atomic.Bool // routes are installed and listeners serve
	// entryPoints are the proxy servers by entry point name, for the
	// connection metrics and the admin API; set once when the listeners
	// serve.
	entryPoints atomic.Pointer[map[string]entryPoint]
	started     time.Time
	cfg         atomic.Pointer[config.Config]
	fleet       atomic.Pointer[fleetMode] // set at start in fleet mode
	fleetSeed   *fleet.Snapshot           // the fleet snapshot applied at start, if any

	mu       sync.Mutex // serializes reloads; guards services, routes and closed
	services map[string]*service
	routes   []*route
	closed   bool // closeAll ran: apply refuses
}

// entryPoint is one serving listener.
type entryPoint struct {
	srv  *proxy.Server
	addr string
	cfg  config.EntryPoint
	tls  *tlscert.Store // nil for plain HTTP
}

// connections returns the entry point's client connections by state, as
// the metric and the admin API name them.
func (ep entryPoint) connections() map[string]int {
	cs := ep.srv.ConnStats()
	return map[string]int{"serving": cs.Serving, "waiting": cs.Waiting, "parked": cs.Parked, "tunnel": cs.Tunnels, "nethttp": cs.NetHTTP}
}

// errShuttingDown is a reload's error once the gateway has begun to stop.
var errShuttingDown = errors.New("the gateway is shutting down")

// route is one configured route with the balancer it owns.
type route struct {
	cfg      config.Route
	balancer balancer.Balancer
	svc      *service
	files    []fileWatcher      // its policies' files, watched while it serves
	limiter  *routeLimiter      // its rate limiter, kept across reloads when unchanged
	stop     context.CancelFunc // ends the watches; nil when none run
}

// Serve runs the gateway with the configuration at path until ctx ends, then
// shuts down gracefully. Errors in the configuration are *ConfigError.
func Serve(ctx context.Context, path string, stderr io.Writer) error {
	return serve(ctx, path, stderr, nil)
}

// exit ends the process; a variable for tests.
var exit = os.Exit

// serve is Serve; a signal received on signals once ctx has ended (during
// the graceful shutdown) ends the process at once with status 1, as Caddy
// and Traefik do on a second SIGINT or SIGTERM.
func serve(ctx context.Context, path string, stderr io.Writer, signals <-chan os.Signal) error {
	path, _ = config.ResolvePath(path)
	cfg, err := config.Load(path)
	if err != nil {
		return &ConfigError{Err: err}
	}
	log, err := logging.New(cfg.Log.Level, cfg.Log.Format, stderr)
	if err != nil {
		return &ConfigError{Err: err}
	}
	g := &Gateway{path: path, log: log, signals: signals, services: map[string]*service{}, started: time.Now()}
	g.cfg.Store(cfg)
	log.WithFields(logrus.Fields{"version": version.Version, "config": path}).Info("zkgate starting")
	for _, w := range config.Warnings(cfg, os.Environ()) {
		log.Warn(w)
	}
	return g.run(ctx, cfg)
}

func (g *Gateway) run(ctx context.Context, cfg *config.Config) error {
	g.metrics = metrics.New(metrics.Options{State: metrics.StateSourceFunc(g.metricsState), Version: version.Version})
	g.traffic = newTraffic(g.metrics)
	if cfg.Log.AccessLog.Enabled {
		g.access = proxy.NewAccessLog(os.Stdout, proxy.AccessLogOptions{Logger: g.log})
	}
	g.handler = proxy.NewHandler(nil, proxy.Options{
		TrustedProxies: cfg.TrustedProxyPrefixes(),
		AccessLog:      g.access,
		Metrics:        g.traffic,
		Logger:         g.log,
	})

	// The admin listener comes first, so that /livez answers and /readyz
	// says why the gateway is not ready while ZooKeeper is sought.
	// The certificates are loaded first: a TLS entry point without them
	// is a configuration error, found before anything listens.
	var err error
	if g.tls, err = buildTLSStores(cfg, g.log); err != nil {
		g.closeAll() // the access log's writer
		return &ConfigError{Err: err}
	}
	adm, err := g.startAdmin(cfg)
	if err != nil {
		g.closeAll()
		return err
	}
	listeners, err := bindEntryPoints(cfg)
	if err != nil {
		g.closeAll()
		g.shutdownAdmin(adm)
		return err
	}
	// The session is sought in the background: requests are answered at
	// once, with 503 for a service whose membership is not known yet.
	if err := g.connectZooKeeper(cfg); err != nil {
		closeListeners(listeners)
		g.closeAll()
		g.shutdownAdmin(adm)
		return err
	}
	// Read before the services start, so that those ZooKeeper cannot
	// give a membership to at once route to the snapshot's.
	if snap := openSnapshot(cfg, g.log); snap != nil {
		g.snapshot.Store(snap)
	}
	if err := g.applyStart(cfg); err != nil {
		closeListeners(listeners)
		g.closeAll()
		g.shutdownAdmin(adm)
		return &ConfigError{Err: err}
	}
	g.metrics.ConfigLoaded()
	if err := g.startFleet(cfg); err != nil {
		closeListeners(listeners)
		g.closeAll()
		g.shutdownAdmin(adm)
		return &ConfigError{Err: err}
	}
	g.serving.Store(true)

	// Upgraded connections (WebSockets) are not tracked by Shutdown; they
	// end when their request context does, which is this one.
	baseCtx, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	servers, serveErr := g.serveEntryPoints(cfg, listeners, baseCtx)

	watchCtx, stopWatch := context.WithCancel(ctx)
	g.watchTLSStores(watchCtx)
	watching, err := watchReloads(watchCtx, g.path, g.log, func(reason string) { _ = g.reload(reason) })
	if err != nil {
		g.log.WithError(err).Warn("config file is not watched; reload with SIGHUP or POST /api/reload")
	}

	var runErr error
	select {
	case <-ctx.Done():
		stopped := make(chan struct{})
		defer close(stopped)
		go g.exitOnSignal(stopped)
	case runErr = <-serveErr:
	}
	// No reload starts from the file or SIGHUP from here on; one in
	// progress finishes before anything is stopped.
	stopWatch()
	<-watching
	g.waitTLSStores()

	g.drain(cfg, servers, runErr == nil)
	cancelBase()
	g.stopFleet()
	g.closeAll()
	g.shutdownAdmin(adm)
	g.log.Info("zkgate stopped")
	return runErr
}

// exitOnSignal ends the process at once when a signal arrives before
// stopped is closed.
func (g *Gateway) exitOnSignal(stopped <-chan struct{}) {
	if g.signals == nil {
		return
	}
	select {
	case sig := <-g.signals:
		g.log.WithField("signal", sig.String()).Warn("second signal during shutdown: exiting at once, requests in flight are cut")
		exit(exitFailure)
	case <-stopped:
	}
}

// startAdmin starts the admin listener, if one is configured.
func (g *Gateway) startAdmin(cfg *config.Config) (*admin.Server, error) {
	if cfg.Admin.Address == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.Admin.Address)
	if err != nil {
		return nil, fmt.Errorf("admin.address: listen on %s: %w", cfg.Admin.Address, err)
	}
	adm := admin.New(admin.Options{Address: cfg.Admin.Address, Token: cfg.Admin.Token, Source: g, Gatherer: g.metrics.Registry(), Log: g.log})
	go func() {
		if err := adm.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.WithError(err).Error("admin listener failed")
		}
	}()
	g.log.WithField("address", ln.Addr().String()).Info("admin listening")
	return adm, nil
}

// bindEntryPoints binds every proxy listener, before anything slow, so that
// a busy port fails the start at once; on an error none stays bound.
func bindEntryPoints(cfg *config.Config) (map[string]net.Listener, error) {
	listeners := map[string]net.Listener{}
	for _, name := range slices.Sorted(maps.Keys(cfg.EntryPoints)) {
		ep := cfg.EntryPoints[name]
		ln, err := net.Listen("tcp", ep.Address)
		if err != nil {
			closeListeners(listeners)
			return nil, fmt.Errorf("entry_points.%s.address: listen on %s: %w", name, ep.Address, err)
		}
		listeners[name] = ln
	}
	return listeners, nil
}

func closeListeners(listeners map[string]net.Listener) {
	for _, l := range listeners {
		_ = l.Close()
	}
}

// connectZooKeeper starts the ZooKeeper client, if servers are configured.
// It does not wait for a session: the client seeks one in the background
// and logs, less and less often, while it has none.
func (g *Gateway) connectZooKeeper(cfg *config.Config) error {
	if len(cfg.ZooKeeper.Servers) == 0 {
		return nil
	}
	g.log.WithField("servers", cfg.ZooKeeper.Servers).Info("connecting to zookeeper; serving meanwhile")
	zk, err := discovery.Connect(discovery.ClientConfig{
		Servers:        cfg.ZooKeeper.Servers,
		SessionTimeout: cfg.ZooKeeper.SessionTimeout,
		Auth:           discovery.Auth{Scheme: cfg.ZooKeeper.Auth.Scheme, Credentials: cfg.ZooKeeper.Auth.Credentials},
		ResyncInterval: cfg.ZooKeeper.ResyncInterval,
	}, g.log)
	if err != nil {
		return err
	}
	g.zk.Store(zk)
	return nil
}

// serveEntryPoints serves each bound listener with a proxy.Server. A
// listener that fails sends its error on the returned channel.
func (g *Gateway) serveEntryPoints(cfg *config.Config, listeners map[string]net.Listener, baseCtx context.Context) ([]*proxy.Server, <-chan error) {
	var servers []*proxy.Server
	byName := make(map[string]entryPoint, len(listeners))
	serveErr := make(chan error, len(listeners))
	for name, ln := range listeners {
		ep := cfg.EntryPoints[name]
		var tlsCfg *tls.Config
		if st := g.tls[name]; st != nil {
			tlsCfg = st.TLSConfig()
		}
		var redirect int
		if ep.RedirectTo != "" {
			redirect = redirectPort(listeners, ep.RedirectTo)
		}
		loops, _ := config.LoopCount(ep.Loops) // validated
		srv := proxy.NewServer(g.handler, proxy.ServerConfig{
			ReadHeaderTimeout: ep.ReadHeaderTimeout,
			ReadTimeout:       ep.ReadTimeout,
			WriteTimeout:      ep.WriteTimeout,
			IdleTimeout:       ep.IdleTimeout,
			MaxHeaderBytes:    ep.MaxHeaderBytes,
			MaxHeaderCount:    ep.MaxHeaderCount,
			MaxTargetBytes:    ep.MaxTargetBytes,
			MaxBodyBytes:      ep.MaxBodyBytes,
			BodyTimeout:       ep.BodyTimeout,
			MinBodyRate:       ep.MinBodyRate,
			BaseContext:       baseCtx,
			DisableFastPath:   !ep.FastPath,
			Loops:             loops,
			TLS:               tlsCfg,
			HTTP2:             http2Mode(ep.HTTP2),
			HTTP2Server:       http2Server(ep.HTTP2Server),
			RedirectPort:      redirect,
		})
		servers = append(servers, srv)
		byName[name] = entryPoint{srv: srv, addr: ln.Addr().String(), cfg: ep, tls: g.tls[name]}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("entry_points.%s: %w", name, err)
			}
		}()
		g.log.WithFields(logrus.Fields{"entry_point": name, "address": ln.Addr().String(), "protocol": protocolOf(ep)}).Info("proxy listening")
	}
	g.entryPoints.Store(&byName)
	return servers, serveErr
}

// drain is the graceful part of a shutdown: readiness goes 503 so that load
// balancers in front stop sending (for the configured drain delay, when
// wait), then new connections stop and requests in flight finish within
// the grace timeout; the rest are closed.
func (g *Gateway) drain(cfg *config.Config, servers []*proxy.Server, wait bool) {
	g.draining.Store(true)
	delay := cfg.Shutdown.DrainDelay
	g.log.WithField("drain_delay", logging.Duration(delay)).Info("shutting down: draining")
	if wait && delay > 0 {
		time.Sleep(delay) // a configured delay for upstream load balancers, not synchronisation
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.GraceTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Go(func() {
			if err := srv.Shutdown(sctx); err != nil {
				g.log.WithError(err).Warn("grace timeout: closing remaining connections")
				_ = srv.Close()
			}
		})
	}
	wg.Wait()
}

func (g *Gateway) shutdownAdmin(adm *admin.Server) {
	if adm == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = adm.Shutdown(ctx)
}

// closeAll stops every service, the access log and the ZooKeeper client.
// From then on apply refuses, so that a reload arriving during shutdown (the
// admin API's) cannot start services nothing would stop.
func (g *Gateway) closeAll() {
	g.mu.Lock()
	g.closed = true
	for _, r := range g.routes {
		r.svc.health.Detach(r.balancer)
		r.stopFiles()
	}
	g.routes = nil
	for name, s := range g.services {
		s.close()
		delete(g.services, name)
	}
	g.mu.Unlock()
	if snap := g.snapshot.Load(); snap != nil {
		snap.close() // after the services: their last change is written
	}
	if g.access != nil {
		_ = g.access.Close()
	}
	if zk := g.zk.Load(); zk != nil {
		zk.Close()
	}
}

// apply makes cfg's routes and services the running ones: services whose
// configuration is unchanged are kept, new ones started, removed ones stopped
// once no route uses them. Routes are rebuilt and swapped in atomically.
func (g *Gateway) apply(cfg *config.Config) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errShuttingDown
	}

	limiters := map[string]*routeLimiter{}
	for _, r := range g.routes {
		if r.limiter != nil {
			limiters[r.cfg.Name] = r.limiter
		}
	}
	p, err := build(cfg, g.services, g.log, limiters)
	if err != nil {
		return err
	}
	snap := g.snapshot.Load()
	if err := p.start(g.zk.Load(), snap, g.log); err != nil {
		return err
	}
	routes, next, rt := p.routes, p.services, p.router

	// Fill the new balancers before they serve a request.
	for _, r := range routes {
		r.svc.health.Attach(r.balancer)
	}
	g.metrics.SetRouter(rt)
	g.traffic.setRoutes(routes)
	g.handler.SetRouter(rt)
	for _, r := range routes {
		r.watchFiles(g.log)
	}

	for _, r := range g.routes {
		r.svc.health.Detach(r.balancer)
		r.stopFiles()
	}
	for name, s := range g.services {
		if next[name] != s {
			s.close()
		}
	}
	g.routes, g.services = routes, next
	if snap != nil {
		snap.applied(next, g.zk.Load())
	}
	return nil
}

// reload re-reads the configuration file and applies its routes and
// services. A file that does not load or validate leaves the running
// configuration in place.
func (g *Gateway) reload(reason string) error {
	log := g.log.WithField("reason", reason)
	// The certificate files too, whether or not their watch saw a change
	// (a store keeps its pairs when one does not load).
	g.reloadTLSStores()
	cfg, err := g.loadConfig()
	if err == nil {
		if serr := config.Reloadable(g.cfg.Load(), cfg); serr != nil {
			log.WithError(serr).Warn("config reload: static settings changed; they apply after a restart")
		}
		err = g.applyReload(cfg)
	}
	if errors.Is(err, errShuttingDown) {
		log.Warn("config reload refused: the gateway is shutting down")
		return err
	}
	g.metrics.ConfigReloaded(err)
	if err != nil {
		log.WithError(err).Error("config reload failed; keeping the running configuration")
		return err
	}
	g.cfg.Store(cfg)
	log.WithFields(logrus.Fields{"routes": len(cfg.Routes), "services": len(cfg.Services)}).Info("config reloaded")
	for _, w := range config.Warnings(cfg, nil) { // the environment was checked at start
		log.Warn(w)
	}
	return nil
}
