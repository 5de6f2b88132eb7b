package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRegistryHoldsStandardCollectors(t *testing.T) {
	m := New(Options{Version: "1.2.3"})
	text := exposition(t, m)
	for _, want := range []string{
		`zkgate_build_info{version="1.2.3"} 1`,
		`zkgate_config_reloads_total{result="success"} 0`,
		`zkgate_config_reloads_total{result="failure"} 0`,
		"go_goroutines ",
		"process_cpu_seconds_total ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") || line == "" {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		if !strings.HasPrefix(name, "zkgate_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("metric %s is neither zkgate_ nor a standard Go/process metric", name)
		}
	}
}

func TestConfigReloads(t *testing.T) {
	now := time.Unix(1700000000, 500_000_000)
	m := New(Options{Now: func() time.Time { return now }})
	m.ConfigLoaded()
	if got := testutil.ToFloat64(m.lastReload); got != 1700000000.5 {
		t.Errorf("last reload timestamp after ConfigLoaded = %v, want 1700000000.5", got)
	}

	now = now.Add(time.Minute)
	m.ConfigReloaded(errors.New("routes[0].service: unknown service"))
	if got := testutil.ToFloat64(m.reloadFailed); got != 1 {
		t.Errorf("failed reloads = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.lastReload); got != 1700000000.5 {
		t.Errorf("a failed reload moved the last success timestamp to %v", got)
	}

	m.ConfigReloaded(nil)
	if got := testutil.ToFloat64(m.reloadOK); got != 1 {
		t.Errorf("successful reloads = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.lastReload); got != 1700000060.5 {
		t.Errorf("last reload timestamp = %v, want 1700000060.5", got)
	}
}

// TestLint runs Prometheus' metric linter over every zkgate_ metric: names,
// units, counters ending in _total, help texts.
func TestLint(t *testing.T) {
	m := New(Options{State: fakeState{state: sampleState()}})
	m.SetRoutes([]RouteLabels{{"echo", "echo"}})
	m.Observe("echo", "GET", 200, time.Millisecond, 2)
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "zkgate_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}
