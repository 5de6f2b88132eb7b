package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zkgate/zkgate/discovery"
	"github.com/zkgate/zkgate/internal/zktest"
)

// snapshotStartBound is how soon a gateway restarted during a ZooKeeper
// outage must route from its membership snapshot (the task's figure).
const snapshotStartBound = time.Second

// echoAddr sends one request to the echo route and returns the status and
// the address of the backend that answered ("" unless 200).
func echoAddr(gw *gateway) (int, string) {
	resp, err := gw.client.Get(gw.url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body struct {
		Addr string `json:"addr"`
	}
	_ = json.Unmarshal(raw, &body)
	return resp.StatusCode, body.Addr
}

// stopGateway stops gw with SIGTERM and waits for it to exit.
func stopGateway(t *testing.T, gw *gateway) {
	t.Helper()
	if err := gw.proc.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !gw.proc.wait(stopGrace) {
		t.Fatalf("gateway still running %v after SIGTERM", stopGrace)
	}
}

// TestRestartDuringOutageRoutesFromSnapshot runs a gateway with
// zookeeper.snapshot_file, cuts it off ZooKeeper, and restarts it: the new
// process routes to the members of the snapshot within a second of its
// start, reporting them stale with their age (API and metric); a member
// added during the outage appears once ZooKeeper is back. A corrupted
// snapshot is then ignored with a message naming the file and the problem.
// The backends reach ZooKeeper directly and stay registered: the outage is
// the gateway's alone.
func TestRestartDuringOutageRoutesFromSnapshot(t *testing.T) {
	row := scenario(t, "10 restart during an outage: routed from the snapshot")
	zks := zktest.Start(t)
	cut := zktest.NewProxy(t, zks.Addr())
	e := &env{servers: []string{zks.Addr()}, conn: zktest.Connect(t, zks.Addr())}
	ensurePath(t, e.conn, servicePath)
	e.members = trackChildren(t, e.conn, servicePath)
	e.procs = newProcs(t)
	snapFile := filepath.Join(t.TempDir(), "membership.json")
	cfg := gatewayConfig{ZooKeeper: []string{cut.Addr()}, SnapshotFile: snapFile}
	e.gw = startGateway(t, e.procs, cfg)

	s1, s2 := e.backend(t, "s1"), e.backend(t, "s2")
	known := []string{s1.addr, s2.addr}
	slices.Sort(known)
	e.awaitEndpoints(t, 2)
	await(t, 10*time.Second, func() bool {
		s, err := discovery.ReadSnapshot(snapFile)
		if err != nil {
			return false
		}
		eps, _, _, err := s.Service("echo", servicePath)
		return err == nil && len(eps) == 2
	}, "the snapshot to hold both members")

	// The outage, then the restart.
	cut.Cut()
	stopGateway(t, e.gw)
	s3 := e.backend(t, "s3") // joins while the gateway cannot see ZooKeeper
	e.registeredAt(t, s3)

	started := time.Now()
	e.gw = launchGateway(t, e.procs, cfg)
	var firstOK time.Duration
	await(t, startWait, func() bool {
		if e.gw.proc.exited() {
			t.Fatalf("gateway exited (%s):\n%s", e.gw.proc.state(), tail(e.gw.proc.stderr, tailLines))
		}
		code, addr := echoAddr(e.gw)
		if code == http.StatusOK {
			firstOK = time.Since(started)
			if !slices.Contains(known, addr) {
				t.Errorf("answered by %s during the outage; want one of the snapshot's members %v", addr, known)
			}
		}
		return code == http.StatusOK
	}, "a 200 from the restarted gateway")
	if firstOK > snapshotStartBound {
		t.Errorf("first 200 %v after the start; want within %v", firstOK, snapshotStartBound)
	}
	for range 10 {
		if code, addr := echoAddr(e.gw); code != http.StatusOK || !slices.Contains(known, addr) {
			t.Fatalf("during the outage: %d from %q; want 200 from one of %v", code, addr, known)
		}
	}
	svc := e.gw.service(t)
	if !svc.Stale || svc.Synced || svc.Snapshot == nil || svc.Snapshot.AgeSeconds <= 0 || svc.Counts.Total != 2 {
		t.Errorf("/api/services/echo during the outage: stale %v synced %v snapshot %+v endpoints %d; want stale, unsynced, the snapshot's 2 with their age",
			svc.Stale, svc.Synced, svc.Snapshot, svc.Counts.Total)
	}
	z := e.gw.zooKeeper(t)
	if z.Snapshot == nil || !z.Snapshot.Loaded || z.Snapshot.Path != snapFile || !slices.Equal(z.Snapshot.Seeded, []string{"echo"}) {
		t.Errorf("/api/zookeeper snapshot during the outage: %+v; want loaded from %s, echo seeded", z.Snapshot, snapFile)
	}
	if age, ok := e.gw.metric(t, `zkgate_membership_snapshot_age_seconds{service="echo"}`); !ok || age <= 0 {
		t.Errorf("zkgate_membership_snapshot_age_seconds{service=\"echo\"} = %v, %v; want a positive age", age, ok)
	}

	// ZooKeeper returns: the live view replaces the snapshot's.
	cut.Restore()
	restored := time.Now()
	e.awaitEndpoints(t, 3)
	converged := time.Since(restored)
	if svc := e.gw.service(t); svc.Stale || !svc.Synced || svc.Snapshot != nil {
		t.Errorf("/api/services/echo after ZooKeeper returned: stale %v synced %v snapshot %+v; want live", svc.Stale, svc.Synced, svc.Snapshot)
	}
	if _, ok := e.gw.metric(t, `zkgate_membership_snapshot_age_seconds{service="echo"}`); ok {
		t.Error("zkgate_membership_snapshot_age_seconds still exported after the first read")
	}
	await(t, 10*time.Second, func() bool {
		code, addr := echoAddr(e.gw)
		return code == http.StatusOK && addr == s3.addr
	}, "a request routed to %s, added during the outage", s3.addr)
	await(t, 10*time.Second, func() bool {
		s, err := discovery.ReadSnapshot(snapFile)
		if err != nil {
			return false
		}
		eps, _, _, err := s.Service("echo", servicePath)
		return err == nil && len(eps) == 3
	}, "the snapshot to hold the three members")

	// A corrupted snapshot is ignored, with the file and the problem.
	stopGateway(t, e.gw)
	data, err := os.ReadFile(snapFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(snapFile, data[:len(data)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	cut.Cut()
	e.gw = launchGateway(t, e.procs, cfg)
	await(t, startWait, func() bool {
		code, _ := echoAddr(e.gw)
		return code == http.StatusServiceUnavailable
	}, "503 from a gateway without ZooKeeper and without a usable snapshot")
	log, _ := os.ReadFile(e.gw.proc.stderr)
	if !strings.Contains(string(log), "membership snapshot ignored") || !strings.Contains(string(log), snapFile) ||
		!strings.Contains(string(log), "not valid JSON") {
		t.Errorf("the log does not report the corrupted snapshot with its path and problem:\n%s", tail(e.gw.proc.stderr, tailLines))
	}
	if z := e.gw.zooKeeper(t); z.Snapshot == nil || z.Snapshot.Loaded || !strings.Contains(z.Snapshot.Problem, snapFile) {
		t.Errorf("/api/zookeeper snapshot with a corrupted file: %+v; want not loaded, the problem naming %s", z.Snapshot, snapFile)
	}
	cut.Restore()
	await(t, 30*time.Second, func() bool { code, _ := echoAddr(e.gw); return code == http.StatusOK }, "a 200 once ZooKeeper answers")

	row.note("first 200 %v after the restart during the outage (bound %v); converged %v after ZooKeeper returned",
		firstOK.Round(time.Millisecond), snapshotStartBound, converged.Round(time.Millisecond))
	t.Logf("first 200 %v after the start; converged %v after ZooKeeper returned", firstOK, converged)
}
