package discovery

import (
	"errors"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var fixedTime = time.UnixMilli(1700000000000)

// FuzzDecode checks that no node data makes a codec panic, that every error
// is classified (malformed or not serving) and names the znode, that an
// unknown format is only ever reported by auto detection, and that every
// endpoint is usable: a valid address, a weight in range, the format
// recorded, and the same result from auto detection as from the format it
// detected.
func FuzzDecode(f *testing.F) {
	for _, file := range []string{
		"curator_spring.json", "curator_spring_out_of_service.json", "curator_hashmap_weight.json",
		"curator_disabled.json", "serverset_aurora.json", "serverset_stopping.json",
		"nerve_labels.json", "nerve_minimal.json", "nerve_drained.json",
	} {
		f.Add("member_0000000001", golden(f, file), false)
	}
	f.Add("10.0.0.1:8080", []byte(""), false)
	f.Add("x", []byte("10.0.0.1:8080,5"), false)
	f.Add("[::1]:80", []byte(nil), true)
	f.Add("x", []byte(`{"address":"h","port":"80","payload":{"weight":"5"}}`), true)
	f.Add("x", []byte(`{"serviceEndpoint":{"host":"h","port":1},"status":"ALIVE","metadata":{"weight":2}}`), false)
	f.Add("i-0a1b_0000000001", []byte(`{"host":"h","port":"80","weight":"3","labels":{"az":"a","n":1}}`), false)
	f.Add("abc", []byte(`{"name":"i-1","port":80}`), false)
	f.Fuzz(func(t *testing.T, name string, data []byte, ssl bool) {
		p := "/services/fuzz/" + name
		auto := Codec{SSL: ssl, EndpointName: ""}
		ep, err := auto.Decode(p, data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotServing) {
				t.Fatalf("unclassified error: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "discovery: node "+p+" ") && !strings.HasPrefix(err.Error(), "discovery: node "+p+":") {
				t.Fatalf("error does not name %s first: %v", p, err)
			}
			for _, f := range nodeFormats {
				if _, ferr := (Codec{Format: f, SSL: ssl}).Decode(p, data); errors.Is(ferr, ErrUnknownFormat) {
					t.Fatalf("format %s reported an unknown format: %v", f, ferr)
				}
			}
			return
		}
		host, port, serr := net.SplitHostPort(ep.Addr)
		if serr != nil || host == "" {
			t.Fatalf("Addr %q is not host:port: %v", ep.Addr, serr)
		}
		if n, perr := strconv.Atoi(port); perr != nil || n < 1 || n > 65535 {
			t.Fatalf("Addr %q has port out of range", ep.Addr)
		}
		if ep.Weight < 1 || ep.Weight > MaxWeight {
			t.Fatalf("weight %d out of range", ep.Weight)
		}
		if ep.ID != p {
			t.Fatalf("ID = %q, want %q", ep.ID, p)
		}
		f := Format(ep.Meta["format"])
		if !slices.Contains(nodeFormats, f) {
			t.Fatalf("Meta[format] = %q", f)
		}
		explicit, err := Codec{Format: f, SSL: ssl}.Decode(p, data)
		if err != nil || explicit.Addr != ep.Addr || explicit.Weight != ep.Weight || !maps.Equal(explicit.Meta, ep.Meta) {
			t.Fatalf("auto gave %+v, explicit %s gave %+v, %v", ep, f, explicit, err)
		}
	})
}
