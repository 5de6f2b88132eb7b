package discovery

import (
	"strconv"
	"strings"
	"testing"

	"github.com/go-zookeeper/zk"
	"github.com/zkgate/zkgate/internal/zktest"
)

func TestFilterMatch(t *testing.T) {
	tests := []struct {
		filter map[string]string
		meta   map[string]string
		want   bool
	}{
		{nil, map[string]string{"format": "plain"}, true},
		{map[string]string{"zone": "a"}, map[string]string{"payload.zone": "a"}, true},
		{map[string]string{"zone": "a"}, map[string]string{"payload.zone": "ab"}, false}, // plain value: exact
		{map[string]string{"zone": "a"}, map[string]string{"labels.zone": "b"}, false},
		{map[string]string{"zone": "a"}, map[string]string{"format": "nerve"}, false}, // key absent
		{map[string]string{"version": `^2\.`}, map[string]string{"labels.version": "2.4.1"}, true},
		{map[string]string{"version": `^2\.`}, map[string]string{"labels.version": "12.0"}, false},
		{map[string]string{"version": `2\.`}, map[string]string{"labels.version": "12.0"}, true}, // unanchored
		{map[string]string{"version": `^2\.4$`}, map[string]string{"labels.version": "2.4.1"}, false},
		{map[string]string{"instancegroup": "blue"}, map[string]string{"metadata.instanceGroup": "blue"}, true}, // case-insensitive key
		{map[string]string{"shard": "3", "endpoint": "http"}, map[string]string{"serverset.shard": "3", "serverset.endpoint": "http"}, true},
		{map[string]string{"shard": "3", "endpoint": "http"}, map[string]string{"serverset.shard": "3"}, false},
		{map[string]string{"zone": "a"}, map[string]string{"zone": "a", "payload.zone": "b"}, true},        // the unprefixed key first
		{map[string]string{"zone": "a"}, map[string]string{"labels.zone": "b", "payload.zone": "a"}, true}, // payload before labels
	}
	for _, tt := range tests {
		f, err := NewFilter(tt.filter)
		if err != nil {
			t.Fatalf("NewFilter(%v): %v", tt.filter, err)
		}
		if got := f.Match(tt.meta); got != tt.want {
			t.Errorf("filter %v on %v = %v, want %v", tt.filter, tt.meta, got, tt.want)
		}
	}
}

func TestFilterInvalid(t *testing.T) {
	_, err := NewFilter(map[string]string{"zone": "a", "version": "^(2"})
	if err == nil || !strings.Contains(err.Error(), "filter.version: invalid regular expression") {
		t.Fatalf("NewFilter with ^(2: error %v, want one naming filter.version", err)
	}
}

// testConfFilter publishes only the members whose metadata matches, for each
// codec's metadata: Curator payload, Nerve labels, ServerSet shard and
// additional endpoint; and follows a member whose data comes to match.
func testConfFilter(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	curator := func(port int, payload string) string {
		return `{"name":"svc","id":"x","address":"127.0.0.1","port":` + strconv.Itoa(port) + `,"payload":` + payload + `}`
	}
	nerve := func(port int, labels string) string {
		return `{"host":"127.0.0.1","port":` + strconv.Itoa(port) + `,"name":"n","labels":` + labels + `}`
	}
	serverset := func(port, shard int) string {
		return `{"serviceEndpoint":{"host":"127.0.0.1","port":1},"additionalEndpoints":{"http":{"host":"127.0.0.1","port":` + strconv.Itoa(port) + `}},"status":"ALIVE","shard":` + strconv.Itoa(shard) + `}`
	}
	filter := func(m map[string]string) Filter {
		f, err := NewFilter(m)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}

	t.Run("zone", func(t *testing.T) {
		p := testPath(t)
		mkdirs(t, raw, p)
		create(t, raw, p+"/c1", curator(7001, `{"zone":"a"}`), zk.FlagEphemeral)
		create(t, raw, p+"/c2", curator(7002, `{"zone":"ab"}`), zk.FlagEphemeral)
		create(t, raw, p+"/c3", curator(7003, `{"@class":"java.util.HashMap","metadata":{"zone":"a"}}`), zk.FlagEphemeral)
		create(t, raw, p+"/n1", nerve(7004, `{"zone":"a"}`), zk.FlagEphemeral)
		create(t, raw, p+"/n2", nerve(7005, `{"zone":"b"}`), zk.FlagEphemeral)
		create(t, raw, p+"/127.0.0.1:7006", "", zk.FlagEphemeral) // plain: no zone
		z, r, sink := watch(t, c, p, ZkConfOptions{Filter: filter(map[string]string{"zone": "a"})})
		r.awaitAddrs(t, "127.0.0.1:7001", "127.0.0.1:7003", "127.0.0.1:7004")
		if st := z.Stats(); st.Filtered != 3 || st.Malformed != 0 {
			t.Errorf("stats %+v: want 3 filtered, none malformed", st)
		}
		if n := sink.count("n2"); n != 0 {
			t.Errorf("a filtered-out member was warned about %d times", n)
		}
		// A member whose metadata comes to match is published.
		if _, err := raw.Set(p+"/n2", []byte(nerve(7005, `{"zone":"a"}`)), -1); err != nil {
			t.Fatal(err)
		}
		r.awaitAddrs(t, "127.0.0.1:7001", "127.0.0.1:7003", "127.0.0.1:7004", "127.0.0.1:7005")
		waitFor(t, "2 filtered", func() bool { return z.Stats().Filtered == 2 })
	})

	t.Run("version", func(t *testing.T) {
		p := testPath(t)
		mkdirs(t, raw, p)
		create(t, raw, p+"/n1", nerve(7101, `{"version":"2.4.1"}`), zk.FlagEphemeral)
		create(t, raw, p+"/n2", nerve(7102, `{"version":"12.0"}`), zk.FlagEphemeral)
		create(t, raw, p+"/c1", curator(7103, `{"version":"2.0"}`), zk.FlagEphemeral)
		create(t, raw, p+"/c2", curator(7104, `{"version":"3.0"}`), zk.FlagEphemeral)
		z, r, _ := watch(t, c, p, ZkConfOptions{Format: FormatAuto, Filter: filter(map[string]string{"version": `^2\.`})})
		r.awaitAddrs(t, "127.0.0.1:7101", "127.0.0.1:7103")
		if st := z.Stats(); st.Filtered != 2 {
			t.Errorf("stats %+v: want 2 filtered", st)
		}
	})

	t.Run("serverset", func(t *testing.T) {
		p := testPath(t)
		mkdirs(t, raw, p)
		create(t, raw, p+"/member_", serverset(7201, 3), zk.FlagEphemeral|zk.FlagSequence)
		create(t, raw, p+"/member_", serverset(7202, 4), zk.FlagEphemeral|zk.FlagSequence)
		z, r, _ := watch(t, c, p, ZkConfOptions{Format: FormatServerSet, EndpointName: "http",
			Filter: filter(map[string]string{"shard": "3", "endpoint": "http"})})
		r.awaitAddrs(t, "127.0.0.1:7201")
		if st := z.Stats(); st.Filtered != 1 {
			t.Errorf("stats %+v: want 1 filtered", st)
		}
	})
}
