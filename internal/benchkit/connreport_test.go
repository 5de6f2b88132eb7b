package benchkit

import (
	"math"
	"strings"
	"testing"
	"time"
)

var (
	zkgateInfo = TargetInfo{Name: "zkgate", Label: "zkgate, 1 backend"}
	nginxInfo  = TargetInfo{Name: "nginx", Label: "nginx, 1 worker"}
)

// held returns the holder's reports for n of want connections, alive of
// them still held at the close.
func held(kind string, n, want, alive int) (HoldReport, HoldReport) {
	o := HoldReport{Phase: "established", Kind: kind, Wanted: want, Established: n, Failed: want - n}
	c := o
	c.Phase, c.Alive, c.Ended = "closed", alive, n-alive
	return o, c
}

func sampleConnResults() ConnResults {
	zi, zic := held(HoldIdle, 8000, 8000, 8000)
	zu, zuc := held(HoldUpgrade, 8000, 8000, 7999)
	ni, nic := held(HoldIdle, 4000, 8000, 4000)
	return ConnResults{Conns: 8000, Memory: []ConnMemory{
		{TargetInfo: zkgateInfo, Kind: HoldIdle, Opened: zi, Closed: zic, RSSBefore: 10 << 20, RSSAfter: 10<<20 + 8000*17*1024,
			Settled: true, FDsBefore: 15, FDsAfter: 8015,
			RuntimeBefore: &GoRuntime{Goroutines: 25, StackInuse: 1 << 20, HeapInuse: 4 << 20},
			RuntimeAfter:  &GoRuntime{Goroutines: 8025, StackInuse: 1<<20 + 8000*4096, HeapInuse: 4<<20 + 8000*12*1024}},
		{TargetInfo: zkgateInfo, Kind: HoldUpgrade, Opened: zu, Closed: zuc, RSSBefore: 10 << 20, RSSAfter: 10<<20 + 8000*50*1024,
			FDsBefore: 15, FDsAfter: 16015, BackendFDsBefore: 100, BackendFDsAfter: 8100},
		{TargetInfo: nginxInfo, Kind: HoldIdle, Opened: ni, Closed: nic, RSSBefore: 20 << 20, RSSAfter: 20<<20 + 4000*1024,
			Settled: true, FDsBefore: 20, FDsAfter: 4020},
	}}
}

func TestConnMemoryPerConn(t *testing.T) {
	c := sampleConnResults()
	if got := c.Memory[0].PerConn(); got != 17 {
		t.Errorf("zkgate idle per connection = %v KiB, want 17", got)
	}
	if got := c.Memory[2].PerConn(); got != 1 {
		t.Errorf("nginx idle per connection = %v KiB, want 1 (divided by the 4000 held, not the 8000 asked)", got)
	}
	if got := (ConnMemory{RSSAfter: 5}).PerConn(); !math.IsNaN(got) {
		t.Errorf("per connection with none held = %v, want NaN", got)
	}
}

func TestConnSummaryTable(t *testing.T) {
	want := "| held connection | zkgate, 1 backend | nginx, 1 worker |\n" +
		"|---|---:|---:|\n" +
		"| keep-alive, served one GET, now idle | 17.0 KiB | 1.0 KiB |\n" +
		"| upgraded (WebSocket handshake, 101 from the backend, held open; both sockets) | 50.0 KiB | – |\n"
	if got := ConnSummaryTable(sampleConnResults()); got != want {
		t.Errorf("ConnSummaryTable =\n%s\nwant\n%s", got, want)
	}
}

func TestConnMemoryTable(t *testing.T) {
	got := ConnMemoryTable(sampleConnResults())
	for _, want := range []string{
		"| zkgate, 1 backend | idle | 8000 / 8000 | 8000 | 10.0 → 142.8 | 17.0 KiB | 15 → 8015 | – |\n",
		"| zkgate, 1 backend | upgrade | 8000 / 8000 | 7999 | 10.0 → 400.6 (still moving) | 50.0 KiB | 15 → 16015 | 100 → 8100 |\n",
		"| nginx, 1 worker | idle | 4000 / 8000 | 4000 | 20.0 → 23.9 | 1.0 KiB | 20 → 4020 | – |\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("ConnMemoryTable lacks\n%s\nin\n%s", want, got)
		}
	}
}

func TestConnRuntimeTable(t *testing.T) {
	got := ConnRuntimeTable(sampleConnResults())
	// 4 KiB of stack and 12 KiB of heap per connection leave 1 KiB of the
	// 17 KiB RSS growth; the measurements without runtime figures have no
	// row.
	want := "| zkgate, 1 backend | idle | 25 → 8025 (1.00) | 1.0 → 32.2 (4.0 KiB) | 4.0 → 97.8 (12.0 KiB) | 17.0 KiB | 1.0 KiB |\n"
	if !strings.Contains(got, want) || strings.Count(got, "\n") != 3 {
		t.Errorf("ConnRuntimeTable =\n%s\nwant a heading and the one row\n%s", got, want)
	}
	if got := ConnRuntimeTable(ConnResults{Memory: sampleConnResults().Memory[1:]}); got != "" {
		t.Errorf("ConnRuntimeTable without runtime figures = %q, want empty", got)
	}
}

func TestIdleLoadTable(t *testing.T) {
	wrk := func(n int64, p99 time.Duration, cpu time.Duration, errs int64) Sample {
		return Sample{Wrk: WrkResult{Requests: n, Duration: time.Second, P99: p99, Status: errs}, CPU: cpu}
	}
	o, c := held(HoldIdle, 8000, 8000, 7990)
	r := ConnResults{Conns: 8000, IdleLoad: []IdleLoad{{TargetInfo: zkgateInfo, Opened: o, Closed: c,
		// Two runs a side: 30,000 and 10,000 requests alone make 20,000/s
		// over both; p99 the mean of 6ms and 10ms.
		Alone:    []Sample{wrk(30000, 6*time.Millisecond, 1000*time.Millisecond, 0), wrk(10000, 10*time.Millisecond, 600*time.Millisecond, 0)},
		WithIdle: []Sample{wrk(18000, 12*time.Millisecond, 810*time.Millisecond, 2), wrk(18000, 8*time.Millisecond, 810*time.Millisecond, 0)}}}}
	want := "| zkgate, 1 backend | 8000 (7990) | 20,000 → 18,000 (0.90×) | 8.00 → 10.00 (1.25×) | 40.0 → 45.0 (1.12×) | 2 |\n"
	if got := IdleLoadTable(r); !strings.HasSuffix(got, want) {
		t.Errorf("IdleLoadTable =\n%s\nwant its row\n%s", got, want)
	}
	if got := (Sample{}).CPUPerReq(); got != 0 {
		t.Errorf("CPU per request of an empty run = %v, want 0", got)
	}
}

func TestMergeRuns(t *testing.T) {
	a := Sample{Target: "px", Body: BodySmall, Conns: 64, CPU: time.Second, RSS: 10,
		Wrk: WrkResult{Requests: 100, Duration: time.Second, Bytes: 1000, Read: 1, P50: 2 * time.Millisecond, P99: 4 * time.Millisecond, Max: 9 * time.Millisecond}}
	b := Sample{Target: "px", Body: BodySmall, Conns: 64, CPU: 3 * time.Second, RSS: 30,
		Wrk: WrkResult{Requests: 300, Duration: 3 * time.Second, Bytes: 3000, Timeout: 2, P50: 4 * time.Millisecond, P99: 8 * time.Millisecond, Max: 5 * time.Millisecond}}
	m := MergeRuns([]Sample{a, b})
	if m.Wrk.Requests != 400 || m.Wrk.Duration != 4*time.Second || m.Wrk.RPS() != 100 || m.CPU != 4*time.Second || m.CPUPerReq() != 10000 {
		t.Errorf("merged totals: %+v, want 400 requests over 4s and 4s of CPU", m)
	}
	if m.Wrk.P50 != 3*time.Millisecond || m.Wrk.P99 != 6*time.Millisecond || m.Wrk.Max != 9*time.Millisecond || m.Wrk.Errors() != 3 || m.RSS != 30 || m.Target != "px" {
		t.Errorf("merged latencies and errors: %+v, want means 3ms / 6ms, max 9ms, 3 errors", m)
	}
	if z := MergeRuns(nil); z.Wrk.Requests != 0 || z.CPUPerReq() != 0 {
		t.Errorf("MergeRuns(nil) = %+v, want the zero sample", z)
	}
}
