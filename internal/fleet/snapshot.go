package fleet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/zkgate/zkgate/internal/config"
)

// snapshotFormat marks a fleet snapshot file.
const snapshotFormat = "zkgate-fleet-snapshot/1"

// Snapshot is the running configuration version kept on disk (next to
// the membership snapshot, see SnapshotPath), so that a gateway started
// while ZooKeeper cannot be read serves the routes it last ran.
type Snapshot struct {
	Format     string      `json:"format"`
	ConfigPath string      `json:"config_path"`
	Version    int64       `json:"version"`
	Written    time.Time   `json:"written"`
	Routes     []savedNode `json:"routes"`
	Services   []savedNode `json:"services"`
}

type savedNode struct {
	Name string `json:"name"`
	Path string `json:"path"`
	Data string `json:"data"`
}

// SnapshotPath is the fleet snapshot kept beside the membership snapshot
// file membershipFile (zookeeper.snapshot_file); "" when that is off.
func SnapshotPath(membershipFile string) string {
	if membershipFile == "" {
		return ""
	}
	return membershipFile + ".fleet.json"
}

// Nodes returns the snapshot's route and service znodes.
func (s *Snapshot) Nodes() (routes, services []config.FleetNode) {
	conv := func(list []savedNode) []config.FleetNode {
		out := make([]config.FleetNode, len(list))
		for i, n := range list {
			out[i] = config.FleetNode{Name: n.Name, Path: n.Path, Data: []byte(n.Data)}
		}
		return out
	}
	return conv(s.Routes), conv(s.Services)
}

// WriteSnapshot writes version v of the configuration under configPath to
// path atomically (a temporary file renamed over it).
func WriteSnapshot(path, configPath string, v int64, routes, services []config.FleetNode) error {
	conv := func(list []config.FleetNode) []savedNode {
		out := make([]savedNode, len(list))
		for i, n := range list {
			out[i] = savedNode{Name: n.Name, Path: n.Path, Data: string(n.Data)}
		}
		return out
	}
	data, err := json.Marshal(Snapshot{Format: snapshotFormat, ConfigPath: configPath, Version: v, Written: time.Now().UTC(),
		Routes: conv(routes), Services: conv(services)})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("fleet snapshot: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("fleet snapshot: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("fleet snapshot: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("fleet snapshot: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("fleet snapshot: %w", err)
	}
	return nil
}

// ReadSnapshot reads a fleet snapshot written for configPath; a file of
// another format or configuration path is refused, naming the problem.
func ReadSnapshot(path, configPath string) (*Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("fleet snapshot %s: corrupt: %w", path, err)
	}
	switch {
	case s.Format != snapshotFormat:
		return nil, fmt.Errorf("fleet snapshot %s: format %q, want %q", path, s.Format, snapshotFormat)
	case s.ConfigPath != configPath:
		return nil, fmt.Errorf("fleet snapshot %s: written for fleet.config_path %q, not %q", path, s.ConfigPath, configPath)
	}
	return &s, nil
}
