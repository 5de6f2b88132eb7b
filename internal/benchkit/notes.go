package benchkit

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// accessLogNotes reports, for each zkgate target with its access log on,
// the lines its log writer dropped (zkgate_access_log_dropped_total): a
// dropped line is a cost not paid.
func accessLogNotes(targets []*target) []string {
	var notes []string
	for _, t := range targets {
		if t.accessLog == "" || t.admin == "" {
			continue
		}
		n, err := metricValue(t.admin+"/metrics", "zkgate_access_log_dropped_total")
		switch {
		case err != nil:
			notes = append(notes, fmt.Sprintf("%s: access log drops unknown (%v).", t.Label, err))
		case n > 0:
			notes = append(notes, fmt.Sprintf("%s: the access log dropped %.0f lines over the run (its writer fell behind); those requests did not pay for logging.", t.Label, n))
		default:
			notes = append(notes, fmt.Sprintf("%s: the access log wrote every line (none dropped).", t.Label))
		}
	}
	return notes
}

// metricValue returns the value of an unlabelled Prometheus metric.
func metricValue(url, name string) (float64, error) {
	v, err := metricValues(url, name)
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

// metricValues returns the values of unlabelled Prometheus metrics, in
// the order of names, from one scrape of url.
func metricValues(url string, names ...string) ([]float64, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return parseMetrics(string(body), names...)
}

// parseMetrics finds the values of unlabelled metrics in a Prometheus
// text exposition, in the order of names.
func parseMetrics(text string, names ...string) ([]float64, error) {
	vals := make([]float64, len(names))
	found := make([]bool, len(names))
	for line := range strings.SplitSeq(text, "\n") {
		for i, name := range names {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					return nil, fmt.Errorf("metric %s: %w", name, err)
				}
				vals[i], found[i] = x, true
			}
		}
	}
	for i, name := range names {
		if !found[i] {
			return nil, fmt.Errorf("no %s in the metrics", name)
		}
	}
	return vals, nil
}

// busyNote warns when the machine was busy before the run started.
func busyNote(load string, cpus int) []string {
	f := strings.Fields(load)
	if len(f) == 0 {
		return nil
	}
	l, err := strconv.ParseFloat(f[0], 64)
	if err != nil || l < float64(cpus)/2 {
		return nil
	}
	return []string{fmt.Sprintf("The machine was busy when the run started (load average %.2f on %d cores): other processes competed for the CPU, so expect wide min–max ranges and read the same-round ratios and CPU per request rather than absolute rates.", l, cpus)}
}
