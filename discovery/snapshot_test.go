package discovery

import (
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zkgate/zkgate/balancer"
)

// snapshotWriter returns a writer of a file in a fresh directory, closed
// when the test ends.
func snapshotWriter(t *testing.T, interval time.Duration) (*SnapshotWriter, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "membership.json")
	log, _ := testLog()
	w := NewSnapshotWriter(path, SnapshotWriterOptions{Interval: interval}, log)
	t.Cleanup(w.Close)
	return w, path
}

var snapEcho = []balancer.Endpoint{
	{ID: "/services/echo/a", Addr: "127.0.0.1:9001", Weight: 3, Meta: map[string]string{"format": "curator", "zone": "a"}},
	{ID: "/services/echo/b", Addr: "[::1]:9002", Weight: 1},
}

// readMembers reads the snapshot at path and returns the members of name
// at path p (nil when the file or the entry is missing).
func readMembers(t *testing.T, file, name, p string) []balancer.Endpoint {
	t.Helper()
	s, err := ReadSnapshot(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("ReadSnapshot: %v", err)
	}
	eps, _, _, err := s.Service(name, p)
	if err != nil {
		t.Fatalf("Service(%s, %s): %v", name, p, err)
	}
	return eps
}

func TestSnapshotRoundTrip(t *testing.T) {
	w, path := snapshotWriter(t, time.Hour)
	before := time.Now()
	w.Record("echo", "/services/echo", snapEcho)
	w.Record("empty", "/services/empty", []balancer.Endpoint{})
	w.Close()

	s, err := ReadSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Format != SnapshotFormat || s.Version != SnapshotVersion || s.Written.Before(before.Add(-time.Second)) {
		t.Errorf("format %q version %d written %v; want %q %d, after %v", s.Format, s.Version, s.Written, SnapshotFormat, SnapshotVersion, before)
	}
	eps, readAt, found, err := s.Service("echo", "/services/echo")
	if err != nil || !found {
		t.Fatalf("Service(echo): found %v, %v", found, err)
	}
	if !balancer.Equal(eps, snapEcho) {
		t.Errorf("members read back %+v, want %+v", eps, snapEcho)
	}
	if readAt.Before(before.Add(-time.Second)) || readAt.After(time.Now()) {
		t.Errorf("read_at %v, want the time of Record", readAt)
	}
	if eps, _, found, err := s.Service("empty", "/services/empty"); err != nil || !found || eps == nil || len(eps) != 0 {
		t.Errorf("Service(empty) = %v, %v, %v; want an empty, non-nil list", eps, found, err)
	}
	if _, _, found, err := s.Service("other", "/services/other"); found || err != nil {
		t.Errorf("Service(other) found %v, %v; want not found, no error", found, err)
	}
	// No temporary file is left beside the snapshot.
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("directory holds %d files, want only the snapshot: %v", len(ents), ents)
	}
}

// TestSnapshotOtherPathNotUsed: a service whose configuration now watches
// another path must not get the members of the old one.
func TestSnapshotOtherPathNotUsed(t *testing.T) {
	w, path := snapshotWriter(t, time.Hour)
	w.Record("echo", "/services/echo-v1", snapEcho)
	w.Close()
	s, err := ReadSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}
	eps, _, found, err := s.Service("echo", "/services/echo-v2")
	if eps != nil || !found || !errors.Is(err, ErrSnapshot) ||
		!strings.Contains(err.Error(), "/services/echo-v1") || !strings.Contains(err.Error(), "/services/echo-v2") {
		t.Errorf("Service(echo, other path) = %v, found %v, %v; want no members and an error naming both paths", eps, found, err)
	}
}

// TestSnapshotWritesCoalesced: a burst of changes is written at most once
// per interval, and the last change is written.
func TestSnapshotWritesCoalesced(t *testing.T) {
	w, path := snapshotWriter(t, 300*time.Millisecond)
	start := time.Now()
	var last []balancer.Endpoint
	for i := range 50 {
		last = []balancer.Endpoint{{ID: "/s/n", Addr: "127.0.0.1:" + strconv.Itoa(9000+i), Weight: 1}}
		w.Record("echo", "/s", last)
	}
	burst := time.Since(start)
	waitFor(t, "the last change written", func() bool { return balancer.Equal(readMembers(t, path, "echo", "/s"), last) })
	// One write may land in the burst, the one after it waits for the
	// interval: two at most, unless the burst itself lasted intervals.
	if n, most := w.Stats().Writes, 2+uint64(burst/(300*time.Millisecond)); n < 1 || n > most {
		t.Errorf("%d writes for a burst of 50 changes in %v; want 1 to %d", n, burst, most)
	}
}

// TestSnapshotCloseWritesPending: a change not written yet when the writer
// closes (it waits for the interval) is written by Close; without a change
// Close writes nothing.
func TestSnapshotCloseWritesPending(t *testing.T) {
	w, path := snapshotWriter(t, time.Hour)
	w.Record("echo", "/s", snapEcho[:1])
	waitFor(t, "the first write", func() bool { return w.Stats().Writes == 1 })
	w.Record("echo", "/s", snapEcho)
	if got := readMembers(t, path, "echo", "/s"); len(got) != 1 {
		t.Fatalf("the second change was written before the interval: %v", got)
	}
	w.Close()
	if got := readMembers(t, path, "echo", "/s"); !balancer.Equal(got, snapEcho) {
		t.Errorf("after Close the file holds %v, want the last change %v", addrsOf(got), addrsOf(snapEcho))
	}
	if n := w.Stats().Writes; n != 2 {
		t.Errorf("%d writes, want 2", n)
	}

	idle, idlePath := snapshotWriter(t, time.Hour)
	idle.Close()
	if _, err := os.Stat(idlePath); !errors.Is(err, fs.ErrNotExist) || idle.Stats().Writes != 0 {
		t.Errorf("a writer without changes wrote: stat %v, %d writes", err, idle.Stats().Writes)
	}
}

// TestSnapshotWriteFailureRetried: a write that fails (its directory is
// missing) is counted, names the file, and is retried until it works.
func TestSnapshotWriteFailureRetried(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "membership.json")
	log, sink := testLog()
	w := NewSnapshotWriter(path, SnapshotWriterOptions{Interval: 50 * time.Millisecond}, log)
	t.Cleanup(w.Close)
	w.Record("echo", "/s", snapEcho)
	waitFor(t, "a failed write", func() bool { return w.Stats().Errors >= 1 })
	if st := w.Stats(); !strings.Contains(st.LastError, path) || st.Writes != 0 {
		t.Errorf("stats %+v; want the last error naming %s and no write", st, path)
	}
	if sink.count("writing the membership snapshot failed") != 1 {
		t.Errorf("want one warning for the failing streak, got %d", sink.count("writing the membership snapshot failed"))
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the write retried", func() bool { return w.Stats().Writes == 1 })
	if got := readMembers(t, path, "echo", "/s"); !balancer.Equal(got, snapEcho) {
		t.Errorf("file holds %v, want %v", got, snapEcho)
	}
	if st := w.Stats(); st.LastError != "" {
		t.Errorf("LastError %q after a successful write, want empty", st.LastError)
	}
}

// TestSnapshotRetainAndKeep: entries kept from a previous snapshot are
// written again; Retain drops removed services and changed paths.
func TestSnapshotRetainAndKeep(t *testing.T) {
	w, path := snapshotWriter(t, time.Hour)
	old := SnapshotService{Path: "/s/old", ReadAt: time.Unix(1700000000, 0).UTC(), Members: []SnapshotMember{{Addr: "127.0.0.1:1", Weight: 1, ZNode: "/s/old/a"}}}
	w.Keep("kept", old)
	w.Keep("gone", old)
	w.Keep("moved", old)
	w.Record("echo", "/s", snapEcho)
	w.Keep("echo", old) // recorded already: not replaced
	w.Retain(map[string]string{"kept": "/s/old", "moved": "/s/new", "echo": "/s"})
	w.Close()
	s, err := ReadSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}
	names := slices.Sorted(maps.Keys(s.Services))
	if !slices.Equal(names, []string{"echo", "kept"}) {
		t.Errorf("services %v, want [echo kept]", names)
	}
	if got := s.Services["kept"]; !got.ReadAt.Equal(old.ReadAt) || len(got.Members) != 1 {
		t.Errorf("kept entry %+v, want %+v", got, old)
	}
	if got := s.Services["echo"]; len(got.Members) != 2 {
		t.Errorf("echo entry %+v, want the recorded members", got)
	}
}

func TestReadSnapshotRejects(t *testing.T) {
	valid := func() map[string]any {
		return map[string]any{
			"format": SnapshotFormat, "version": SnapshotVersion, "written": "2026-12-05T10:00:00Z",
			"services": map[string]any{"echo": map[string]any{
				"path": "/services/echo", "read_at": "2026-12-05T09:59:59Z",
				"members": []any{map[string]any{"addr": "127.0.0.1:9001", "weight": 1, "znode": "/services/echo/a"}},
			}},
		}
	}
	encode := func(edit func(m map[string]any)) string {
		m := valid()
		edit(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	member := func(m map[string]any) map[string]any {
		return m["services"].(map[string]any)["echo"].(map[string]any)["members"].([]any)[0].(map[string]any)
	}
	whole := encode(func(map[string]any) {})
	for _, tt := range []struct {
		name, content, problem string
	}{
		{"empty file", "", "not valid JSON"},
		{"truncated", whole[:len(whole)/2], "not valid JSON"},
		{"binary garbage", "\x00\x01\x02zkgate", "not valid JSON"},
		{"another program's JSON", `{"services": []}`, `format ""`},
		{"other format", encode(func(m map[string]any) { m["format"] = "nginx-upstreams" }), `format "nginx-upstreams"`},
		{"newer version", encode(func(m map[string]any) { m["version"] = 2 }), "version 2"},
		{"unknown field", encode(func(m map[string]any) { m["extra"] = true }), `unknown field "extra"`},
		{"data after it", whole + `{"format":"x"}`, "not valid JSON"},
		{"no time written", encode(func(m map[string]any) { delete(m, "written") }), "no time written"},
		{"relative path", encode(func(m map[string]any) {
			m["services"].(map[string]any)["echo"].(map[string]any)["path"] = "services/echo"
		}), "absolute znode path"},
		{"no read_at", encode(func(m map[string]any) { delete(m["services"].(map[string]any)["echo"].(map[string]any), "read_at") }), "no read_at"},
		{"address without port", encode(func(m map[string]any) { member(m)["addr"] = "127.0.0.1" }), `members[0].addr "127.0.0.1"`},
		{"port out of range", encode(func(m map[string]any) { member(m)["addr"] = "127.0.0.1:70000" }), `invalid port "70000"`},
		{"negative weight", encode(func(m map[string]any) { member(m)["weight"] = -1 }), "weight -1 is negative"},
		{"no znode", encode(func(m map[string]any) { delete(member(m), "znode") }), "znode is empty"},
		{"wrong type", encode(func(m map[string]any) { member(m)["weight"] = "5" }), "cannot unmarshal"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "membership.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := ReadSnapshot(path)
			if s != nil || !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.problem) {
				t.Errorf("ReadSnapshot = %v, %v; want an ErrSnapshot naming %s and %q", s, err, path, tt.problem)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "membership.json")
		if err := os.WriteFile(path, []byte(whole), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadSnapshot(path); err != nil {
			t.Errorf("the valid base of the table is refused: %v", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "membership.json")
		if _, err := ReadSnapshot(path); !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrSnapshot) {
			t.Errorf("ReadSnapshot(missing) = %v; want fs.ErrNotExist, not ErrSnapshot", err)
		}
	})
}
