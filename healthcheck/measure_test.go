package healthcheck

import (
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zkgate/zkgate/balancer"
)

// These measurements take seconds of real time, so they run only when asked:
//
//	ZKGATE_HC_MEASURE=1 go test -count=1 -run TestMeasure -v ./healthcheck/
func skipUnlessMeasuring(t *testing.T) {
	if os.Getenv("ZKGATE_HC_MEASURE") == "" {
		t.Skip("set ZKGATE_HC_MEASURE=1 to measure detection times")
	}
}

// watcher records when an address disappears from a published list.
type watcher struct {
	addr string
	mu   sync.Mutex
	gone time.Time
}

func (w *watcher) Update(eps []balancer.Endpoint) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.gone.IsZero() {
		return
	}
	for _, e := range eps {
		if e.Addr == w.addr {
			return
		}
	}
	w.gone = time.Now()
}

func (w *watcher) goneAt() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gone
}

// TestMeasureActiveDetection measures, with the default active settings
// (interval 2s ± 10%, timeout 1s, unhealthy threshold 2), the time from a
// backend's death (listener and connections closed) to its removal from the
// published set. Trials run side by side, each killing its backend at a
// random phase of the probe schedule.
func TestMeasureActiveDetection(t *testing.T) {
	skipUnlessMeasuring(t)
	for _, typ := range []string{ProbeTCP, ProbeHTTP} {
		const trials = 10
		results := make([]time.Duration, trials)
		var wg sync.WaitGroup
		for i := range trials {
			a, b := newBackend(t), newBackend(t)
			cfg := Defaults()
			cfg.Active.Type = typ
			cfg.Passive.MaxFailures = 0
			c, err := New(staticOf(a.addr, b.addr), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			w := &watcher{addr: a.addr}
			c.Attach(w)
			wg.Go(func() {
				time.Sleep(time.Duration(rand.Int64N(int64(2 * time.Second)))) // random phase, not synchronisation
				died := time.Now()
				a.stop()
				deadline := time.Now().Add(10 * time.Second)
				for w.goneAt().IsZero() && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				if w.goneAt().IsZero() {
					t.Errorf("%s trial %d: not removed within 10s", typ, i)
					return
				}
				results[i] = w.goneAt().Sub(died)
			})
		}
		wg.Wait()
		slices.Sort(results)
		t.Logf("%s probe, defaults: death→removal over %d trials: min %s, median %s, max %s",
			typ, trials, results[0].Round(time.Millisecond), results[trials/2].Round(time.Millisecond), results[trials-1].Round(time.Millisecond))
	}
}

// TestMeasurePassiveUnderLoad measures, with TCP probes and the default
// active and passive settings, the time from a backend's death to its ejection while the proxy
// reports a ConnectFailure for it 100 times a second.
func TestMeasurePassiveUnderLoad(t *testing.T) {
	skipUnlessMeasuring(t)
	const trials = 5
	for i := range trials {
		a, b := newBackend(t), newBackend(t)
		cfg := Defaults()
		cfg.Active.Type = ProbeTCP
		c, err := New(staticOf(a.addr, b.addr), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		w := &watcher{addr: a.addr}
		c.Attach(w)
		a.stop()
		died := time.Now()
		tick := time.NewTicker(10 * time.Millisecond)
		reports := 0
		for w.goneAt().IsZero() && time.Since(died) < 10*time.Second {
			<-tick.C
			c.Report(a.addr, ConnectFailure)
			reports++
		}
		tick.Stop()
		st, _ := stateOf(c, a.addr)
		t.Logf("trial %d: death→removal %s after %d reports at 100/s, state %s, ejections %d",
			i, w.goneAt().Sub(died).Round(time.Millisecond), reports, st.State, st.Ejections)
		_ = c.Close()
	}
}
