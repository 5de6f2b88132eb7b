package app

import "testing"

// TestNativeH2EndToEnd runs the gateway's gRPC and TLS end-to-end tests
// with zkgate's own HTTP/2 server on both entry points
// (entry_points.*.http2_server: zkgate, through the environment): a real
// gRPC server registered in ZooKeeper behind the gateway (unary, the three
// streaming kinds, a deadline, a backend killed mid-stream, scaling under
// load with no failed call), and TLS with SNI, HTTP/2 and client
// certificates.
func TestNativeH2EndToEnd(t *testing.T) {
	t.Setenv("ZKGATE_ENTRY_POINTS_WEB_HTTP2_SERVER", "zkgate")
	t.Setenv("ZKGATE_ENTRY_POINTS_WEBSECURE_HTTP2_SERVER", "zkgate")
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
