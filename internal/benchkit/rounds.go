package benchkit

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// beginRun starts one measured run of t: it checks that t still runs,
// empties its access log, and samples its processes' CPU time; the
// function it returns gives the CPU time they used since.
func beginRun(t *target) (cpuSince func() (time.Duration, error), err error) {
	if err := t.proc.Err(); err != nil {
		return nil, err
	}
	if t.accessLog != "" {
		if err := os.Truncate(t.accessLog, 0); err != nil {
			return nil, fmt.Errorf("benchkit: truncate %s: %w", t.accessLog, err)
		}
	}
	pids := t.pids()
	before, err := GroupUsage(pids)
	if err != nil {
		return nil, fmt.Errorf("benchkit: %s: %w", t.Name, err)
	}
	return func() (time.Duration, error) {
		after, err := GroupUsage(pids)
		if err != nil {
			return 0, fmt.Errorf("benchkit: %s after the run: %w (%v)", t.Name, err, t.proc.Err())
		}
		return after.CPU - before.CPU, nil
	}, nil
}

// rounds describes how a section measures its targets: the measurements
// of each, one run of one, and the progress line of a run.
type rounds[S any] struct {
	// warmup and announce are said before the warm-up and before the
	// rounds.
	warmup, announce string
	measures         func(t *target) []string
	once             func(ctx context.Context, t *target, m string, d time.Duration, round int) (S, error)
	progress         func(round int, t *target, m string, s S)
}

// measureRounds runs the warm-up (each target's every measurement for
// Options.Warmup), then Options.Rounds rounds; each round visits every
// target (starting one further each round) and runs each of its
// measurements (starting one further each round) for Options.Duration.
func measureRounds[S any](ctx context.Context, h *harness, targets []*target, r rounds[S]) ([]S, error) {
	o := h.o
	if o.Warmup > 0 {
		h.say("%s", r.warmup)
		for _, t := range targets {
			for _, m := range r.measures(t) {
				if _, err := r.once(ctx, t, m, o.Warmup, 0); err != nil {
					return nil, err
				}
			}
		}
	}
	h.say("%s", r.announce)
	var samples []S
	for round := range o.Rounds {
		for i := range targets {
			t := targets[(i+round)%len(targets)]
			ms := r.measures(t)
			for j := range ms {
				m := ms[(j+round)%len(ms)]
				s, err := r.once(ctx, t, m, o.Duration, round)
				if err != nil {
					return nil, err
				}
				samples = append(samples, s)
				r.progress(round, t, m, s)
			}
		}
	}
	return samples, nil
}

// writeSamplesCSV writes samples to path as CSV: the header line, then a
// line per sample; what names them in an error.
func writeSamplesCSV[S any](path, what, header string, samples []S, line func(S) string) error {
	var b strings.Builder
	b.WriteString(header + "\n")
	for _, s := range samples {
		b.WriteString(line(s) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("benchkit: write %s samples: %w", what, err)
	}
	return nil
}
