package benchkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Options configure Run. Zero values take the defaults given.
type Options struct {
	// Root is the repository root; bin/zkgate is run from it. Required.
	Root string
	// State is the directory for configurations, logs and raw samples.
	// Default Root/.bench. Run replaces its subdirectory "run".
	State string
	// Out is where results.md and results.svg are written. Default
	// Root/docs/bench.
	Out string
	// Self is the zkbench executable, run as "Self backend ..." for the
	// backends. Default: the running executable.
	Self string
	// Rounds of measurements, interleaved across targets. Default 3.
	Rounds int
	// Duration of each run at Conns connections. Default 5s.
	Duration time.Duration
	// LatencyDuration of each run at one connection. Default 3s.
	LatencyDuration time.Duration
	// Warmup is one unrecorded run per target and body before the first
	// round; 0 = none.
	Warmup time.Duration
	// Conns is the main concurrency. Default 64.
	Conns int
	// BasePort is the first of the loopback ports used (BasePort to
	// BasePort+39). Default 19100.
	BasePort int
	// PropEvents is the number of discovery propagation events; 0 = skip.
	PropEvents int
	// HeldConns is the number of connections the connection benchmark
	// holds open through each of ConnTargets. Default 8000, at most
	// MaxHeldConns.
	HeldConns int
	// Pairs is the number of back-to-back pairs of each of Pairings run
	// after the rounds, rounded up to an even number so that each of the
	// two runs first as often; 0 takes the default, 6; negative skips them.
	Pairs int
	// SkipConns turns the connection benchmark off.
	SkipConns bool
	// PropQuiet ends a deregistration event (see PropagationConfig.Quiet).
	// Default 150ms.
	PropQuiet time.Duration
	// Only restricts the measured targets to these names, of Targets,
	// TLSTargets, GzipTargets and GRPCTargets (the reference, "direct", is always
	// measured). A section runs when Only names one of its targets: naming
	// only TLS or compression targets skips the plain section and the
	// connection benchmark; naming none of a section's skips it. Empty:
	// every target.
	Only []string
	// GzipLevel is the compression level of both proxies of the
	// compression section, 1 to 9. Default DefaultGzipLevel.
	GzipLevel int
	// Command is the command line recorded in the results.
	Command string
	// Log is the logger of the harness's ZooKeeper clients.
	Log logrus.FieldLogger
	// Progress receives a line per step and the final tables. Default
	// os.Stdout.
	Progress io.Writer
}

// Reference is the target ratios are computed against.
const Reference = "direct"

// Port offsets from Options.BasePort.
const (
	offZooKeeper = 0
	offBackends  = 1 // three backends: +1, +2, +3
	offZkgatePol = 4 // zkgate with policies: web, then admin
	offNginxLog  = 6
	offNginx2Log = 7
	offGoEpoll   = 8
	offZkgate    = 10
	offZkgate3   = 12
	offZkgateOff = 14
	offZkgatePro = 16 // each zkgate: web, then admin
	offZkgateStd = 18
	offNginx     = 20
	offHAProxy   = 21
	offCaddy     = 22
	offGoProxy   = 23
	offNginx2    = 24
	offHAProxy2  = 25
	offLast      = offNginxGRPC // the TLS section's ports (tlsbench.go), the compression section's (gzipbench.go), zkgate-tls-go's, then the gRPC section's (grpcbench.go) come last
)

// Targets lists every measured target in report order.
var Targets = []TargetInfo{
	{Name: Reference, Label: "direct (no proxy)"},
	{Name: "zkgate", Label: "zkgate, 1 backend"},
	{Name: PoliciesTarget, Label: "zkgate, 1 backend, JWT + rate limit + CORS"},
	{Name: "zkgate-3", Label: "zkgate, 3 backends"},
	{Name: "zkgate-nolog", Label: "zkgate, 1 backend, no access log"},
	{Name: "zkgate-nethttp", Label: "zkgate, net/http side (fast_path: false)"},
	{Name: "go-reverseproxy", Label: "bare Go httputil.ReverseProxy"},
	{Name: EpollTarget, Label: "bare Go epoll loop per core", BothCores: true},
	{Name: "nginx", Label: "nginx, 1 worker"},
	{Name: NginxLogTarget, Label: "nginx, 1 worker, access log"},
	{Name: "haproxy", Label: "HAProxy, nbthread 1"},
	{Name: "caddy", Label: "Caddy"},
	{Name: "nginx-2", Label: "nginx, 2 workers", BothCores: true},
	{Name: "haproxy-2", Label: "HAProxy, nbthread 2", BothCores: true},
	{Name: Nginx2LogTarget, Label: "nginx, 2 workers, access log", BothCores: true},
}

// EpollTarget is "zkbench epollproxy", a loop per core in Go that relays
// GETs and does nothing else: the floor of a Go gateway built as nginx
// is, on both cores.
const EpollTarget = "go-epoll"

// Nginx2LogTarget is nginx with 2 workers and its default access log, the
// both-cores counterpart of NginxLogTarget: zkgate with its access log
// stands against it (see Pairings).
const Nginx2LogTarget = "nginx-2-log"

// NginxLogTarget is nginx with one worker and its default access log
// (the combined format, a write per request) to a file, as zkgate's plain
// target logs each request: the two compare like for like (see
// NginxCPULine).
const NginxLogTarget = "nginx-log"

// PoliciesTarget is the plain zkgate target with policies on its route
// (ZkgatePoliciesConfig); its requests carry a bench token and an Origin.
// Its CPU per request is also reported against PoliciesBase's.
const PoliciesTarget = "zkgate-policies"

// PoliciesBase is the target PoliciesTarget's CPU per request is divided
// by: the same zkgate and routes without policies.
const PoliciesBase = "zkgate"

// BothCoresTargets are the rows of the both-cores table, in order: zkgate
// at its default GOMAXPROCS, with its access log and without, against
// nginx and HAProxy allowed both cores too (nginx also with its access
// log), the floor of a Go loop per core, and the reference.
var BothCoresTargets = []string{Reference, "zkgate", "zkgate-nolog", "nginx-2", Nginx2LogTarget, "haproxy-2", EpollTarget}

func (o Options) withDefaults() (Options, error) {
	if o.Root == "" {
		return o, errors.New("benchkit: options: Root is required")
	}
	if o.State == "" {
		o.State = filepath.Join(o.Root, ".bench")
	}
	if o.Out == "" {
		o.Out = filepath.Join(o.Root, "docs", "bench")
	}
	if o.Self == "" {
		self, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("benchkit: options: find own executable: %w", err)
		}
		o.Self = self
	}
	if o.Rounds == 0 {
		o.Rounds = 3
	}
	if o.Duration == 0 {
		o.Duration = 5 * time.Second
	}
	if o.LatencyDuration == 0 {
		o.LatencyDuration = 3 * time.Second
	}
	if o.Conns == 0 {
		o.Conns = 64
	}
	if o.BasePort == 0 {
		o.BasePort = 19100
	}
	if o.PropQuiet == 0 {
		o.PropQuiet = 150 * time.Millisecond
	}
	if o.HeldConns == 0 {
		o.HeldConns = 8000
	}
	if o.Pairs == 0 {
		o.Pairs = 6
	}
	if o.Pairs > 0 {
		o.Pairs += o.Pairs % 2
	}
	if o.GzipLevel == 0 {
		o.GzipLevel = DefaultGzipLevel
	}
	if o.Log == nil {
		l := logrus.New()
		l.SetLevel(logrus.WarnLevel)
		o.Log = l
	}
	if o.Progress == nil {
		o.Progress = os.Stdout
	}
	var errs []error
	if o.Rounds < 1 {
		errs = append(errs, fmt.Errorf("benchkit: rounds %d: want at least 1", o.Rounds))
	}
	if o.Duration < time.Second || o.LatencyDuration < time.Second {
		errs = append(errs, fmt.Errorf("benchkit: durations %v and %v: want at least 1s (wrk counts whole seconds)", o.Duration, o.LatencyDuration))
	}
	if o.Warmup < 0 || o.PropEvents < 0 || o.PropQuiet < 0 {
		errs = append(errs, errors.New("benchkit: warm-up, propagation events and quiet time must not be negative"))
	}
	if o.Conns < 1 {
		errs = append(errs, fmt.Errorf("benchkit: connections %d: want at least 1", o.Conns))
	}
	if o.GzipLevel < 1 || o.GzipLevel > 9 {
		errs = append(errs, fmt.Errorf("benchkit: compression level %d: want 1 (fastest) to 9 (smallest), as zkgate's compress.level and nginx's gzip_comp_level", o.GzipLevel))
	}
	if !o.SkipConns && (o.HeldConns < 1 || o.HeldConns > MaxHeldConns) {
		errs = append(errs, fmt.Errorf("benchkit: held connections %d: want 1 to %d (a process here may hold 20,000 descriptors; a proxy holds two per upgraded connection)", o.HeldConns, MaxHeldConns))
	}
	if o.BasePort < 1024 || o.BasePort+offLast > 65535 {
		errs = append(errs, fmt.Errorf("benchkit: base port %d: want 1024-%d", o.BasePort, 65535-offLast))
	}
	for _, name := range o.Only {
		if !slices.ContainsFunc(slices.Concat(Targets, TLSTargets, GzipTargets, GRPCTargets), func(t TargetInfo) bool { return t.Name == name }) {
			errs = append(errs, fmt.Errorf("benchkit: target %q: unknown (valid: %s)", name, targetNames()))
		}
	}
	return o, errors.Join(errs...)
}

func targetNames() string {
	var names []string
	for _, t := range slices.Concat(Targets, TLSTargets, GzipTargets, GRPCTargets) {
		names = append(names, t.Name)
	}
	return strings.Join(names, ", ")
}

// target is a measured target while the harness runs.
type target struct {
	TargetInfo
	url       string       // without trailing slash
	prefix    string       // the route requests take: RoutePrefix, or "" without routes
	proc      *Proc        // its main process (the backend for direct)
	pids      func() []int // the processes whose CPU and memory count
	accessLog string       // truncated before each run when set
	admin     string       // zkgate's admin URL
	headers   []string     // added to every request ("Name: value"), by wrk and the readiness checks
	wantIDs   int          // distinct backends to see answering before measuring
}

// harness is one Run's state.
type harness struct {
	o       Options
	tools   map[string]string
	run     string // the run's state directory
	script  string // wrk's script
	procs   *Procs
	backend []*Proc
	holders int // holder processes started, for their log names
}

// Run starts ZooKeeper, three backends and every target, measures them in
// interleaved rounds, measures discovery propagation, stops everything it
// started and writes the results. It returns early, still stopping
// everything, when ctx ends.
func Run(ctx context.Context, opts Options) (err error) {
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	started := time.Now()
	h := &harness{o: o, procs: &Procs{}, run: filepath.Join(o.State, "run")}
	if h.tools, err = findTools(o.Root); err != nil {
		return err
	}
	if err := checkPorts(o.BasePort); err != nil {
		return err
	}
	if err := os.RemoveAll(h.run); err != nil {
		return fmt.Errorf("benchkit: clear %s: %w", h.run, err)
	}
	if err := os.MkdirAll(h.run, 0o755); err != nil {
		return fmt.Errorf("benchkit: %w", err)
	}
	h.script = filepath.Join(h.run, "report.lua")
	if err := WriteWrkScript(h.script); err != nil {
		return err
	}
	defer func() {
		h.say("stopping every process started")
		if serr := h.procs.StopAll(10 * time.Second); serr != nil && err == nil {
			err = serr
		}
	}()
	loadStart := LoadAverage()

	h.say("starting ZooKeeper on 127.0.0.1:%d (state and logs in %s)", o.BasePort+offZooKeeper, h.run)
	if _, err := StartZooKeeper(ctx, h.procs, filepath.Join(h.run, "zookeeper"), o.BasePort+offZooKeeper); err != nil {
		return err
	}
	if err := h.startBackends(ctx); err != nil {
		return err
	}
	var (
		targets []*target
		samples []Sample
		conns   *ConnResults
		pairs   []PairSample
		notes   []string
	)
	if h.mainSelected() {
		if targets, err = h.startTargets(ctx); err != nil {
			return err
		}
		if samples, err = h.measureAll(ctx, targets); err != nil {
			return err
		}
		if err := writeSamples(filepath.Join(h.run, "samples.csv"), samples); err != nil {
			return err
		}
		if pairs, err = h.measurePairs(ctx, targets); err != nil {
			return err
		}
		if err := writePairSamples(filepath.Join(h.run, "pairs.csv"), pairs); err != nil {
			return err
		}
		if !o.SkipConns {
			if conns, err = h.connections(ctx, targets); err != nil {
				return err
			}
		}
		// The access logs' drop counts are read from the running
		// gateways, before they stop.
		notes = accessLogNotes(targets)
		for _, t := range targets {
			if t.Name != Reference && t.proc != nil {
				_ = h.procs.Stop(t.proc, 10*time.Second)
			}
		}
	}
	var tlsRes *TLSResults
	if h.tlsSelected() {
		if tlsRes, err = h.tlsSection(ctx); err != nil {
			return err
		}
	}
	var gzipRes *GzipResults
	if h.gzipSelected() {
		if gzipRes, err = h.gzipSection(ctx); err != nil {
			return err
		}
	}
	var grpcRes *GRPCResults
	if h.grpcSelected() {
		if grpcRes, err = h.grpcSection(ctx); err != nil {
			return err
		}
	}
	var prop *Propagation
	if o.PropEvents > 0 {
		p, err := h.propagation(ctx)
		if err != nil {
			return err
		}
		prop = &p
	}
	loadEnd := LoadAverage()

	res := Results{
		Rows:        Summarize(samples, targetInfos(targets), Reference, o.Conns),
		Pairs:       SummarizePairs(pairs, targetInfos(targets)),
		Propagation: prop,
		Conns:       conns,
		TLS:         tlsRes,
		Gzip:        gzipRes,
		GRPC:        grpcRes,
		Machine:     ReadMachine(h.versionCommands()),
		LoadStart:   loadStart,
		LoadEnd:     loadEnd,
		Started:     started,
		Elapsed:     time.Since(started),
		Options:     o,
		Notes:       append(notes, busyNote(loadStart, runtime.NumCPU())...),
	}
	if err := res.Write(o.Out); err != nil {
		return err
	}
	fmt.Fprintf(o.Progress, "\n%s\nwrote %s and %s in %v\n", res.Tables(), filepath.Join(o.Out, "results.md"),
		filepath.Join(o.Out, "results.svg"), res.Elapsed.Round(time.Second))
	return nil
}

func (h *harness) say(format string, args ...any) {
	fmt.Fprintf(h.o.Progress, "==> "+format+"\n", args...)
}

func (h *harness) port(off int) int { return h.o.BasePort + off }

func (h *harness) addr(off int) string { return "127.0.0.1:" + strconv.Itoa(h.port(off)) }

// findTools locates the executables the run needs.
func findTools(root string) (map[string]string, error) {
	tools := map[string]string{"zkgate": filepath.Join(root, "bin", "zkgate")}
	if _, err := os.Stat(tools["zkgate"]); err != nil {
		return nil, fmt.Errorf("benchkit: %s missing: run 'make build'", tools["zkgate"])
	}
	var missing []string
	for _, name := range []string{"wrk", "h2load", "nginx", "haproxy", "caddy", "java", "go"} {
		p, err := exec.LookPath(name)
		if err != nil {
			for _, dir := range []string{"/usr/sbin", "/sbin"} {
				if st, serr := os.Stat(filepath.Join(dir, name)); serr == nil && st.Mode()&0o111 != 0 {
					p, err = filepath.Join(dir, name), nil
					break
				}
			}
		}
		if err != nil {
			if name != "go" { // only its version is reported
				missing = append(missing, name)
			}
			continue
		}
		tools[name] = p
	}
	if _, err := os.Stat("/usr/share/java/zookeeper.jar"); err != nil {
		missing = append(missing, "zookeeper")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("benchkit: missing %s: run scripts/ensure-deps.sh wrk h2load nginx haproxy caddy zookeeper (as root it installs them)", strings.Join(missing, ", "))
	}
	return tools, nil
}

// checkPorts fails naming every port of the layout that is in use.
func checkPorts(base int) error {
	var busy []string
	offs := []int{offZooKeeper, offBackends, offBackends + 1, offBackends + 2, offNginxLog, offNginx2Log, offNginx, offHAProxy, offCaddy, offGoProxy, offGoEpoll, offNginx2, offHAProxy2,
		offNginxTLS, offNginxTLS2, offNginxGzip, offNginxGzip2, offGRPCBackend, offNginxGRPC}
	for _, off := range []int{offZkgate, offZkgate3, offZkgateOff, offZkgatePro, offZkgateStd, offZkgateTLS, offZkgatePol, offZkgateGzip, offZkgateTLSGo, offZkgateGRPC} {
		offs = append(offs, off, off+1)
	}
	for _, off := range offs {
		if !PortFree(base + off) {
			busy = append(busy, strconv.Itoa(base+off))
		}
	}
	if len(busy) > 0 {
		return fmt.Errorf("benchkit: ports in use on 127.0.0.1: %s; stop what uses them or set BENCH_BASE_PORT (the run uses BASE to BASE+%d)",
			strings.Join(busy, ", "), offLast)
	}
	return nil
}

// startBackends starts three backends; the first registers under
// /services/bench1 and /services/bench3, the others under /services/bench3.
func (h *harness) startBackends(ctx context.Context) error {
	for i := range 3 {
		paths := "/services/bench3"
		if i == 0 {
			paths = "/services/bench1,/services/bench3"
		}
		name := fmt.Sprintf("backend-%d", i+1)
		addr := h.addr(offBackends + i)
		p, err := h.procs.Start(ProcSpec{
			Name: name,
			Argv: []string{h.o.Self, "backend", "--listen", addr, "--id", name,
				"--zookeeper", h.addr(offZooKeeper), "--path", paths},
			Log: filepath.Join(h.run, name+".log"),
		})
		if err != nil {
			return err
		}
		h.backend = append(h.backend, p)
		if err := WaitFor(ctx, 20*time.Second, name+" on "+addr, h.answers(p, "http://"+addr+IDPath, []byte(name))); err != nil {
			return err
		}
	}
	h.say("three backends on %s-%d, registered under /services/bench1 (the first) and /services/bench3", h.addr(offBackends), h.port(offBackends+2))
	return nil
}

// answers returns a condition: url answers 200 with body want, while p
// runs. headers ("Name: value") are sent with the request.
func (h *harness) answers(p *Proc, url string, want []byte, headers ...string) func() (bool, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	return func() (bool, error) {
		if p != nil {
			if err := p.Err(); err != nil {
				return false, err
			}
		}
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		for _, hv := range headers {
			name, value, _ := strings.Cut(hv, ":")
			req.Header.Add(name, strings.TrimSpace(value))
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return err == nil && resp.StatusCode == http.StatusOK && string(body) == string(want), nil
	}
}

// distinct returns a condition: n different backends answer url+IDPath
// within 10n requests.
func (h *harness) distinct(p *Proc, url string, n int) func() (bool, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	return func() (bool, error) {
		if err := p.Err(); err != nil {
			return false, err
		}
		seen := make(map[string]bool)
		for range 10 * n {
			resp, err := client.Get(url + IDPath)
			if err != nil {
				return false, nil
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				seen[string(body)] = true
			}
			if len(seen) >= n {
				return true, nil
			}
		}
		return false, nil
	}
}

func (h *harness) selected(name string) bool {
	return name == Reference || len(h.o.Only) == 0 || slices.Contains(h.o.Only, name)
}
