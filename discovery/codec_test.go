package discovery

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zkgate/zkgate/balancer"
)

func golden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeGolden(t *testing.T) {
	tests := []struct {
		file  string
		codec Codec
		want  balancer.Endpoint
	}{
		{
			file:  "curator_spring.json",
			codec: Codec{Format: FormatAuto},
			want: balancer.Endpoint{Addr: "10.0.3.17:8005", Weight: 1, Meta: map[string]string{
				"format":                   "curator",
				"curator.id":               "6d4e5121-6c17-4023-8f7b-8922f8b70cae",
				"curator.name":             "cloud-provider-payment",
				"curator.service_type":     "DYNAMIC",
				"payload.id":               "application-1",
				"payload.name":             "cloud-provider-payment",
				"metadata.instance_status": "UP",
				"metadata.zone":            "eu-west-1a",
			}},
		},
		{
			file:  "curator_hashmap_weight.json",
			codec: Codec{Format: FormatCurator},
			want: balancer.Endpoint{Addr: "backend-7.internal:9090", Weight: 5, Meta: map[string]string{
				"format":               "curator",
				"curator.id":           "c2f4b0a8-9f51-4a8e-8f7e-53b1d2c4e9aa",
				"curator.name":         "echo",
				"curator.service_type": "DYNAMIC",
				"payload.weight":       "5",
				"payload.version":      "2.4.1",
			}},
		},
		{
			file:  "curator_hashmap_weight.json",
			codec: Codec{SSL: true},
			want: balancer.Endpoint{Addr: "backend-7.internal:9443", Weight: 5, Meta: map[string]string{
				"format":               "curator",
				"curator.id":           "c2f4b0a8-9f51-4a8e-8f7e-53b1d2c4e9aa",
				"curator.name":         "echo",
				"curator.service_type": "DYNAMIC",
				"payload.weight":       "5",
				"payload.version":      "2.4.1",
			}},
		},
		{
			file:  "serverset_aurora.json",
			codec: Codec{},
			want: balancer.Endpoint{Addr: "10.1.2.3:31181", Weight: 1, Meta: map[string]string{
				"format":          "serverset",
				"serverset.shard": "3",
			}},
		},
		{
			file:  "serverset_aurora.json",
			codec: Codec{Format: FormatServerSet, EndpointName: "http"},
			want: balancer.Endpoint{Addr: "10.1.2.3:31180", Weight: 1, Meta: map[string]string{
				"format":             "serverset",
				"serverset.shard":    "3",
				"serverset.endpoint": "http",
			}},
		},
		{
			file:  "nerve_labels.json",
			codec: Codec{},
			want: balancer.Endpoint{Addr: "10.0.4.21:31045", Weight: 10, Meta: map[string]string{
				"format":         "nerve",
				"nerve.name":     "i-0a1b2c3d4e5f60718",
				"labels.az":      "us-east-1a",
				"labels.version": "2.4.1",
				"labels.canary":  "false",
			}},
		},
		{
			file:  "nerve_minimal.json",
			codec: Codec{Format: FormatNerve},
			want: balancer.Endpoint{Addr: "app-3.internal:8080", Weight: 1, Meta: map[string]string{
				"format":     "nerve",
				"nerve.name": "i-0123456789abcdef0",
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			const p = "/services/svc/node"
			got, err := tt.codec.Decode(p, golden(t, tt.file))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			tt.want.ID = p
			if got.ID != tt.want.ID || got.Addr != tt.want.Addr || got.Weight != tt.want.Weight || !maps.Equal(got.Meta, tt.want.Meta) {
				t.Errorf("Decode =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeNotServing(t *testing.T) {
	for file, codec := range map[string]Codec{
		"curator_disabled.json":              {},
		"curator_spring_out_of_service.json": {},
		"serverset_stopping.json":            {},
		"nerve_drained.json":                 {Format: FormatNerve},
	} {
		_, err := codec.Decode("/s/x", golden(t, file))
		if !errors.Is(err, ErrNotServing) || errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrNotServing", file, err)
		}
	}
}

func TestDecodePlain(t *testing.T) {
	tests := []struct {
		name, data string
		format     Format
		addr       string
		weight     int
	}{
		{name: "10.0.0.1:8080", addr: "10.0.0.1:8080", weight: 1},
		{name: "host-a:80", data: "", addr: "host-a:80", weight: 1},
		{name: "10.0.0.1:8080", data: "10.0.0.2:9090", addr: "10.0.0.2:9090", weight: 1},
		{name: "anything", data: "10.0.0.2:9090,7", addr: "10.0.0.2:9090", weight: 7},
		{name: "anything", data: " 10.0.0.2:9090 , 3 \n", addr: "10.0.0.2:9090", weight: 3},
		{name: "[::1]:8080", addr: "[::1]:8080", weight: 1},
		{name: "x", data: "[fe80::1]:443,2", format: FormatPlain, addr: "[fe80::1]:443", weight: 2},
		{name: "x", data: "10.0.0.2:9090,1000", addr: "10.0.0.2:9090", weight: MaxWeight},
	}
	for _, tt := range tests {
		p := "/services/echo/" + tt.name
		got, err := Codec{Format: tt.format}.Decode(p, []byte(tt.data))
		if err != nil {
			t.Errorf("Decode(%q, %q): %v", tt.name, tt.data, err)
			continue
		}
		if got.Addr != tt.addr || got.Weight != tt.weight || got.ID != p || got.Meta["format"] != "plain" {
			t.Errorf("Decode(%q, %q) = %+v, want addr %s weight %d", tt.name, tt.data, got, tt.addr, tt.weight)
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	tests := []struct {
		desc   string
		codec  Codec
		name   string
		data   string
		reason string
	}{
		{"plain port zero", Codec{}, "x", "10.0.0.1:0", "port 0 is out of range"},
		{"plain port too big", Codec{}, "x", "10.0.0.1:70000", "port 70000 is out of range"},
		{"plain port not a number", Codec{}, "x", "10.0.0.1:http", `port "http" is not a number`},
		{"plain empty host", Codec{}, "x", ":8080", "empty host"},
		{"plain bad host", Codec{}, "x", "a b:8080", "neither an IP address nor a host name"},
		{"plain weight zero", Codec{}, "x", "10.0.0.1:80,0", "weight 0 must be at least 1"},
		{"plain weight negative", Codec{}, "x", "10.0.0.1:80,-2", "weight -2 must be at least 1"},
		{"plain weight text", Codec{}, "x", "10.0.0.1:80,heavy", `weight "heavy" is not a number`},
		{"plain weight fraction", Codec{}, "x", "10.0.0.1:80,1.5", "weight 1.5 is not an integer"},
		{"plain weight too big", Codec{}, "x", "10.0.0.1:80,1001", "over the maximum 1000"},
		{"plain JSON given", Codec{Format: FormatPlain}, "x", `{"address":"a","port":1}`, "data is JSON, not host:port"},
		{"nerve without port", Codec{}, "x", `{"host":"a"}`, "(nerve): malformed node: port missing"},
		{"nerve bad port", Codec{}, "x", `{"host":"10.0.0.1","port":"http","name":"i-1"}`, `(nerve): malformed node: port: "http" is not a number`},
		{"nerve without host", Codec{}, "x", `{"port":80,"weight":2}`, "(nerve): malformed node: empty host"},
		{"curator bad JSON", Codec{Format: FormatCurator}, "x", `{"address":1}`, "invalid Curator JSON"},
		{"curator missing port", Codec{}, "x", `{"address":"10.0.0.1","sslPort":443}`, "port missing"},
		{"curator null port", Codec{}, "x", `{"address":"10.0.0.1","port":null}`, "port missing"},
		{"curator port out of range", Codec{}, "x", `{"address":"10.0.0.1","port":65536}`, "port 65536 is out of range"},
		{"curator port fraction", Codec{}, "x", `{"address":"10.0.0.1","port":80.5}`, "port 80.5 is out of range"},
		{"curator empty address", Codec{}, "x", `{"address":"","port":80}`, "empty host"},
		{"curator no ssl port", Codec{SSL: true}, "x", `{"address":"10.0.0.1","port":80,"sslPort":null}`, "sslPort missing"},
		{"curator weight zero", Codec{}, "x", `{"address":"h","port":80,"payload":{"weight":0}}`, "weight 0 must be at least 1"},
		{"curator weight text", Codec{}, "x", `{"address":"h","port":80,"payload":{"weight":"five"}}`, "weight: \"five\" is not a number"},
		{"curator weight object", Codec{}, "x", `{"address":"h","port":80,"payload":{"weight":{}}}`, "is not a number"},
		{"curator metadata weight negative", Codec{}, "x", `{"address":"h","port":80,"payload":{"metadata":{"weight":"-1"}}}`, "weight -1 must be at least 1"},
		{"serverset missing status", Codec{}, "x", `{"serviceEndpoint":{"host":"h","port":1}}`, "status missing"},
		{"serverset null endpoint", Codec{}, "x", `{"serviceEndpoint":null,"status":"ALIVE"}`, "serviceEndpoint missing"},
		{"serverset missing port", Codec{}, "x", `{"serviceEndpoint":{"host":"h"},"status":"ALIVE"}`, "serviceEndpoint.port missing"},
		{"serverset missing named endpoint", Codec{EndpointName: "http"}, "x", `{"serviceEndpoint":{"host":"h","port":1},"status":"ALIVE"}`, "additionalEndpoints.http missing"},
		{"serverset empty host", Codec{}, "x", `{"serviceEndpoint":{"host":"","port":1},"status":"ALIVE"}`, "empty host"},
		{"plain by configuration", Codec{Format: FormatPlain}, "c2f4b0a8", "", `(plain): malformed node: node name "c2f4b0a8" is not host:port`},
		{"nerve bad JSON", Codec{Format: FormatNerve}, "x", `{"host":1,"port":80}`, "invalid Nerve JSON"},
		{"nerve missing port", Codec{Format: FormatNerve}, "x", `{"host":"10.0.0.1","name":"i-1"}`, "port missing"},
		{"nerve port text", Codec{Format: FormatNerve}, "x", `{"host":"10.0.0.1","port":"http"}`, `port: "http" is not a number`},
		{"nerve port out of range", Codec{Format: FormatNerve}, "x", `{"host":"10.0.0.1","port":0}`, "port 0 is out of range"},
		{"nerve missing host", Codec{Format: FormatNerve}, "x", `{"port":80,"name":"i-1"}`, "empty host"},
		{"nerve bad host", Codec{Format: FormatNerve}, "x", `{"host":"a/b","port":80}`, "neither an IP address nor a host name"},
		{"nerve weight negative", Codec{Format: FormatNerve}, "x", `{"host":"h","port":80,"weight":-1}`, "weight -1 must be at least 1"},
		{"nerve weight fraction", Codec{Format: FormatNerve}, "x", `{"host":"h","port":80,"weight":0.5}`, "weight 0.5 is not an integer"},
		{"nerve weight too big", Codec{Format: FormatNerve}, "x", `{"host":"h","port":80,"weight":5000}`, "over the maximum 1000"},
		{"nerve weight text", Codec{Format: FormatNerve}, "x", `{"host":"h","port":80,"weight":"heavy"}`, `weight: "heavy" is not a number`},
		{"nerve is not curator", Codec{Format: FormatNerve}, "x", `{"address":"10.0.0.1","port":80}`, "empty host"},
		{"oversized", Codec{}, "x", `{"address":"h","port":80,"payload":{"pad":"` + strings.Repeat("x", MaxNodeData) + `"}}`, "over the 65536-byte limit"},
		{"unknown format", Codec{Format: "yaml"}, "x", "h:1", `unknown node format "yaml"`},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			p := "/services/echo/" + tt.name
			ep, err := tt.codec.Decode(p, []byte(tt.data))
			if err == nil {
				t.Fatalf("Decode(%q) = %+v, want an error", tt.data, ep)
			}
			if tt.codec.Format != "yaml" && !errors.Is(err, ErrMalformed) {
				t.Errorf("err = %v, want it to wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("err = %q, want it to name %s and say %q", err, p, tt.reason)
			}
		})
	}
}

// TestDetectFormat: in FormatAuto each format is recognised by its fields,
// and the fields Curator and Nerve share (name, port) decide nothing.
func TestDetectFormat(t *testing.T) {
	tests := []struct {
		desc, name, data string
		want             Format
	}{
		{"plain name", "10.0.0.1:8080", "", FormatPlain},
		{"plain data", "x", "10.0.0.2:9090,3", FormatPlain},
		{"plain IPv6", "[::1]:80", "\n", FormatPlain},
		{"plain bad port", "x", "10.0.0.1:http", FormatPlain},
		{"curator Spring", "x", string(golden(t, "curator_spring.json")), FormatCurator},
		{"curator HashMap", "x", string(golden(t, "curator_hashmap_weight.json")), FormatCurator},
		{"curator disabled", "x", string(golden(t, "curator_disabled.json")), FormatCurator},
		{"curator minimal", "x", `{"address":"10.0.0.1","port":80}`, FormatCurator},
		{"curator with name", "x", `{"name":"echo","address":"10.0.0.1","port":80}`, FormatCurator},
		{"curator without address", "x", `{"name":"echo","id":"c2f4","port":80,"serviceType":"DYNAMIC"}`, FormatCurator},
		{"serverset Aurora", "member_0000000001", string(golden(t, "serverset_aurora.json")), FormatServerSet},
		{"serverset stopping", "member_0000000002", string(golden(t, "serverset_stopping.json")), FormatServerSet},
		{"serverset without serviceEndpoint", "x", `{"status":"ALIVE","shard":1}`, FormatServerSet},
		{"nerve labels", "i-0a1b2c3d_0000000007", string(golden(t, "nerve_labels.json")), FormatNerve},
		{"nerve minimal", "i-0123_0000000001", string(golden(t, "nerve_minimal.json")), FormatNerve},
		{"nerve drained", "x", string(golden(t, "nerve_drained.json")), FormatNerve},
		{"nerve host and port", "x", `{"host":"10.0.0.1","port":80}`, FormatNerve},
		{"nerve name and port", "x", `{"host":"10.0.0.1","port":80,"name":"i-1"}`, FormatNerve},
		{"nerve keys in capitals", "x", `{"Host":"10.0.0.1","Port":80}`, FormatNerve},
		{"nerve without host", "x", `{"port":80,"labels":{"az":"a"}}`, FormatNerve},
		// Both defining fields: the earlier format wins, as before Nerve.
		{"serviceEndpoint before host", "x", `{"serviceEndpoint":{"host":"h","port":1},"host":"h","status":"ALIVE"}`, FormatServerSet},
		{"address before host", "x", `{"address":"10.0.0.1","host":"10.0.0.2","port":80}`, FormatCurator},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got, err := detect(tt.name, []byte(tt.data))
			if err != nil || got != tt.want {
				t.Fatalf("detect = %q, %v; want %q", got, err, tt.want)
			}
			// Decode says so too, whether or not the node is usable.
			ep, err := Codec{}.Decode("/services/svc/"+tt.name, []byte(tt.data))
			if err == nil && ep.Meta["format"] != string(tt.want) {
				t.Errorf("Decode: Meta[format] = %q, want %q", ep.Meta["format"], tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), "("+string(tt.want)+")") {
				t.Errorf("Decode: err = %v, want it to name %s", err, tt.want)
			}
		})
	}
}

// TestDecodeUnknownFormat: in FormatAuto, a node no format claims is
// reported as such, naming the formats tried and why none fits.
func TestDecodeUnknownFormat(t *testing.T) {
	const prefix = "discovery: node /services/x/abc: not a plain, curator, serverset or nerve node: "
	tests := []struct{ data, reason string }{
		{"", `node name "abc" is not host:port[,weight] and the node has no data`},
		{"hello", `data "hello" is neither host:port[,weight] nor a JSON object`},
		{`[{"host":"10.0.0.1","port":80}]`, `data "[{\"host\":\"10.0.0.1\",\"port\":80}]" is neither host:port[,weight] nor a JSON object`},
		{`{"host":`, "invalid JSON: unexpected end of JSON input"},
		{`{}`, "the JSON object has none of the fields serviceEndpoint (serverset), address (curator) or host (nerve)"},
		{`{"name":"i-1","port":80}`, "the JSON object has none of the fields serviceEndpoint (serverset), address (curator) or host (nerve)"},
		{`{"status":"ALIVE","port":80,"weight":2}`, "the JSON object has fields of serverset and nerve but none of serviceEndpoint (serverset), address (curator) or host (nerve)"},
	}
	for _, tt := range tests {
		_, err := Codec{}.Decode("/services/x/abc", []byte(tt.data))
		if err == nil || err.Error() != prefix+tt.reason {
			t.Errorf("Decode(%q) err =\n %v\nwant\n %s", tt.data, err, prefix+tt.reason)
			continue
		}
		if !errors.Is(err, ErrUnknownFormat) || !errors.Is(err, ErrMalformed) || errors.Is(err, ErrNotServing) {
			t.Errorf("Decode(%q) err = %v: want ErrUnknownFormat and ErrMalformed", tt.data, err)
		}
	}
	// A configured format reports its own error, never an unknown format.
	for _, f := range nodeFormats {
		_, err := Codec{Format: f}.Decode("/services/x/abc", []byte("hello"))
		if err == nil || errors.Is(err, ErrUnknownFormat) || !errors.Is(err, ErrMalformed) {
			t.Errorf("format %s: err = %v, want a malformed %s node", f, err, f)
		}
	}
}

func TestDecodeMetaBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"address":"h","port":80,"payload":{"@class":"java.util.HashMap"`)
	for i := range 100 {
		b.WriteString(`,"k` + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + `":"v"`)
	}
	b.WriteString(`,"long":"` + strings.Repeat("v", maxMetaValue+1) + `"}}`)
	ep, err := Codec{}.Decode("/s/x", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(ep.Meta) > maxMetaEntries+1 {
		t.Errorf("Meta has %d entries, want at most %d", len(ep.Meta), maxMetaEntries+1)
	}
	if _, ok := ep.Meta["payload.long"]; ok {
		t.Error("an over-long payload value was copied into Meta")
	}
	if _, ok := ep.Meta["payload.@class"]; ok {
		t.Error("@class was copied into Meta")
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"": FormatAuto, "auto": FormatAuto, "Curator": FormatCurator, " plain ": FormatPlain, "serverset": FormatServerSet, "Nerve": FormatNerve} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	const want = `discovery: unknown node format "json" (want auto, plain, curator, serverset or nerve)`
	if _, err := ParseFormat("json"); err == nil || err.Error() != want {
		t.Errorf("ParseFormat(json) err = %v, want %s", err, want)
	}
}

func TestEncodeCuratorRoundTrip(t *testing.T) {
	data, err := encodeCurator("echo", "id-1", "10.0.0.5", 8080, 4, map[string]string{"zone": "a"}, fixedTime)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"sslPort":null`, `"@class":"java.util.HashMap"`, `"weight":"4"`, `"serviceType":"DYNAMIC"`, `"registrationTimeUTC":1700000000000`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("encoded %s lacks %s", data, want)
		}
	}
	ep, err := Codec{}.Decode("/services/echo/id-1", data)
	if err != nil {
		t.Fatal(err)
	}
	if ep.Addr != "10.0.0.5:8080" || ep.Weight != 4 || ep.Meta["format"] != "curator" || ep.Meta["payload.zone"] != "a" || ep.Meta["curator.id"] != "id-1" {
		t.Errorf("round trip = %+v", ep)
	}
}
