package benchkit

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// startTargets starts every selected target's proxy and waits until each
// answers both bodies correctly through it.
func (h *harness) startTargets(ctx context.Context) ([]*target, error) {
	var targets []*target
	for _, info := range Targets {
		if !h.selected(info.Name) {
			continue
		}
		t := &target{TargetInfo: info}
		if info.Name != Reference && info.Name != "go-reverseproxy" && info.Name != EpollTarget {
			t.prefix = RoutePrefix // the bare proxies have no routes
		}
		if info.Name == "zkgate-3" {
			t.wantIDs = 3
		}
		if err := h.launch(ctx, t); err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	for _, t := range targets {
		if err := h.ready(ctx, t); err != nil {
			return nil, err
		}
		h.say("%-34s %s  pids %v", t.Label, t.url+t.prefix, t.pids())
	}
	return targets, nil
}

// launch starts t's proxy (for the reference, takes the first backend)
// and sets its URL, process and the PIDs whose usage counts.
func (h *harness) launch(ctx context.Context, t *target) error {
	one := []string{h.addr(offBackends)}
	var err error
	switch t.Name {
	case Reference:
		t.url, t.proc = "http://"+one[0], h.backend[0]
	case "zkgate":
		err = h.startZkgate(ctx, t, offZkgate, "/services/bench1", true, true)
	case PoliciesTarget:
		err = h.startZkgatePolicies(ctx, t)
	case "zkgate-3":
		err = h.startZkgate(ctx, t, offZkgate3, "/services/bench3", true, true)
	case "zkgate-nolog":
		err = h.startZkgate(ctx, t, offZkgateOff, "/services/bench1", false, true)
	case "zkgate-nethttp":
		err = h.startZkgate(ctx, t, offZkgateStd, "/services/bench1", true, false)
	case "go-reverseproxy":
		err = h.startZkbenchProxy(t, offGoProxy, "reverseproxy", one[0])
	case EpollTarget:
		err = h.startZkbenchProxy(t, offGoEpoll, "epollproxy", one[0])
	case "nginx":
		err = h.startNginx(t, offNginx, 1, one)
	case NginxLogTarget:
		t.accessLog = filepath.Join(h.run, t.Name, "access.log")
		err = h.startNginxWith(t, offNginxLog, "http", func(dir string) string {
			return NginxLogConfig(dir, h.port(offNginxLog), 1, one)
		})
	case "nginx-2":
		err = h.startNginx(t, offNginx2, 2, one)
	case Nginx2LogTarget:
		t.accessLog = filepath.Join(h.run, t.Name, "access.log")
		err = h.startNginxWith(t, offNginx2Log, "http", func(dir string) string {
			return NginxLogConfig(dir, h.port(offNginx2Log), 2, one)
		})
	case "haproxy":
		err = h.startHAProxy(t, offHAProxy, 1, one)
	case "haproxy-2":
		err = h.startHAProxy(t, offHAProxy2, 2, one)
	case "caddy":
		err = h.startCaddy(t, one)
	default:
		err = fmt.Errorf("benchkit: no way to start target %q", t.Name)
	}
	if err != nil {
		return err
	}
	if t.pids == nil {
		t.pids = onePID(t.proc)
	}
	return nil
}

// ready waits until t answers both bodies through its route, and routes
// to t.wantIDs backends when set.
func (h *harness) ready(ctx context.Context, t *target) error {
	what := t.Label + " at " + t.url
	if err := WaitFor(ctx, 30*time.Second, what+" to answer the small body", h.answers(t.proc, t.url+t.prefix+"/", []byte(SmallBody), t.headers...)); err != nil {
		return err
	}
	if err := WaitFor(ctx, 10*time.Second, what+" to answer the 16 KiB body", h.answers(t.proc, t.url+t.prefix+LargePath, largeBody, t.headers...)); err != nil {
		return err
	}
	if t.wantIDs > 1 {
		if err := WaitFor(ctx, 30*time.Second, fmt.Sprintf("%s to route to %d backends", what, t.wantIDs), h.distinct(t.proc, t.url+t.prefix, t.wantIDs)); err != nil {
			return err
		}
	}
	return nil
}

// startZkgate starts bin/zkgate with ZkgateConfig; web and admin listen on
// off and off+1.
func (h *harness) startZkgate(ctx context.Context, t *target, off int, zkPath string, accessLog, fastPath bool) error {
	text := ZkgateConfig(h.port(off), h.port(off+1), h.port(offZooKeeper), zkPath, accessLog, fastPath)
	return h.startZkgateWith(ctx, t, off, text, accessLog)
}

// startZkgatePolicies starts the policies target: a bench token and its
// JWKS in the target's directory, bin/zkgate with ZkgatePoliciesConfig
// (the plain zkgate target's, policies on the route) at offZkgatePol, and
// the token and Origin on every request sent to it.
func (h *harness) startZkgatePolicies(ctx context.Context, t *target) error {
	tok, err := WriteBenchToken(filepath.Join(h.run, t.Name))
	if err != nil {
		return err
	}
	t.headers = tok.Headers()
	text := ZkgatePoliciesConfig(h.port(offZkgatePol), h.port(offZkgatePol+1), h.port(offZooKeeper), "/services/bench1", tok.JWKSFile)
	return h.startZkgateWith(ctx, t, offZkgatePol, text, true)
}

// startZkgateWith starts bin/zkgate with the configuration text; web and
// admin listen on off and off+1.
func (h *harness) startZkgateWith(ctx context.Context, t *target, off int, text string, accessLog bool) error {
	dir := filepath.Join(h.run, t.Name)
	// The configuration in a directory of its own, apart from the logs, as
	// a user keeps it (/etc/zkgate, /var/log/zkgate): zkgate watches its
	// configuration file's directory, and every batch the access log wrote
	// there would wake that watch.
	etc := filepath.Join(dir, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return fmt.Errorf("benchkit: %w", err)
	}
	cfg := filepath.Join(etc, "gateway.yaml")
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		return fmt.Errorf("benchkit: write %s: %w", cfg, err)
	}
	t.accessLog = filepath.Join(dir, "access.log")
	p, err := h.procs.Start(ProcSpec{
		Name:   t.Name,
		Argv:   []string{h.tools["zkgate"], "serve", "--config", cfg},
		Log:    filepath.Join(dir, "zkgate.log"),
		Stdout: t.accessLog,
	})
	if err != nil {
		return err
	}
	t.proc, t.url, t.admin = p, "http://"+h.addr(off), "http://"+h.addr(off+1)
	if !accessLog {
		t.accessLog = "" // standard output stays empty
	}
	ready := "http://" + h.addr(off+1) + "/readyz"
	return WaitFor(ctx, 30*time.Second, t.Name+" readiness at "+ready, func() (bool, error) {
		return status(ready) == http.StatusOK, p.Err()
	})
}

// status returns the status code of a GET of url, 0 when it fails.
func status(url string) int {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(url)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// startZkbenchProxy runs "zkbench sub --listen ... --upstream upstream"
// (reverseproxy or epollproxy) as t's proxy, on port offset off.
func (h *harness) startZkbenchProxy(t *target, off int, sub, upstream string) error {
	p, err := h.procs.Start(ProcSpec{
		Name: t.Name,
		Argv: []string{h.o.Self, sub, "--listen", h.addr(off), "--upstream", upstream},
		Log:  filepath.Join(h.run, t.Name+".log"),
	})
	if err != nil {
		return err
	}
	t.proc, t.url = p, "http://"+h.addr(off)
	return nil
}

// startNginx runs nginx with NginxConfig, workers worker processes, on
// port offset off; its CPU and memory are those of the master and workers.
func (h *harness) startNginx(t *target, off, workers int, upstreams []string) error {
	return h.startNginxWith(t, off, "http", func(dir string) string { return NginxConfig(dir, h.port(off), workers, upstreams) })
}

// startNginxWith runs nginx in the foreground with the configuration
// config makes for its prefix directory, listening on port offset off,
// reached by scheme; t's CPU and memory are those of the master and its
// workers.
func (h *harness) startNginxWith(t *target, off int, scheme string, config func(dir string) string) error {
	dir := filepath.Join(h.run, t.Name)
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return fmt.Errorf("benchkit: %w", err)
	}
	cfg := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cfg, []byte(config(dir)), 0o644); err != nil {
		return fmt.Errorf("benchkit: write %s: %w", cfg, err)
	}
	p, err := h.procs.Start(ProcSpec{
		Name: t.Name,
		Argv: []string{h.tools["nginx"], "-p", dir, "-c", cfg, "-e", "stderr", "-g", "daemon off;"},
		Log:  filepath.Join(dir, "nginx.log"),
	})
	if err != nil {
		return err
	}
	t.proc = p
	master := p.PID()
	t.pids = func() []int { // the master and its workers
		kids, _ := Children(master)
		return append([]int{master}, kids...)
	}
	t.url = scheme + "://" + h.addr(off)
	return nil
}

// startHAProxy runs HAProxy with HAProxyConfig, threads threads, on port
// offset off.
func (h *harness) startHAProxy(t *target, off, threads int, upstreams []string) error {
	dir := filepath.Join(h.run, t.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("benchkit: %w", err)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(HAProxyConfig(h.port(off), threads, upstreams)), 0o644); err != nil {
		return fmt.Errorf("benchkit: write %s: %w", cfg, err)
	}
	p, err := h.procs.Start(ProcSpec{
		Name: t.Name,
		Argv: []string{h.tools["haproxy"], "-f", cfg, "-db"},
		Log:  filepath.Join(dir, "haproxy.log"),
	})
	if err != nil {
		return err
	}
	t.proc, t.url = p, "http://"+h.addr(off)
	return nil
}

func (h *harness) startCaddy(t *target, upstreams []string) error {
	dir := filepath.Join(h.run, "caddy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("benchkit: %w", err)
	}
	cfg := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(CaddyConfig(h.port(offCaddy), upstreams)), 0o644); err != nil {
		return fmt.Errorf("benchkit: write %s: %w", cfg, err)
	}
	p, err := h.procs.Start(ProcSpec{
		Name: "caddy",
		Argv: []string{h.tools["caddy"], "run", "--config", cfg, "--adapter", "caddyfile"},
		Env:  []string{"HOME=" + dir, "XDG_CONFIG_HOME=" + dir, "XDG_DATA_HOME=" + dir},
		Log:  filepath.Join(dir, "caddy.log"),
	})
	if err != nil {
		return err
	}
	t.proc, t.url = p, "http://"+h.addr(offCaddy)
	return nil
}

// bodyPath is the request path of a body size.
func bodyPath(body string) string {
	if body == BodyLarge {
		return LargePath
	}
	return "/"
}

// measureAll runs the warm-up, then Rounds rounds; each round visits every
// target (starting one further each round) and runs both bodies at Conns
// and at one connection.
func (h *harness) measureAll(ctx context.Context, targets []*target) ([]Sample, error) {
	o := h.o
	bodies := []string{BodySmall, BodyLarge}
	if o.Warmup > 0 {
		h.say("warm-up: %v per target and body", o.Warmup)
		for _, t := range targets {
			for _, body := range bodies {
				if _, err := h.measure(ctx, t, body, o.Conns, o.Warmup, 0); err != nil {
					return nil, err
				}
			}
		}
	}
	var perRound time.Duration
	for _, t := range targets {
		perRound += time.Duration(len(bodies)) * o.Duration.Truncate(time.Second)
		if !t.BothCores {
			perRound += time.Duration(len(bodies)) * o.LatencyDuration.Truncate(time.Second)
		}
	}
	h.say("%d rounds of %d targets × 2 bodies × (wrk -c%d -d%v, then -c1 -d%v): about %v",
		o.Rounds, len(targets), o.Conns, o.Duration, o.LatencyDuration, time.Duration(o.Rounds)*perRound)
	var samples []Sample
	for round := range o.Rounds {
		for i := range targets {
			t := targets[(i+round)%len(targets)]
			for j := range bodies {
				body := bodies[(j+round)%len(bodies)]
				runs := []struct {
					conns int
					dur   time.Duration
				}{{o.Conns, o.Duration}, {1, o.LatencyDuration}}
				if t.BothCores {
					runs = runs[:1] // its table has no latency at c=1
				}
				for _, c := range runs {
					s, err := h.measure(ctx, t, body, c.conns, c.dur, round)
					if err != nil {
						return nil, err
					}
					samples = append(samples, s)
					cpu := "–"
					if s.Wrk.Requests > 0 {
						cpu = fmt.Sprintf("%.1f", float64(s.CPU.Microseconds())/float64(s.Wrk.Requests))
					}
					fmt.Fprintf(o.Progress, "    round %d/%d  %-34s %-5s c=%-3d %8.0f req/s  p50 %7.0fµs  p99 %7.0fµs  cpu %5s µs/req  errors %d\n",
						round+1, o.Rounds, t.Label, body, c.conns, s.Wrk.RPS(), float64(s.Wrk.P50.Microseconds()),
						float64(s.Wrk.P99.Microseconds()), cpu, s.Wrk.Errors())
				}
			}
		}
	}
	return samples, nil
}

// measure runs wrk once against t and samples its processes' CPU time
// before and after, and their memory after.
func (h *harness) measure(ctx context.Context, t *target, body string, conns int, d time.Duration, round int) (Sample, error) {
	if err := t.proc.Err(); err != nil {
		return Sample{}, err
	}
	if t.accessLog != "" {
		if err := os.Truncate(t.accessLog, 0); err != nil { // bounded disk use; zkgate appends
			return Sample{}, fmt.Errorf("benchkit: truncate %s: %w", t.accessLog, err)
		}
	}
	pids := t.pids()
	before, err := GroupUsage(pids)
	if err != nil {
		return Sample{}, fmt.Errorf("benchkit: %s: %w", t.Name, err)
	}
	res, err := RunWrk(ctx, WrkOptions{Bin: h.tools["wrk"], Script: h.script, URL: t.url + t.prefix + bodyPath(body),
		Threads: 1, Conns: conns, Duration: d, Headers: t.headers})
	if err != nil {
		return Sample{}, err
	}
	after, err := GroupUsage(pids)
	if err != nil {
		return Sample{}, fmt.Errorf("benchkit: %s after the run: %w (%v)", t.Name, err, t.proc.Err())
	}
	return Sample{Round: round, Target: t.Name, Body: body, Conns: conns, Wrk: res, CPU: after.CPU - before.CPU, RSS: after.RSS}, nil
}

// writeSamples writes every sample as CSV.
func writeSamples(path string, samples []Sample) error {
	var b strings.Builder
	b.WriteString("round,target,body,conns,requests,seconds,rps,p50_us,p90_us,p99_us,max_us,errors,cpu_us,rss_bytes\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "%d,%s,%s,%d,%d,%.3f,%.1f,%d,%d,%d,%d,%d,%d,%d\n", s.Round+1, s.Target, s.Body, s.Conns,
			s.Wrk.Requests, s.Wrk.Duration.Seconds(), s.Wrk.RPS(), s.Wrk.P50.Microseconds(), s.Wrk.P90.Microseconds(),
			s.Wrk.P99.Microseconds(), s.Wrk.Max.Microseconds(), s.Wrk.Errors(), s.CPU.Microseconds(), s.RSS)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("benchkit: write samples: %w", err)
	}
	return nil
}

// versionCommands asks each tool for its version.
func (h *harness) versionCommands() []ToolCommand {
	cmds := []ToolCommand{
		{Name: "zkgate", Argv: []string{h.tools["zkgate"], "version"}},
		{Name: "nginx", Argv: []string{h.tools["nginx"], "-v"}, Trim: "nginx version:"},
		{Name: "HAProxy", Argv: []string{h.tools["haproxy"], "-v"}, Trim: "HAProxy version", Cut: " - "},
		{Name: "Caddy", Argv: []string{h.tools["caddy"], "version"}},
		{Name: "wrk", Argv: []string{h.tools["wrk"], "-v"}, Trim: "wrk", Cut: " Copyright"},
		{Name: "h2load", Argv: []string{h.tools["h2load"], "--version"}, Trim: "h2load"},
	}
	if g := h.tools["go"]; g != "" {
		cmds = append(cmds, ToolCommand{Name: "Go", Argv: []string{g, "version"}, Trim: "go version"})
	}
	return cmds
}
