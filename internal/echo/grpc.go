package echo

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// InstanceHeader is the metadata key with which every call of the gRPC
// mode names the instance that served it, in its response headers (so that
// a client of a stream can tell backends apart) and in its trailers (so
// that a client can check that trailers other than the status reach it).
const InstanceHeader = "echo-instance"

// maxPayload bounds the payload a client may ask a response to carry
// (ResponseParameters.Size), so that a request cannot make the backend
// allocate at will.
const maxPayload = 1 << 20

// GRPCService is the gRPC mode's implementation of gRPC's interop
// TestService (google.golang.org/grpc/interop/grpc_testing):
//
//	EmptyCall            answers an empty message
//	UnaryCall            answers the request's payload, with Hostname and
//	                     ServerId set to the instance id; a payload body
//	                     "sleep:DURATION" waits that long first (at most 1m,
//	                     ended early by the call's cancellation), and
//	                     "fail:CODE" answers that gRPC status code instead
//	StreamingOutputCall  one response per ResponseParameters, of its Size,
//	                     after its IntervalUs pause
//	StreamingInputCall   the sum of the received payload sizes
//	FullDuplexCall       answers each request at once: one response per
//	                     ResponseParameters, or the request's payload back
//	                     when it has none; "sleep:" and "fail:" as above
//
// The payload of the k-th response of a stream (from 0) is Size bytes of
// 'a'+k%26, so that a client can check what it got. Every call sends the
// instance id in its InstanceHeader response header and trailer.
type GRPCService struct {
	testpb.UnimplementedTestServiceServer

	// Instance is the instance id in every answer.
	Instance string
}

// NewGRPCServer returns a gRPC server that serves a GRPCService for
// instance and the standard health service (grpc.health.v1), SERVING for
// the server ("") and for grpc.testing.TestService.
func NewGRPCServer(instance string, opts ...grpc.ServerOption) (*grpc.Server, *health.Server) {
	svc := &GRPCService{Instance: instance}
	md := metadata.Pairs(InstanceHeader, instance)
	opts = append(opts,
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			// SetHeader, not SendHeader: the headers leave with the answer,
			// as a server's usually do, so a slow call sends nothing first.
			_ = grpc.SetHeader(ctx, md)
			_ = grpc.SetTrailer(ctx, md)
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			_ = ss.SetHeader(md)
			ss.SetTrailer(md)
			return h(srv, ss)
		}),
	)
	s := grpc.NewServer(opts...)
	testpb.RegisterTestServiceServer(s, svc)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(testpb.TestService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	return s, hs
}

// EmptyCall answers an empty message.
func (s *GRPCService) EmptyCall(context.Context, *testpb.Empty) (*testpb.Empty, error) {
	return &testpb.Empty{}, nil
}

// UnaryCall answers the request's payload and the instance id, after the
// payload's directive (sleep:, fail:) if any.
func (s *GRPCService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if err := s.directive(ctx, req.GetPayload().GetBody()); err != nil {
		return nil, err
	}
	return &testpb.SimpleResponse{Payload: req.GetPayload(), Hostname: s.Instance, ServerId: s.Instance}, nil
}

// StreamingOutputCall sends one response per ResponseParameters.
func (s *GRPCService) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	if err := s.directive(stream.Context(), req.GetPayload().GetBody()); err != nil {
		return err
	}
	_, err := sendParams(stream, req.GetResponseParameters(), 0)
	return err
}

// StreamingInputCall answers the sum of the sizes of the payloads received.
func (s *GRPCService) StreamingInputCall(stream grpc.ClientStreamingServer[testpb.StreamingInputCallRequest, testpb.StreamingInputCallResponse]) error {
	var sum int64
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if sum > 1<<31-1 {
				return status.Errorf(codes.OutOfRange, "echo: aggregated payload size %d does not fit an int32", sum)
			}
			return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(sum)})
		}
		if err != nil {
			return err
		}
		sum += int64(len(req.GetPayload().GetBody()))
	}
}

// FullDuplexCall answers each request as it arrives.
func (s *GRPCService) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	var k int
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.directive(stream.Context(), req.GetPayload().GetBody()); err != nil {
			return err
		}
		if len(req.GetResponseParameters()) == 0 {
			if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
				return err
			}
			k++
			continue
		}
		if k, err = sendParams(stream, req.GetResponseParameters(), k); err != nil {
			return err
		}
	}
}

// sendParams sends one response per parameter, the first numbered k, and
// returns the number of the next.
func sendParams(stream interface {
	Send(*testpb.StreamingOutputCallResponse) error
	Context() context.Context
}, params []*testpb.ResponseParameters, k int) (int, error) {
	for _, p := range params {
		size, pause := p.GetSize(), time.Duration(p.GetIntervalUs())*time.Microsecond
		if size < 0 || size > maxPayload {
			return k, status.Errorf(codes.InvalidArgument, "echo: response size %d: want 0 to %d", size, maxPayload)
		}
		if pause < 0 || pause > maxDelay {
			return k, status.Errorf(codes.InvalidArgument, "echo: interval %dus: want 0 to %v", p.GetIntervalUs(), maxDelay)
		}
		if err := wait(stream.Context(), pause); err != nil {
			return k, err
		}
		body := make([]byte, size)
		for i := range body {
			body[i] = 'a' + byte(k%26)
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return k, err
		}
		k++
	}
	return k, nil
}

// directive applies a payload's "sleep:DURATION" or "fail:CODE"; any other
// body is data and nil is returned.
func (s *GRPCService) directive(ctx context.Context, body []byte) error {
	switch b := string(body); {
	case strings.HasPrefix(b, "sleep:"):
		d, err := time.ParseDuration(b[len("sleep:"):])
		if err != nil || d < 0 || d > maxDelay {
			return status.Errorf(codes.InvalidArgument, "echo: bad %q: want sleep:DURATION, at most %v", b, maxDelay)
		}
		return wait(ctx, d)
	case strings.HasPrefix(b, "fail:"):
		c, err := strconv.ParseUint(b[len("fail:"):], 10, 32)
		if err != nil || c == 0 || c > uint64(codes.Unauthenticated) {
			return status.Errorf(codes.InvalidArgument, "echo: bad %q: want fail:CODE, a gRPC status code from 1 to 16", b)
		}
		return status.Errorf(codes.Code(c), "echo %s: failing with %s as asked", s.Instance, codes.Code(c))
	}
	return nil
}

// wait waits d or until ctx ends, and then returns ctx's gRPC status.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}
