package echo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// startGRPC serves NewGRPCServer(instance) on a loopback port and returns a
// client connection to it.
func startGRPC(t *testing.T, instance string) *grpc.ClientConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := NewGRPCServer(instance)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return dialGRPC(t, ln.Addr().String())
}

func dialGRPC(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func payload(s string) *testpb.Payload { return &testpb.Payload{Body: []byte(s)} }

func TestGRPCUnaryEchoesPayloadAndInstance(t *testing.T) {
	c := testpb.NewTestServiceClient(startGRPC(t, "b-1"))
	var hdr, trl metadata.MD
	resp, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{Payload: payload("hello")}, grpc.Header(&hdr), grpc.Trailer(&trl))
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.GetPayload().GetBody()) != "hello" || resp.GetHostname() != "b-1" || resp.GetServerId() != "b-1" {
		t.Fatalf("UnaryCall answered %v, want payload hello from b-1", resp)
	}
	if got := hdr.Get(InstanceHeader); len(got) != 1 || got[0] != "b-1" {
		t.Fatalf("header %s = %v, want [b-1]", InstanceHeader, got)
	}
	if got := trl.Get(InstanceHeader); len(got) != 1 || got[0] != "b-1" {
		t.Fatalf("trailer %s = %v, want [b-1]", InstanceHeader, got)
	}
	if _, err := c.EmptyCall(callCtx(t), &testpb.Empty{}); err != nil {
		t.Fatalf("EmptyCall: %v", err)
	}
}

func TestGRPCUnaryDirectives(t *testing.T) {
	c := testpb.NewTestServiceClient(startGRPC(t, "b-1"))

	_, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{Payload: payload("fail:5")})
	if st := status.Convert(err); st.Code() != codes.NotFound || !strings.Contains(st.Message(), "b-1") {
		t.Fatalf("fail:5 answered %v, want NotFound naming the instance", err)
	}

	start := time.Now()
	if _, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{Payload: payload("sleep:100ms")}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("sleep:100ms answered after %v", d)
	}

	// The sleep ends with the call.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = c.UnaryCall(ctx, &testpb.SimpleRequest{Payload: payload("sleep:30s")})
	if status.Code(err) != codes.DeadlineExceeded || time.Since(start) > 5*time.Second {
		t.Fatalf("sleep:30s with a 100ms deadline: %v after %v, want DeadlineExceeded at once", err, time.Since(start))
	}

	for _, bad := range []string{"fail:0", "fail:17", "fail:x", "sleep:soon", "sleep:-1s", "sleep:2h"} {
		_, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{Payload: payload(bad)})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), bad) {
			t.Errorf("%s answered %v, want InvalidArgument naming the value", bad, err)
		}
	}
}

func TestGRPCServerStreaming(t *testing.T) {
	c := testpb.NewTestServiceClient(startGRPC(t, "b-1"))
	sizes := []int32{1, 0, 1000, 7}
	var params []*testpb.ResponseParameters
	for _, s := range sizes {
		params = append(params, &testpb.ResponseParameters{Size: s, IntervalUs: 20_000})
	}
	start := time.Now()
	stream, err := c.StreamingOutputCall(callCtx(t), &testpb.StreamingOutputCallRequest{ResponseParameters: params})
	if err != nil {
		t.Fatal(err)
	}
	for k, size := range sizes {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("response %d: %v", k, err)
		}
		if want := bytes.Repeat([]byte{'a' + byte(k)}, int(size)); !bytes.Equal(resp.GetPayload().GetBody(), want) {
			t.Fatalf("response %d: payload %q, want %d bytes of %q", k, resp.GetPayload().GetBody(), size, rune('a'+k))
		}
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last response: %v, want io.EOF", err)
	}
	if got := stream.Trailer().Get(InstanceHeader); len(got) != 1 || got[0] != "b-1" {
		t.Fatalf("stream trailer %s = %v, want [b-1]", InstanceHeader, got)
	}
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Fatalf("four responses 20ms apart took %v", d)
	}

	for _, p := range []*testpb.ResponseParameters{{Size: -1}, {Size: maxPayload + 1}, {IntervalUs: -5}} {
		stream, err := c.StreamingOutputCall(callCtx(t), &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{p}})
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("parameters %v: %v, want InvalidArgument", p, err)
		}
	}
}

func TestGRPCClientStreaming(t *testing.T) {
	c := testpb.NewTestServiceClient(startGRPC(t, "b-1"))
	stream, err := c.StreamingInputCall(callCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{3, 0, 1000, 27182} {
		if err := stream.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, n)}}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil || resp.GetAggregatedPayloadSize() != 3+1000+27182 {
		t.Fatalf("CloseAndRecv: %v %v, want %d", resp, err, 3+1000+27182)
	}
}

func TestGRPCFullDuplexAnswersEachRequestAtOnce(t *testing.T) {
	c := testpb.NewTestServiceClient(startGRPC(t, "b-1"))
	stream, err := c.FullDuplexCall(callCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	// Each answer is awaited before the next request is sent: a server
	// that waited for the end of the client's stream would never answer.
	for _, msg := range []string{"one", "two", "three"} {
		if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: payload(msg)}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil || string(resp.GetPayload().GetBody()) != msg {
			t.Fatalf("answer to %q: %v %v", msg, resp, err)
		}
	}
	params := []*testpb.ResponseParameters{{Size: 2}, {Size: 3}}
	if err := stream.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: params}); err != nil {
		t.Fatal(err)
	}
	for k, want := range []string{"dd", "eee"} { // responses 3 and 4 of the stream
		resp, err := stream.Recv()
		if err != nil || string(resp.GetPayload().GetBody()) != want {
			t.Fatalf("parameter %d: %v %v, want %q", k, resp, err, want)
		}
	}
	if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: payload("fail:9")}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("after fail:9: %v, want FailedPrecondition", err)
	}
}

func TestGRPCHealthServing(t *testing.T) {
	h := healthpb.NewHealthClient(startGRPC(t, "b-1"))
	for _, svc := range []string{"", "grpc.testing.TestService"} {
		resp, err := h.Check(callCtx(t), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health of %q: %v %v, want SERVING", svc, resp, err)
		}
	}
}

// TestRunGRPCModeDrainsCallsInFlight stops a gRPC-mode Run while a call is
// in flight: the call finishes with its answer, Run returns nil, and the
// listener is closed.
func TestRunGRPCModeDrainsCallsInFlight(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	log := logrus.New()
	log.SetOutput(io.Discard)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{Listen: addr, ID: "b-1", Weight: 1, GRPC: true}, log) }()

	c := testpb.NewTestServiceClient(dialGRPC(t, addr))
	// WaitForReady: the call waits for the listener rather than failing.
	if _, err := c.EmptyCall(callCtx(t), &testpb.Empty{}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	// A stream whose first response has arrived is in the handler, which
	// pauses 300ms before the second: the stop comes during the call.
	stream, err := c.StreamingOutputCall(callCtx(t), &testpb.StreamingOutputCallRequest{
		ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 2, IntervalUs: 300_000}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	stop()
	resp, err := stream.Recv()
	if err != nil || string(resp.GetPayload().GetBody()) != "bb" {
		t.Fatalf("call in flight during the stop: %v %v, want its second response", resp, err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("call in flight during the stop ended with %v, want io.EOF", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of the stop")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		_ = c.Close()
		t.Fatalf("%s still accepts connections after Run returned", addr)
	}
}
