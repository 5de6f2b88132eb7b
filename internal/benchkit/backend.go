package benchkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zkgate/zkgate/discovery"
	echobackend "github.com/zkgate/zkgate/internal/echo"
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
	// JSONPath answers JSONSize bytes of JSON (application/json), the
	// compression section's body.
	JSONPath = "/64k.json"
	// JSONSize is the size of the JSON body: 64 KiB.
	JSONSize = 64 << 10
)

var (
	smallBody    = []byte(SmallBody)
	largeBody    = makeLargeBody()
	smallLength  = []string{strconv.Itoa(len(smallBody))}
	largeLength  = []string{strconv.Itoa(LargeSize)}
	textPlain    = []string{"text/plain; charset=utf-8"}
	octetStreams = []string{"application/octet-stream"}
	jsonBody     = makeJSONBody()
	jsonLength   = []string{strconv.Itoa(JSONSize)}
	appJSON      = []string{"application/json"}
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

// JSONBody returns a copy of the body served at JSONPath.
func JSONBody() []byte { return append([]byte(nil), jsonBody...) }

// benchUser is one entry of the JSON body's list, shaped like an API's
// user resource.
type benchUser struct {
	ID        int        `json:"id"`
	UUID      string     `json:"uuid"`
	Name      string     `json:"name"`
	Email     string     `json:"email"`
	Status    string     `json:"status"`
	Role      string     `json:"role"`
	CreatedAt string     `json:"created_at"`
	UpdatedAt string     `json:"updated_at"`
	Tags      []string   `json:"tags"`
	Score     float64    `json:"score"`
	Verified  bool       `json:"verified"`
	Address   benchAddr  `json:"address"`
	Links     benchLinks `json:"links"`
}

type benchAddr struct {
	City     string `json:"city"`
	Country  string `json:"country"`
	Postcode string `json:"postcode"`
}

type benchLinks struct {
	Self   string `json:"self"`
	Orders string `json:"orders"`
}

// makeJSONBody returns JSONSize bytes of JSON shaped like a paginated API
// list answer: {"data":[users…],"page":{…,"next_cursor":"…"}}. The users'
// fields come from a fixed pseudo-random sequence (names, roles, cities and
// tags from short lists, as real records repeat; UUIDs, times and scores
// varied, as real records differ), so the body is the same in every process
// and compresses as such an answer does, not as a repeated string; the
// cursor is sized so that the whole is exactly JSONSize bytes.
func makeJSONBody() []byte {
	firsts := []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Frances", "Niklaus", "Radia", "Leslie"}
	lasts := []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson", "Allen", "Wirth", "Perlman", "Lamport"}
	statuses := []string{"active", "active", "active", "suspended", "pending"}
	roles := []string{"member", "member", "admin", "billing", "viewer"}
	tags := []string{"eu-west", "us-east", "beta", "newsletter", "enterprise", "trial", "sso", "mfa"}
	cities := []benchAddr{{"Lyon", "FR", "69002"}, {"Berlin", "DE", "10115"}, {"Austin", "US", "78701"}, {"Osaka", "JP", "530-0001"},
		{"Porto", "PT", "4000-322"}, {"Leeds", "GB", "LS1 4AP"}}
	state := uint64(0x9e3779b97f4a7c15)
	next := func() uint64 { // xorshift64*
		state ^= state >> 12
		state ^= state << 25
		state ^= state >> 27
		return state * 0x2545f4914f6cdd1d
	}
	pick := func(xs []string) string { return xs[next()%uint64(len(xs))] }
	const head, foot = `{"data":[`, `],"page":{"number":1,"size":%d,"total":48213,"next_cursor":"%s"}}`
	b := []byte(head)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; ; i++ {
		first, last := pick(firsts), pick(lasts)
		created := base.Add(time.Duration(next()%(700*24*3600)) * time.Second)
		n := next()
		u := benchUser{
			ID:        100000 + i*7,
			UUID:      fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", uint32(n), uint16(n>>32), n>>48&0xfff, next()&0xfff, next()&0xffffffffffff),
			Name:      first + " " + last,
			Email:     strings.ToLower(first+"."+last) + strconv.Itoa(i) + "@example.com",
			Status:    pick(statuses),
			Role:      pick(roles),
			CreatedAt: created.Format(time.RFC3339),
			UpdatedAt: created.Add(time.Duration(next()%(90*24*3600)) * time.Second).Format(time.RFC3339),
			Tags:      []string{pick(tags), pick(tags)},
			Score:     float64(next()%10000) / 100,
			Verified:  next()%4 != 0,
			Address:   cities[next()%uint64(len(cities))],
			Links:     benchLinks{Self: fmt.Sprintf("/api/v1/users/%d", 100000+i*7), Orders: fmt.Sprintf("/api/v1/users/%d/orders", 100000+i*7)},
		}
		item, err := json.Marshal(u)
		if err != nil {
			panic(err) // fixed types: cannot fail
		}
		sep := 0
		if i > 0 {
			sep = 1
		}
		// Room for this user, the foot and a cursor of at least 16 characters.
		if len(b)+sep+len(item)+len(fmt.Sprintf(foot, i+1, ""))+16 > JSONSize {
			size := len(fmt.Sprintf(foot, i, ""))
			cursor := make([]byte, JSONSize-len(b)-size)
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			for j := range cursor {
				cursor[j] = alphabet[next()%64]
			}
			return fmt.Appendf(b, foot, i, cursor)
		}
		if sep == 1 {
			b = append(b, ',')
		}
		b = append(b, item...)
	}
}

// Backend is the fast HTTP backend of the throughput benchmark: it answers
// a fixed body with precomputed headers and does nothing else, so that the
// proxy in front of it dominates the cost of a request. It also answers
// WebSocket handshakes, for the connection benchmark's upgraded
// connections.
type Backend struct {
	// ID is answered at IDPath.
	ID string
}

// ServeHTTP answers SmallBody, the 16 KiB body at LargePath, the 64 KiB
// JSON body at JSONPath, or the ID at IDPath. The header values are shared, read-only slices: no allocation
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
	case JSONPath:
		h["Content-Type"] = appJSON
		h["Content-Length"] = jsonLength
		_, _ = w.Write(jsonBody)
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
	// GRPC serves gRPC over h2c instead of HTTP: gRPC's interop
	// TestService, answering with ID as its hostname (internal/echo, as
	// `echo-backend --grpc`).
	GRPC bool
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
	served := make(chan error, 1)
	if o.GRPC {
		srv, _ := echobackend.NewGRPCServer(o.ID)
		go func() { served <- srv.Serve(ln) }()
		defer srv.Stop()
	} else {
		srv := &http.Server{Handler: &Backend{ID: o.ID}, ReadHeaderTimeout: 10 * time.Second}
		go func() { served <- srv.Serve(ln) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}

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
