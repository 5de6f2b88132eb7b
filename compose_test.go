// Tests of the deployment files at the repository root.
package zkgate_test

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/zkgate/zkgate/internal/zktest"
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

// composeService is the part of a compose service these checks read.
type composeService struct {
	Image       string         `yaml:"image"`
	Profiles    []string       `yaml:"profiles"`
	Command     []string       `yaml:"command"`
	Environment map[string]any `yaml:"environment"`
	Ports       []string       `yaml:"ports"`
	Volumes     []string       `yaml:"volumes"`
}

func readCompose(t *testing.T) (map[string]composeService, map[string]any) {
	t.Helper()
	data, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]composeService `yaml:"services"`
		Volumes  map[string]any            `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return f.Services, f.Volumes
}

// imageFile maps a path of the image under /etc/zkgate to the repository's
// file (the Dockerfile copies configs/ there); ok is false for other paths.
func imageFile(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, "/etc/zkgate/")
	if !ok {
		return "", false
	}
	return filepath.Join("configs", filepath.FromSlash(rest)), true
}

// buildZkgate builds zkgate into a temporary directory.
func buildZkgate(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "zkgate")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/zkgate").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/zkgate: %v\n%s", err, out)
	}
	return bin
}

// TestComposeFilesExist guards every file the compose file uses: a bind
// mount's source, and a configuration file of the image (/etc/zkgate/...)
// named in a command, which the Dockerfile copies from configs/.
func TestComposeFilesExist(t *testing.T) {
	services, _ := readCompose(t)
	for name, s := range services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("services.%s.volumes: %s: %v", name, v, err)
				}
			}
		}
		for _, arg := range s.Command {
			if file, ok := imageFile(arg); ok {
				if _, err := os.Stat(file); err != nil {
					t.Errorf("services.%s.command: %s is not in the image (%v)", name, arg, err)
				}
			}
		}
	}
}

// TestComposeFleet checks the ensemble profile's fleet: gateways in fleet
// mode, each with its own name, loopback ports and state volume, pointed at
// ZooKeeper by the one variable the other services use; a one-shot that
// pushes the fleet's routes and services; every configuration file they
// use valid (zkgate validate); and the push itself run, as the one-shot
// runs it, against a real ZooKeeper, then read back with config pull.
func TestComposeFleet(t *testing.T) {
	services, volumes := readCompose(t)
	zkVar := fmt.Sprint(services["gateway"].Environment["ZKGATE_ZOOKEEPER_SERVERS"])
	var gateways, pushes []string
	for name, s := range services {
		switch {
		case len(s.Command) >= 2 && s.Command[0] == "config" && s.Command[1] == "push":
			pushes = append(pushes, name)
		case len(s.Command) >= 1 && s.Command[0] == "serve" && slices.Contains(s.Command, "/etc/zkgate/gateway.fleet.yaml"):
			gateways = append(gateways, name)
		default:
			continue
		}
		if !slices.Contains(s.Profiles, "ensemble") {
			t.Errorf("services.%s: not in the ensemble profile (profiles %v): fleet mode would run by default", name, s.Profiles)
		}
		if got := fmt.Sprint(s.Environment["ZKGATE_ZOOKEEPER_SERVERS"]); got != zkVar {
			t.Errorf("services.%s: ZooKeeper %q, want the gateway's %q", name, got, zkVar)
		}
	}
	slices.Sort(gateways)
	if len(gateways) < 2 || len(pushes) != 1 {
		t.Fatalf("fleet gateways %v and pushes %v: want several gateways and one push", gateways, pushes)
	}
	names, ports, vols := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, name := range gateways {
		s := services[name]
		fleetName := fmt.Sprint(s.Environment["ZKGATE_FLEET_NAME"])
		if s.Environment["ZKGATE_FLEET_NAME"] == nil || names[fleetName] {
			t.Errorf("services.%s: ZKGATE_FLEET_NAME %q missing or shared", name, fleetName)
		}
		names[fleetName] = true
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") || ports[p] {
				t.Errorf("services.%s.ports: %s not on the host's loopback only, or shared", name, p)
			}
			ports[p] = true
		}
		// Its own named volume where the snapshots are kept.
		own := false
		for _, v := range s.Volumes {
			vol, target, _ := strings.Cut(v, ":")
			if _, named := volumes[vol]; named && target == path.Dir("/var/lib/zkgate/membership.json") && !vols[vol] {
				own, vols[vol] = true, true
			}
		}
		if !own {
			t.Errorf("services.%s.volumes %v: no named volume of its own at /var/lib/zkgate", name, s.Volumes)
		}
	}

	if testing.Short() {
		t.Skip("builds zkgate and runs ZooKeeper")
	}
	bin := buildZkgate(t)
	push := services[pushes[0]].Command
	cfgFile, ok := imageFile(push[slices.Index(push, "--config")+1])
	routesFile, ok2 := imageFile(push[len(push)-1])
	if !ok || !ok2 {
		t.Fatalf("services.%s.command %v: want files of the image", pushes[0], push)
	}
	zkgate := func(env []string, args ...string) (string, error) {
		c := exec.Command(bin, args...)
		c.Env = append(os.Environ(), env...)
		out, err := c.CombinedOutput()
		return string(out), err
	}
	for _, name := range gateways {
		env := []string{"ZKGATE_FLEET_NAME=" + fmt.Sprint(services[name].Environment["ZKGATE_FLEET_NAME"])}
		file, _ := imageFile(services[name].Command[slices.Index(services[name].Command, "--config")+1])
		if out, err := zkgate(env, "validate", "--config", file); err != nil {
			t.Errorf("services.%s: zkgate validate --config %s: %v\n%s", name, file, err, out)
		}
	}
	if out, err := zkgate(nil, "validate", "--config", routesFile); err != nil {
		t.Errorf("zkgate validate --config %s: %v\n%s", routesFile, err, out)
	}

	zktest.Require(t)
	srv := zktest.Start(t)
	env := []string{"ZKGATE_ZOOKEEPER_SERVERS=" + srv.Addr()}
	args := append([]string{}, push...)
	args[slices.Index(args, "--config")+1], args[len(args)-1] = cfgFile, routesFile
	out, err := zkgate(env, args...)
	if err != nil || !strings.Contains(out, "written") {
		t.Fatalf("services.%s: zkgate %s: %v\n%s", pushes[0], strings.Join(args, " "), err, out)
	}
	pulled, err := zkgate(env, "config", "pull", "--config", cfgFile)
	if err != nil || !strings.Contains(pulled, "name: echo") {
		t.Fatalf("zkgate config pull after the push: %v\n%s", err, pulled)
	}
	// Pushed again, nothing changes: the one-shot may run at every start.
	if out, err := zkgate(env, args...); err != nil || !strings.Contains(out, "nothing to change") {
		t.Errorf("second push: %v\n%s", err, out)
	}
}
