package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/zkgate/zkgate/internal/echo"
	"github.com/zkgate/zkgate/internal/zktest"
)

// gRPC through the gateway: a real gateway (Serve) over a real ZooKeeper,
// its entry point accepting h2c, routing grpc.testing.TestService to a
// service whose upstream protocol is h2c and whose members are gRPC echo
// backends (internal/echo's gRPC mode) registered in ZooKeeper; a grpc-go
// client calls through the gateway.

// grpcRoutes: the TestService's calls go to service grpc; host
// slow.grpc to the same service with a 300ms route timeout; host
// empty.grpc to a service without members.
const grpcRoutes = `  - name: grpc-slow
    match: { hosts: [slow.grpc], path_prefix: /grpc.testing.TestService/ }
    service: grpc
    balancer: round_robin
    timeout: 300ms
  - name: grpc-empty
    match: { hosts: [empty.grpc], path_prefix: /grpc.testing.TestService/ }
    service: empty
    balancer: round_robin
  - name: grpc
    match: { path_prefix: /grpc.testing.TestService/ }
    service: grpc
    balancer: round_robin`

const grpcServices = `  grpc:
    discovery: { zookeeper: { path: /services/grpc } }
    upstream: { protocol: h2c }
  empty:
    discovery: { zookeeper: { path: /services/empty } }
    upstream: { protocol: h2c }`

// startGRPCGateway starts a gateway whose entry point web accepts h2c
// (entry_points.web.http2: h2c, set through its environment variable).
func startGRPCGateway(t *testing.T, zkAddr string) *gateway {
	t.Helper()
	t.Setenv("ZKGATE_ENTRY_POINTS_WEB_HTTP2", "h2c")
	return startGateway(t, zkAddr, grpcRoutes, grpcServices)
}

// grpcClient returns a TestService client through the gateway's entry
// point, with the given :authority ("" for the default).
func grpcClient(t *testing.T, g *gateway, authority string) testpb.TestServiceClient {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if authority != "" {
		opts = append(opts, grpc.WithAuthority(authority))
	}
	cc, err := grpc.NewClient(strings.TrimPrefix(g.proxy, "http://"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return testpb.NewTestServiceClient(cc)
}

// grpcBackend is a gRPC echo backend served in this process by echo.Run,
// which registers it in ZooKeeper and, when stopped, deregisters, drains
// and stops gracefully, as cmd/echo-backend --grpc does on SIGTERM.
type grpcBackend struct {
	id     string
	cancel context.CancelFunc
	done   chan error
}

func startGRPCBackend(t *testing.T, zkAddr, id string) *grpcBackend {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	b := &grpcBackend{id: id, cancel: cancel, done: make(chan error, 1)}
	o := echo.Options{
		Listen:         fmt.Sprintf("127.0.0.1:%d", zktest.FreePort(t)),
		ID:             id,
		ZooKeeper:      []string{zkAddr},
		SessionTimeout: 4 * time.Second,
		Path:           "/services/grpc",
		Weight:         1,
		Format:         "plain",
		Drain:          time.Second,
		GRPC:           true,
	}
	go func() { b.done <- echo.Run(ctx, o, log) }()
	t.Cleanup(func() { b.stop(t) })
	return b
}

// stop stops b gracefully and waits (bounded) for it to end.
func (b *grpcBackend) stop(t *testing.T) {
	t.Helper()
	b.cancel()
	select {
	case err := <-b.done:
		if err != nil {
			t.Errorf("backend %s: %v", b.id, err)
		}
		b.done <- nil // later stops return at once
	case <-time.After(20 * time.Second):
		t.Errorf("backend %s did not stop within 20s", b.id)
	}
}

// hardBackend is a gRPC echo backend registered through the test's own
// ZooKeeper session, which kill stops hard — listener and connections
// closed at once, the node left in ZooKeeper — as SIGKILL does to a
// process before its session expires.
type hardBackend struct {
	id   string
	srv  *grpc.Server
	node string
}

func startHardBackend(t *testing.T, conn *zk.Conn, id string) *hardBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := echo.NewGRPCServer(id)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return &hardBackend{id: id, srv: srv, node: register(t, conn, "grpc", ln.Addr().String())}
}

func (b *hardBackend) kill() { b.srv.Stop() }

// callCtx is a bounded context for one call or stream.
func callCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// unaryHostname makes a unary call and returns the instance that answered.
func unaryHostname(ctx context.Context, c testpb.TestServiceClient, body string) (string, error) {
	resp, err := c.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte(body)}})
	if err != nil {
		return "", err
	}
	if got := string(resp.GetPayload().GetBody()); got != body {
		return "", fmt.Errorf("payload %q, want %q", got, body)
	}
	return resp.GetHostname(), nil
}

// awaitBackends waits until unary calls through c have reached every one
// of ids.
func awaitBackends(t *testing.T, c testpb.TestServiceClient, ids ...string) {
	t.Helper()
	seen := map[string]bool{}
	zktest.WaitFor(t, 10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if h, err := unaryHostname(ctx, c, "ping"); err == nil {
			seen[h] = true
		}
		for _, id := range ids {
			if !seen[id] {
				return false
			}
		}
		return true
	}, "unary calls through the gateway reaching each of %v", ids)
}

// TestGRPCThroughGateway: unary calls reach both backends; the three
// streaming kinds carry their messages both ways; a backend's status
// reaches the client with its message; deadlines (the client's, and the
// route timeout) end calls with DEADLINE_EXCEEDED; a service without
// members answers UNAVAILABLE.
func TestGRPCThroughGateway(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	g := startGRPCGateway(t, srv.Addr())
	startGRPCBackend(t, srv.Addr(), "grpc-a")
	startGRPCBackend(t, srv.Addr(), "grpc-b")
	c := grpcClient(t, g, "")
	awaitBackends(t, c, "grpc-a", "grpc-b")

	t.Run("unary", func(t *testing.T) {
		hits := map[string]int{}
		for i := range 10 {
			h, err := unaryHostname(callCtx(t, 5*time.Second), c, fmt.Sprintf("call-%d", i))
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			hits[h]++
		}
		if hits["grpc-a"] != 5 || hits["grpc-b"] != 5 {
			t.Fatalf("round robin over two backends: %v, want 5 each", hits)
		}
		if _, err := c.EmptyCall(callCtx(t, 5*time.Second), &testpb.Empty{}); err != nil {
			t.Fatalf("EmptyCall: %v", err)
		}
	})

	t.Run("server streaming", func(t *testing.T) {
		sizes := []int32{10, 0, 100_000, 3}
		var params []*testpb.ResponseParameters
		for _, s := range sizes {
			params = append(params, &testpb.ResponseParameters{Size: s, IntervalUs: 10_000})
		}
		stream, err := c.StreamingOutputCall(callCtx(t, 10*time.Second), &testpb.StreamingOutputCallRequest{ResponseParameters: params})
		if err != nil {
			t.Fatal(err)
		}
		for k, size := range sizes {
			resp, err := stream.Recv()
			if err != nil {
				t.Fatalf("response %d: %v", k, err)
			}
			if want := bytes.Repeat([]byte{'a' + byte(k)}, int(size)); !bytes.Equal(resp.GetPayload().GetBody(), want) {
				t.Fatalf("response %d: %d bytes, want %d bytes of %q", k, len(resp.GetPayload().GetBody()), size, rune('a'+k))
			}
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("after the last response: %v, want io.EOF (status OK in the trailers)", err)
		}
		hdr, _ := stream.Header()
		if inst, trl := hdr.Get(echo.InstanceHeader), stream.Trailer().Get(echo.InstanceHeader); len(inst) != 1 || len(trl) != 1 || trl[0] != inst[0] {
			t.Fatalf("instance in the header %v and the trailer %v: want the backend's trailer passed through", inst, trl)
		}
	})

	t.Run("client streaming", func(t *testing.T) {
		stream, err := c.StreamingInputCall(callCtx(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		sizes := []int{1, 0, 70_000, 8} // 70 000: more than one HTTP/2 frame and window update
		total := 0
		for _, n := range sizes {
			if err := stream.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, n)}}); err != nil {
				t.Fatal(err)
			}
			total += n
		}
		resp, err := stream.CloseAndRecv()
		if err != nil || int(resp.GetAggregatedPayloadSize()) != total {
			t.Fatalf("CloseAndRecv: %v %v, want an aggregated size of %d", resp, err, total)
		}
	})

	t.Run("bidi streaming", func(t *testing.T) {
		stream, err := c.FullDuplexCall(callCtx(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		// Each answer comes back before the next request leaves: a gateway
		// that buffered the request body, or the answer, would hang here.
		for i := range 5 {
			msg := fmt.Sprintf("message %d", i)
			if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(msg)}}); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil || string(resp.GetPayload().GetBody()) != msg {
				t.Fatalf("answer to %q: %v %v", msg, resp, err)
			}
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("after CloseSend: %v, want io.EOF", err)
		}
	})

	t.Run("backend status and message", func(t *testing.T) {
		var hdr, trl metadata.MD
		_, err := c.UnaryCall(callCtx(t, 5*time.Second), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("fail:5")}},
			grpc.Header(&hdr), grpc.Trailer(&trl))
		st := status.Convert(err)
		inst := hdr.Get(echo.InstanceHeader)
		if st.Code() != codes.NotFound || len(inst) != 1 || st.Message() != "echo "+inst[0]+": failing with NotFound as asked" {
			t.Fatalf("fail:5 answered %v (instance %v), want NotFound with the backend's message", err, inst)
		}
		if got := trl.Get(echo.InstanceHeader); len(got) != 1 || got[0] != inst[0] {
			t.Fatalf("trailer %s = %v with the status, want [%s]", echo.InstanceHeader, got, inst[0])
		}
	})

	t.Run("client deadline", func(t *testing.T) {
		start := time.Now()
		_, err := c.UnaryCall(callCtx(t, 200*time.Millisecond), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("sleep:2s")}})
		if d := time.Since(start); status.Code(err) != codes.DeadlineExceeded || d > time.Second {
			t.Fatalf("a 200ms deadline on sleep:2s: %v after %v, want DeadlineExceeded within 1s", err, d)
		}
	})

	t.Run("route timeout", func(t *testing.T) {
		slow := grpcClient(t, g, "slow.grpc")
		start := time.Now()
		_, err := slow.UnaryCall(context.Background(), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("sleep:2s")}})
		st := status.Convert(err)
		if d := time.Since(start); st.Code() != codes.DeadlineExceeded || !strings.HasPrefix(st.Message(), "zkgate: ") || d > 1500*time.Millisecond {
			t.Fatalf("route timeout 300ms on sleep:2s without a client deadline: %v after %v, want the gateway's DeadlineExceeded within 1.5s", err, d)
		}
	})

	t.Run("no backend", func(t *testing.T) {
		empty := grpcClient(t, g, "empty.grpc")
		_, err := empty.UnaryCall(callCtx(t, 5*time.Second), &testpb.SimpleRequest{})
		st := status.Convert(err)
		if st.Code() != codes.Unavailable || !strings.HasPrefix(st.Message(), "zkgate: ") || !strings.Contains(st.Message(), "service empty") {
			t.Fatalf("a service without members answered %v, want the gateway's Unavailable naming the service", err)
		}
	})
}

// TestGRPCBackendKilledMidStream kills the backend serving a server stream
// (listener and connections closed at once, its node left in ZooKeeper, as
// after SIGKILL): the client's stream ends with an error, not a clean end,
// and the calls made right after succeed on the other backend.
func TestGRPCBackendKilledMidStream(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	conn := zktest.Connect(t, srv.Addr())
	g := startGRPCGateway(t, srv.Addr())
	backends := map[string]*hardBackend{}
	for _, id := range []string{"grpc-a", "grpc-b"} {
		backends[id] = startHardBackend(t, conn, id)
	}
	c := grpcClient(t, g, "")
	awaitBackends(t, c, "grpc-a", "grpc-b")

	params := make([]*testpb.ResponseParameters, 200) // 200 × 20ms: 4s unless cut short
	for i := range params {
		params[i] = &testpb.ResponseParameters{Size: 16, IntervalUs: 20_000}
	}
	stream, err := c.StreamingOutputCall(callCtx(t, 20*time.Second), &testpb.StreamingOutputCallRequest{ResponseParameters: params})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("first response: %v", err)
	}
	hdr, err := stream.Header()
	if err != nil || len(hdr.Get(echo.InstanceHeader)) != 1 {
		t.Fatalf("stream header: %v %v, want the serving instance", hdr, err)
	}
	victim := hdr.Get(echo.InstanceHeader)[0]
	survivor := map[string]string{"grpc-a": "grpc-b", "grpc-b": "grpc-a"}[victim]
	backends[victim].kill()

	received := 1
	for {
		_, err = stream.Recv()
		if err != nil {
			break
		}
		received++
	}
	if code := status.Code(err); code != codes.Unavailable && code != codes.Internal {
		t.Fatalf("stream from killed %s after %d responses ended with %v, want Unavailable or Internal", victim, received, err)
	}
	if received >= len(params) {
		t.Fatalf("stream got all %d responses although %s was killed", received, victim)
	}
	t.Logf("stream from %s ended after %d responses: %v", victim, received, err)

	// The node of the killed backend stays: the gateway must not send the
	// calls there (its connection is refused: nothing was sent, so the
	// call is retried on the other backend).
	for i := range 10 {
		h, err := unaryHostname(callCtx(t, 5*time.Second), c, fmt.Sprintf("after-%d", i))
		if err != nil || h != survivor {
			t.Fatalf("call %d after %s was killed: %q %v, want an answer from %s", i, victim, h, err, survivor)
		}
	}
}

// TestGRPCScalingUnderLoad runs unary calls from several goroutines
// through the gateway while a third backend registers and one of the first
// two stops gracefully (deregister, drain, GracefulStop): no call fails, and
// the new backend serves some.
func TestGRPCScalingUnderLoad(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	g := startGRPCGateway(t, srv.Addr())
	a := startGRPCBackend(t, srv.Addr(), "grpc-a")
	startGRPCBackend(t, srv.Addr(), "grpc-b")
	c := grpcClient(t, g, "")
	awaitBackends(t, c, "grpc-a", "grpc-b")

	const workers = 8
	var (
		calls, failed atomic.Int64
		mu            sync.Mutex
		hits          = map[string]int{}
		firstErr      error
		wg            sync.WaitGroup
	)
	stop := make(chan struct{})
	deadline := time.Now().Add(60 * time.Second) // the load's bound, whatever happens below
	for w := range workers {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				h, err := unaryHostname(ctx, c, fmt.Sprintf("w%d-%d", w, i))
				cancel()
				calls.Add(1)
				mu.Lock()
				if err != nil {
					failed.Add(1)
					if firstErr == nil {
						firstErr = err
					}
				} else {
					hits[h]++
				}
				mu.Unlock()
			}
		})
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopLoad)
	servedBy := func(id string) int {
		mu.Lock()
		defer mu.Unlock()
		return hits[id]
	}

	zktest.WaitFor(t, 10*time.Second, func() bool { return calls.Load() >= 200 }, "load flowing")
	startGRPCBackend(t, srv.Addr(), "grpc-c")
	zktest.WaitFor(t, 10*time.Second, func() bool { return servedBy("grpc-c") >= 50 }, "the new backend grpc-c serving calls")

	a.stop(t) // returns once a has deregistered, drained and stopped
	after := calls.Load()
	zktest.WaitFor(t, 10*time.Second, func() bool { return calls.Load() >= after+500 }, "calls after grpc-a stopped")
	stopLoad()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("calls=%d failed=%d per backend=%v", calls.Load(), failed.Load(), hits)
	if failed.Load() != 0 {
		t.Fatalf("%d of %d calls failed during the scaling, first: %v", failed.Load(), calls.Load(), firstErr)
	}
}
