// Tests of the deployment files at the repository root.
package zkgate_test

import (
	"fmt"
	"os"
	"path"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestComposeBackendScales guards `docker compose up --scale backend=N`: a
// service with a container_name or a fixed host port cannot run twice.
func TestComposeBackendScales(t *testing.T) {
	data, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]map[string]any `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, name := range []string{"zookeeper", "gateway", "backend"} {
		if _, ok := f.Services[name]; !ok {
			t.Errorf("docker-compose.yml: service %q missing", name)
		}
	}
	backend := f.Services["backend"]
	if _, ok := backend["container_name"]; ok {
		t.Error("services.backend.container_name is set: the backend could not be scaled")
	}
	if _, ok := backend["ports"]; ok {
		t.Error("services.backend.ports is set: replicas would fight over the host port")
	}
	gw := f.Services["gateway"]
	ports, _ := gw["ports"].([]any)
	for _, p := range ports {
		if s, _ := p.(string); len(s) < 10 || s[:10] != "127.0.0.1:" {
			t.Errorf("services.gateway.ports: %v is not published on the host's loopback only", p)
		}
	}
	// The backend reuses the gateway's image, whose HEALTHCHECK asks the
	// gateway's admin port: it needs a check of its own.
	hc, _ := backend["healthcheck"].(map[string]any)
	if test := fmt.Sprint(hc["test"]); !strings.Contains(test, ":9000/healthz") {
		t.Errorf("services.backend.healthcheck.test = %s; want a check of the backend's own /healthz", test)
	}
	// One variable points both at ZooKeeper (the ensemble profile).
	gwEnv, _ := f.Services["gateway"]["environment"].(map[string]any)
	beEnv, _ := backend["environment"].(map[string]any)
	if gz, bz := fmt.Sprint(gwEnv["ZKGATE_ZOOKEEPER_SERVERS"]), fmt.Sprint(beEnv["ZOOKEEPER"]); gz != bz || !strings.Contains(gz, "${ZOOKEEPER_SERVERS") {
		t.Errorf("gateway's ZooKeeper %q, backend's %q; want both from ${ZOOKEEPER_SERVERS}", gz, bz)
	}
	if _, ok := f.Services["zookeeper"]["healthcheck"]; !ok {
		t.Error("services.zookeeper.healthcheck missing: the gateway could start before ZooKeeper serves")
	}
}

// TestComposeSnapshotOnVolume guards the membership snapshot in compose: the
// gateway's zookeeper.snapshot_file must lie on a named volume, or a
// restarted container would start without it.
func TestComposeSnapshotOnVolume(t *testing.T) {
	var gw struct {
		ZooKeeper struct {
			SnapshotFile string `yaml:"snapshot_file"`
		} `yaml:"zookeeper"`
	}
	data, err := os.ReadFile("configs/gateway.docker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &gw); err != nil {
		t.Fatalf("configs/gateway.docker.yaml: %v", err)
	}
	if gw.ZooKeeper.SnapshotFile == "" {
		t.Fatal("configs/gateway.docker.yaml: zookeeper.snapshot_file is not set")
	}
	dir := path.Dir(gw.ZooKeeper.SnapshotFile)

	var f struct {
		Services map[string]struct {
			Volumes []string `yaml:"volumes"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if data, err = os.ReadFile("docker-compose.yml"); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, v := range f.Services["gateway"].Volumes {
		name, target, _ := strings.Cut(v, ":")
		if _, named := f.Volumes[name]; named && strings.TrimSuffix(target, ":rw") == dir {
			return
		}
	}
	t.Errorf("docker-compose.yml: services.gateway.volumes mounts no named volume at %s (the directory of zookeeper.snapshot_file)", dir)
}
