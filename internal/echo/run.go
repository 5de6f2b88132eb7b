package echo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zkgate/zkgate/discovery"
)

// Options configure one echo backend.
type Options struct {
	// Listen is the HTTP listen address (":9000").
	Listen string
	// Advertise is the "host:port" registered in ZooKeeper. Empty: the local
	// address of a connection to the first ZooKeeper server, with the listen
	// port — the address other hosts reach us on (inside compose, each
	// replica's own IP).
	Advertise string
	// ID is the instance id (default: the advertised address).
	ID string
	// ZooKeeper lists the servers; empty disables registration.
	ZooKeeper []string
	// SessionTimeout is the ZooKeeper session timeout.
	SessionTimeout time.Duration
	// Path is the service path, e.g. /services/echo.
	Path string
	// Weight is the registered weight (≥ 1).
	Weight int
	// Format is the node format: plain or curator.
	Format string
	// Drain is how long to keep serving after deregistering on SIGTERM, so
	// that gateways see the node go before the listener closes.
	Drain time.Duration
	// GRPC makes the listener serve gRPC (HTTP/2 without TLS, h2c) instead
	// of the HTTP API: GRPCService and the health service.
	GRPC bool
}

// Run serves until ctx ends, registering in ZooKeeper once listening and
// deregistering before it stops serving.
func Run(ctx context.Context, o Options, log logrus.FieldLogger) error {
	if o.Weight < 1 {
		return fmt.Errorf("echo: weight %d: must be at least 1", o.Weight)
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("echo: listen %s: %w", o.Listen, err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	if o.Advertise == "" {
		o.Advertise, err = advertiseAddr(o.ZooKeeper, port)
		if err != nil {
			_ = ln.Close()
			return err
		}
	}
	if o.ID == "" {
		o.ID = o.Advertise
	}
	log = log.WithFields(logrus.Fields{"instance": o.ID, "addr": o.Advertise})
	srv := newServer(o)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.serve(ln) }()
	log.WithField("grpc", o.GRPC).Info("echo backend listening")

	var reg *discovery.Registrar
	if len(o.ZooKeeper) > 0 {
		client, err := discovery.Dial(ctx, discovery.ClientConfig{Servers: o.ZooKeeper, SessionTimeout: o.SessionTimeout}, log)
		if err != nil {
			srv.close()
			return fmt.Errorf("echo: zookeeper %v: %w", o.ZooKeeper, err)
		}
		defer client.Close()
		reg, err = discovery.NewRegistrar(client, discovery.RegistrarConfig{
			Path: o.Path, Addr: o.Advertise, Weight: o.Weight, Format: discovery.Format(o.Format), ID: o.ID,
		}, log)
		if err == nil {
			err = reg.Register(ctx)
		}
		if err != nil {
			srv.close()
			return fmt.Errorf("echo: register under %s: %w", o.Path, err)
		}
		log.WithField("path", o.Path).Info("registered in zookeeper")
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("echo: serve: %w", err)
	case <-ctx.Done():
	}
	// Deregister first, keep serving while gateways notice, then drain.
	if reg != nil {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := reg.Deregister(dctx); err != nil {
			log.WithError(err).Warn("deregister failed; the node goes with the session")
		} else {
			log.Info("deregistered")
		}
		cancel()
		time.Sleep(o.Drain) // a fixed grace period for gateways to see the deletion, not synchronisation
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("echo: shutdown: %w", err)
	}
	log.Info("echo backend stopped")
	return nil
}

// server is what the listener serves: the HTTP API or gRPC.
type server struct {
	serve    func(net.Listener) error
	shutdown func(context.Context) error // graceful, bounded by the context
	close    func()                      // at once
}

func newServer(o Options) server {
	if o.GRPC {
		gs, hs := NewGRPCServer(o.ID)
		return server{
			serve: gs.Serve,
			shutdown: func(ctx context.Context) error {
				hs.Shutdown() // health answers NOT_SERVING from now on
				done := make(chan struct{})
				go func() {
					gs.GracefulStop() // GOAWAY, then wait for the calls in flight
					close(done)
				}()
				select {
				case <-done:
					return nil
				case <-ctx.Done():
					gs.Stop()
					<-done
					return ctx.Err()
				}
			},
			close: gs.Stop,
		}
	}
	h := &Handler{Instance: o.ID, Addr: o.Advertise, Weight: o.Weight}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return server{serve: srv.Serve, shutdown: srv.Shutdown, close: func() { _ = srv.Close() }}
}

// advertiseAddr finds the local IP that routes to the first ZooKeeper server.
func advertiseAddr(servers []string, port string) (string, error) {
	if len(servers) == 0 {
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	conn, err := net.DialTimeout("tcp", servers[0], 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("echo: find advertise address via %s: %w (set --advertise)", servers[0], err)
	}
	defer conn.Close()
	host, _, _ := net.SplitHostPort(conn.LocalAddr().String())
	return net.JoinHostPort(host, port), nil
}
