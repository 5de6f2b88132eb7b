package benchkit

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

// Bodies the backend serves.
const (
	// SmallBody answers every path but LargePath and IDPath.
	SmallBody = "hello, world\n"
	// LargePath answers LargeSize bytes.
	LargePath = "/16k"
	// LargeSize is the size of the large body: 16 KiB.
	LargeSize = 16 << 10
	// IDPath answers the backend's ID.
	IDPath = "/id"
)

var (
	smallBody    = []byte(SmallBody)
	largeBody    = makeLargeBody()
	smallLength  = []string{strconv.Itoa(len(smallBody))}
	largeLength  = []string{strconv.Itoa(LargeSize)}
	textPlain    = []string{"text/plain; charset=utf-8"}
	octetStreams = []string{"application/octet-stream"}
)

// makeLargeBody returns LargeSize printable bytes, lines of 64.
func makeLargeBody() []byte {
	b := make([]byte, LargeSize)
	for i := range b {
		if i%64 == 63 {
			b[i] = '\n'
		} else {
			b[i] = 'a' + byte(i%26)
		}
	}
	return b
}

// LargeBody returns a copy of the body served at LargePath.
func LargeBody() []byte { return append([]byte(nil), largeBody...) }

// Backend is the fast HTTP backend of the throughput benchmark: it answers
// a fixed body with precomputed headers and does nothing else, so that the
// proxy in front of it dominates the cost of a request. It also answers
// WebSocket handshakes, for the connection benchmark's upgraded
// connections.
type Backend struct {
	// ID is answered at IDPath.
	ID string
}

// ServeHTTP answers SmallBody, the 16 KiB body at LargePath, or the ID at
// IDPath. The header values are shared, read-only slices: no allocation
// beyond net/http's own. A WebSocket handshake, on any path, is answered
// with 101 and the connection then echoes what it receives (serveUpgrade).
func (b *Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header["Upgrade"] != nil && wantsWebSocket(r) {
		serveUpgrade(w, r)
		return
	}
	h := w.Header()
	switch r.URL.Path {
	case LargePath:
		h["Content-Type"] = octetStreams
		h["Content-Length"] = largeLength
		_, _ = w.Write(largeBody)
	case IDPath:
		h["Content-Type"] = textPlain
		h["Content-Length"] = []string{strconv.Itoa(len(b.ID))}
		_, _ = w.Write([]byte(b.ID))
	default:
		h["Content-Type"] = textPlain
		h["Content-Length"] = smallLength
		_, _ = w.Write(smallBody)
	}
}

// BackendOptions configure RunBackend.
type BackendOptions struct {
	// Listen is the loopback "host:port" to serve on. Required.
	Listen string
	// ID is the backend's name, answered at IDPath. Default: Listen.
	ID string
	// ZooKeeper lists the servers to register with; empty: no registration.
	ZooKeeper []string
	// Paths are the service paths to register under (one plain-format
	// ephemeral node "host:port" in each).
	Paths []string
	// SessionTimeout is the ZooKeeper session timeout. Default 10s.
	SessionTimeout time.Duration
	// Ready, when set, is called once the backend serves and is registered.
	Ready func(addr string)
}

// RunBackend serves Backend on o.Listen, registers it under each of
// o.Paths, and on the end of ctx deregisters and stops.
func RunBackend(ctx context.Context, o BackendOptions, log logrus.FieldLogger) error {
	if o.Listen == "" {
		return errors.New("benchkit: backend: listen address is required")
	}
	if len(o.Paths) > 0 && len(o.ZooKeeper) == 0 {
		return fmt.Errorf("benchkit: backend: service paths %v given without ZooKeeper servers", o.Paths)
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("benchkit: backend: listen %s: %w", o.Listen, err)
	}
	addr := ln.Addr().String()
	if o.ID == "" {
		o.ID = addr
	}
	srv := &http.Server{Handler: &Backend{ID: o.ID}, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	var regs []*discovery.Registrar
	if len(o.Paths) > 0 {
		client, err := discovery.Dial(ctx, discovery.ClientConfig{Servers: o.ZooKeeper, SessionTimeout: o.SessionTimeout}, log)
		if err != nil {
			return fmt.Errorf("benchkit: backend %s: %w", o.ID, err)
		}
		defer client.Close()
		for _, p := range o.Paths {
			reg, err := discovery.NewRegistrar(client, discovery.RegistrarConfig{Path: p, Addr: addr}, log)
			if err == nil {
				err = reg.Register(ctx)
			}
			if err != nil {
				return fmt.Errorf("benchkit: backend %s: register under %s: %w", o.ID, p, err)
			}
			regs = append(regs, reg)
		}
	}
	if o.Ready != nil {
		o.Ready(addr)
	}
	select {
	case err := <-served:
		return fmt.Errorf("benchkit: backend %s: serve: %w", o.ID, err)
	case <-ctx.Done():
	}
	for _, reg := range regs {
		dctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if err := reg.Deregister(dctx); err != nil {
			log.WithError(err).Warn("deregister failed; the node goes with the session")
		}
		cancel()
	}
	return nil
}
