package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"

	"github.com/zkgate/zkgate/internal/loadgen"
)

// bins are the binaries TestMain builds.
var bins struct {
	zkgate, echo string
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "zkgate-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The test runs in e2e/; the module root is its parent.
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/zkgate", "./cmd/echo-backend")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build: %v\n%s", err, out)
		return 1
	}
	bins.zkgate = filepath.Join(dir, "zkgate")
	bins.echo = filepath.Join(dir, "echo-backend")
	code := m.Run()
	printSummary()
	return code
}

// scenarioRow is one line of the summary table.
type scenarioRow struct {
	name             string
	result           string
	mu               sync.Mutex
	sent, ok, failed int
	notes            []string
}

var summary struct {
	mu   sync.Mutex
	rows []*scenarioRow
}

// scenario starts t's row of the summary. Call it first in the test, so that
// its cleanup, which completes the row, runs after every other.
func scenario(t *testing.T, name string) *scenarioRow {
	r := &scenarioRow{name: name}
	t.Cleanup(func() {
		switch {
		case t.Skipped():
			r.result = "SKIP"
		case t.Failed():
			r.result = "FAIL"
		default:
			r.result = "PASS"
		}
		t.Logf("summary: %s", r.line())
		summary.mu.Lock()
		summary.rows = append(summary.rows, r)
		summary.mu.Unlock()
	})
	return r
}

// load records the counts of a load run.
func (r *scenarioRow) load(res loadgen.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent, r.ok, r.failed = res.Sent, res.OK, res.Failed
}

// note adds a remark (a measurement, a count) to the row.
func (r *scenarioRow) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

func (r *scenarioRow) line() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("%s %s: sent=%d ok=%d failed=%d %s", r.result, r.name, r.sent, r.ok, r.failed, strings.Join(r.notes, " "))
}

// printSummary prints the table of every scenario run and writes it to
// $TMPDIR/zkgate-e2e-summary.txt.
func printSummary() {
	summary.mu.Lock()
	defer summary.mu.Unlock()
	if len(summary.rows) == 0 {
		return
	}
	sort.Slice(summary.rows, func(i, j int) bool { return summary.rows[i].name < summary.rows[j].name })
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tresult\tsent\tok\tfailed\tnotes")
	for _, r := range summary.rows {
		r.mu.Lock()
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", r.name, r.result, r.sent, r.ok, r.failed, strings.Join(r.notes, " "))
		r.mu.Unlock()
	}
	_ = tw.Flush()
	fmt.Print("\nzkgate end-to-end summary:\n" + b.String())
	path := filepath.Join(os.TempDir(), "zkgate-e2e-summary.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: write summary:", err)
		return
	}
	fmt.Println("(written to " + path + ")")
}
