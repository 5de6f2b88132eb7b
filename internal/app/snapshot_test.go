package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/discovery"
	"github.com/zkgate/zkgate/internal/admin"
	"github.com/zkgate/zkgate/internal/zktest"
)

// TestSnapshotSeedsOnlyTheSamePath starts a gateway that cannot reach
// ZooKeeper, with a snapshot holding two services: "stay", still watched at
// the path of the snapshot, is routed to the snapshot's member; "echo", whose
// configuration now watches another path, is not (503), and the log names
// both paths.
func TestSnapshotSeedsOnlyTheSamePath(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	cut := zktest.NewProxy(t, srv.Addr())
	cut.Cut()

	a, b := backend(t, "a"), backend(t, "b")
	snapFile := filepath.Join(t.TempDir(), "membership.json")
	log := logrus.New()
	w := discovery.NewSnapshotWriter(snapFile, discovery.SnapshotWriterOptions{}, log)
	w.Record("echo", "/services/echo", []balancer.Endpoint{{ID: "/services/echo/a", Addr: hostPort(a), Weight: 1}})
	w.Record("stay", "/services/stay", []balancer.Endpoint{{ID: "/services/stay/b", Addr: hostPort(b), Weight: 1}})
	w.Close()

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "gateway.yaml")
	pp, ap := zktest.FreePort(t), zktest.FreePort(t)
	writeConfig(t, cfgPath, cut.Addr(), pp, ap, echoRoute+`
  - name: stay
    match: { path_prefix: /stay }
    service: stay
    balancer: round_robin`, `  echo:
    discovery: { zookeeper: { path: /services/echo-v2 } }
  stay:
    discovery: { zookeeper: { path: /services/stay } }`)
	// The shared helper has no snapshot key: set it through the
	// environment, as the demo does.
	t.Setenv("ZKGATE_ZOOKEEPER_SNAPSHOT_FILE", snapFile)
	proxyURL, adminURL := fmt.Sprintf("http://127.0.0.1:%d", pp), fmt.Sprintf("http://127.0.0.1:%d", ap)
	logBuf := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, cfgPath, logBuf) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("gateway did not stop within 30s")
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", logBuf.String())
		}
	})

	zktest.WaitFor(t, 10*time.Second, func() bool { return statusOf(proxyURL+"/stay/") == http.StatusOK },
		"the seeded service routed without ZooKeeper")
	if code, body := get(t, proxyURL+"/stay/"); code != http.StatusOK || !strings.HasPrefix(body, "b ") {
		t.Errorf("GET /stay/ = %d %q; want 200 from b, the snapshot's member", code, body)
	}
	if code, body := get(t, proxyURL+"/echo/"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /echo/ = %d %q; want 503: the snapshot's echo was read at another path", code, body)
	}
	if !strings.Contains(logBuf.String(), "written for /services/echo, the service is now watched at /services/echo-v2") {
		t.Errorf("the log does not say why echo was not seeded:\n%s", grepLines(logBuf.String(), "snapshot"))
	}
	_, body := get(t, adminURL+"/api/zookeeper")
	var z admin.ZooKeeperInfo
	if err := json.Unmarshal([]byte(body), &z); err != nil {
		t.Fatal(err)
	}
	if z.Snapshot == nil || !z.Snapshot.Loaded || len(z.Snapshot.Seeded) != 1 || z.Snapshot.Seeded[0] != "stay" {
		t.Errorf("/api/zookeeper snapshot = %+v; want loaded, only stay seeded", z.Snapshot)
	}
}
