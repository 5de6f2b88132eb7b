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
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no %s in %s", name, url)
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
