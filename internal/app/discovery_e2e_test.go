package app

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/zkgate/zkgate/internal/admin"
	"github.com/zkgate/zkgate/internal/zktest"
)

// TestDiscoveryFilterAndPropagation runs a gateway over a real ZooKeeper with
// a metadata filter: only the member labelled zone a is routed to, the admin
// API counts the other as filtered, and the propagation lag of the
// registrations shows in the metrics and in the admin API.
func TestDiscoveryFilterAndPropagation(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	conn := zktest.Connect(t, srv.Addr())
	service := `  echo:
    discovery: { zookeeper: { path: /services/echo, filter: { zone: a } } }
    health_check: { passive: { max_failures: 0 } }`
	g := startGateway(t, srv.Addr(), echoRoute, service)

	a, b := backend(t, "a"), backend(t, "b")
	for _, p := range []string{"/services", "/services/echo"} {
		if _, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	nerve := func(name, addr, zone string) {
		host, port, _ := net.SplitHostPort(addr)
		data := fmt.Sprintf(`{"host":%q,"port":%s,"name":%q,"labels":{"zone":%q}}`, host, port, name, zone)
		if _, err := conn.Create("/services/echo/"+name+"_", []byte(data), zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	nerve("a", hostPort(a), "a")
	nerve("b", hostPort(b), "b")

	var svc admin.ServiceInfo
	zktest.WaitFor(t, 10*time.Second, func() bool {
		_, body := get(t, g.admin+"/api/services/echo")
		svc = admin.ServiceInfo{}
		return json.Unmarshal([]byte(body), &svc) == nil && svc.Discovery.Filtered == 1 && len(svc.Endpoints) == 1
	}, "one endpoint and one filtered member in the admin API")
	if svc.Endpoints[0].Addr != hostPort(a) {
		t.Fatalf("endpoint %s, want a at %s", svc.Endpoints[0].Addr, hostPort(a))
	}
	for range 10 {
		if _, body := get(t, g.proxy+"/echo/"); body != "a /" {
			t.Fatalf("routed to %q, want only a", body)
		}
	}
	lag := svc.Discovery.LastPropagationSeconds
	if lag == nil || *lag < 0 || *lag > 10 {
		t.Fatalf("last_propagation_seconds %v, want a value in [0, 10]", lag)
	}

	// a's registration was published; b's node was read too but changed
	// nothing published, so it is not measured.
	countRe := regexp.MustCompile(`zkgate_discovery_propagation_seconds_count\{service="echo"\} (\d+)`)
	sumRe := regexp.MustCompile(`zkgate_discovery_propagation_seconds_sum\{service="echo"\} (\S+)`)
	_, body := get(t, g.admin+"/metrics")
	m, s := countRe.FindStringSubmatch(body), sumRe.FindStringSubmatch(body)
	if m == nil || s == nil {
		t.Fatalf("no propagation histogram for echo in /metrics:\n%s", grepLines(body, "propagation"))
	}
	n, _ := strconv.Atoi(m[1])
	sum, _ := strconv.ParseFloat(s[1], 64)
	if n < 1 || n > 2 || sum < 0 || sum > 10*float64(n) {
		t.Fatalf("propagation histogram count %d sum %v, want 1 or 2 observations of sane size", n, sum)
	}
}
