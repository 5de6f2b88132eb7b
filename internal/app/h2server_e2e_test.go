package app

import "testing"

// TestGoH2EndToEnd runs the gateway's gRPC and TLS end-to-end tests,
// which run on zkgate's own HTTP/2 server (the default), again with
// net/http's on both entry points (entry_points.*.http2_server: go,
// through the environment): a real gRPC server registered in ZooKeeper
// behind the gateway (unary, the three streaming kinds, a deadline, a
// backend killed mid-stream, scaling under load with no failed call), and
// TLS with SNI, HTTP/2 and client certificates.
func TestGoH2EndToEnd(t *testing.T) {
	t.Setenv("ZKGATE_ENTRY_POINTS_WEB_HTTP2_SERVER", "go")
	t.Setenv("ZKGATE_ENTRY_POINTS_WEBSECURE_HTTP2_SERVER", "go")
	for _, tt := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"GRPCThroughGateway", TestGRPCThroughGateway},
		{"GRPCBackendKilledMidStream", TestGRPCBackendKilledMidStream},
		{"GRPCScalingUnderLoad", TestGRPCScalingUnderLoad},
		{"TLSEntryPoint", TestTLSEntryPoint},
		{"TLSClientCertificatesRequired", TestTLSClientCertificatesRequired},
	} {
		t.Run(tt.name, tt.run)
	}
}
