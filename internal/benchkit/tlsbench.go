package benchkit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Port offsets of the TLS section from Options.BasePort.
const (
	offZkgateTLS = 26 // TLS entry point, then admin
	offNginxTLS  = 28
	offNginxTLS2 = 29
	// offZkgateTLSGo is zkgate-tls-go's TLS entry point, then admin.
	offZkgateTLSGo = 34
)

// tlsSelected reports whether the TLS section runs: every target when
// Options.Only is empty, else when it names a TLS target.
func (h *harness) tlsSelected() bool {
	return slices.ContainsFunc(TLSTargets, func(t TargetInfo) bool { return h.named(t.Name) })
}

// named reports whether a target of the TLS or compression section is
// measured: every target when Options.Only is empty, else those it names.
func (h *harness) named(name string) bool {
	return len(h.o.Only) == 0 || slices.Contains(h.o.Only, name)
}

// mainSelected reports whether the plain section runs: every target when
// Options.Only is empty, else when it names one of Targets (a run of TLS
// targets alone skips it).
func (h *harness) mainSelected() bool {
	return len(h.o.Only) == 0 || slices.ContainsFunc(h.o.Only, func(name string) bool {
		return slices.ContainsFunc(Targets, func(t TargetInfo) bool { return t.Name == name })
	})
}

// tlsSection makes the certificate, starts zkgate and nginx with TLS in
// front of the first backend, measures them in interleaved rounds beside
// the backend reached directly over plain HTTP, and stops them.
func (h *harness) tlsSection(ctx context.Context) (*TLSResults, error) {
	o := h.o
	dir := filepath.Join(h.run, "tls")
	cert, err := WriteBenchCert(dir)
	if err != nil {
		return nil, err
	}
	h.say("TLS: ECDSA P-256 certificate for 127.0.0.1 made in %s", dir)
	one := []string{h.addr(offBackends)}
	direct := &target{TargetInfo: TargetInfo{Name: Reference, Label: "direct, plain HTTP (no proxy)"},
		url: "http://" + one[0], proc: h.backend[0]}
	targets, stop, err := h.startSection(direct, TLSTargets, RoutePrefix, func(t *target) error {
		switch t.Name {
		case "zkgate-tls":
			return h.startZkgateTLS(ctx, t, cert, offZkgateTLS, "")
		case "zkgate-tls-go":
			return h.startZkgateTLS(ctx, t, cert, offZkgateTLSGo, "go")
		case NginxTLS:
			return h.startNginxTLS(t, offNginxTLS, 1, one, cert)
		case "nginx-tls-2":
			return h.startNginxTLS(t, offNginxTLS2, 2, one, cert)
		}
		return fmt.Errorf("benchkit: no way to start TLS target %q", t.Name)
	})
	defer stop()
	if err != nil {
		return nil, err
	}
	for _, t := range targets[1:] {
		for _, h2 := range []bool{false, true} {
			what := fmt.Sprintf("%s at %s to answer over TLS (HTTP/2 %v)", t.Label, t.url, h2)
			if err := WaitFor(ctx, 30*time.Second, what, tlsAnswers(t.proc, cert.Pool, t.url+t.prefix+"/", SmallBody, h2)); err != nil {
				return nil, err
			}
		}
		h.say("%-34s %s  pids %v", t.Label, t.url+t.prefix, t.pids())
	}
	samples, err := h.measureTLS(ctx, targets)
	if err != nil {
		return nil, err
	}
	if err := writeTLSSamples(filepath.Join(h.run, "tls-samples.csv"), samples); err != nil {
		return nil, err
	}
	res := &TLSResults{Rows: SummarizeTLS(samples, targetInfos(targets), Reference), Protocols: make(map[string]string),
		Rounds: o.Rounds, Conns: o.Conns, Duration: o.Duration}
	for _, kind := range TLSKinds {
		var seen []string
		for _, s := range samples {
			if s.Kind == kind && s.Protocol != "" && !slices.Contains(seen, s.Protocol) {
				seen = append(seen, s.Protocol)
			}
		}
		sort.Strings(seen)
		if len(seen) > 0 {
			res.Protocols[kind] = strings.Join(seen, "; ")
		}
	}
	return res, nil
}

// tlsAnswers returns a condition: a GET of url over TLS, trusting pool
// only, on HTTP/2 by ALPN when h2 (else HTTP/1.1), answers 200 with want,
// while p runs.
func tlsAnswers(p *Proc, pool *x509.CertPool, url, want string, h2 bool) func() (bool, error) {
	return func() (bool, error) {
		if err := p.Err(); err != nil {
			return false, err
		}
		proto, body, status, err := TLSGet(pool, url, h2)
		return err == nil && status == http.StatusOK && body == want && proto == map[bool]int{false: 1, true: 2}[h2], nil
	}
}

// TLSGet sends one GET of url on a new TLS connection that trusts pool
// only and offers HTTP/2 by ALPN when h2, else only HTTP/1.1; it returns
// the answer's major protocol version, body and status.
func TLSGet(pool *x509.CertPool, url string, h2 bool) (protoMajor int, body string, status int, err error) {
	protos := new(http.Protocols)
	protos.SetHTTP1(!h2)
	protos.SetHTTP2(h2)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Protocols: protos, ForceAttemptHTTP2: h2}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return 0, "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.ProtoMajor, string(b), resp.StatusCode, err
}

// startZkgateTLS starts bin/zkgate with ZkgateTLSConfig (access log off,
// as nginx runs in this section: the section compares TLS and HTTP/2, the
// main table the access log) and http2Server ("": the default); the TLS
// entry point and admin listen on off and the port after.
func (h *harness) startZkgateTLS(ctx context.Context, t *target, cert BenchCert, off int, http2Server string) error {
	text := ZkgateTLSConfig(h.port(off), h.port(off+1), h.port(offZooKeeper), "/services/bench1", cert.CertFile, cert.KeyFile, false, http2Server)
	if err := h.startZkgateWith(ctx, t, off, text, false); err != nil {
		return err
	}
	t.url = "https://" + h.addr(off)
	return nil
}

// startNginxTLS runs nginx with NginxTLSConfig, workers worker processes,
// on port offset off.
func (h *harness) startNginxTLS(t *target, off, workers int, upstreams []string, cert BenchCert) error {
	return h.startNginxWith(t, off, "https", func(dir string) string {
		return NginxTLSConfig(dir, h.port(off), workers, upstreams, cert.CertFile, cert.KeyFile)
	})
}

// measureTLS runs the warm-up, then Rounds rounds; each round visits every
// target (starting one further each round) and runs each kind (direct:
// plain keep-alive only).
func (h *harness) measureTLS(ctx context.Context, targets []*target) ([]TLSSample, error) {
	o := h.o
	return measureRounds(ctx, h, targets, rounds[TLSSample]{
		warmup: fmt.Sprintf("TLS warm-up: %v per target and measurement", o.Warmup),
		announce: fmt.Sprintf("TLS: %d rounds of %d targets × (wrk -t1 -c%d -d%v over HTTPS; h2load --h1 bursts of %d connections of one request each for %v; h2load -c%d -m%d -D %v)",
			o.Rounds, len(targets), o.Conns, o.Duration, HandshakeBurst, o.Duration, H2Clients, H2Streams, o.Duration),
		measures: func(t *target) []string {
			if t.Name == Reference {
				return []string{KindHTTPS}
			}
			return TLSKinds
		},
		once: h.measureTLSOnce,
		progress: func(round int, t *target, kind string, s TLSSample) {
			fmt.Fprintf(o.Progress, "    round %d/%d  %-38s %-9s %8.0f %-12s cpu %6s µs/req  errors %d\n",
				round+1, o.Rounds, t.Label, kind, s.Rate(), rateUnit(kind), oneDecimal(s.CPUPerReq()), s.Errors)
		},
	})
}

// measureTLSOnce runs one measurement of kind against t for d and samples
// its processes' CPU time before and after.
func (h *harness) measureTLSOnce(ctx context.Context, t *target, kind string, d time.Duration, round int) (TLSSample, error) {
	url := t.url + t.prefix + "/"
	cpu, err := beginRun(t)
	if err != nil {
		return TLSSample{}, err
	}
	s := TLSSample{Round: round, Target: t.Name, Kind: kind}
	switch kind {
	case KindHTTPS:
		res, err := RunWrk(ctx, WrkOptions{Bin: h.tools["wrk"], Script: h.script, URL: url, Threads: 1, Conns: h.o.Conns, Duration: d})
		if err != nil {
			return TLSSample{}, err
		}
		s.Requests, s.Errors, s.Duration, s.P50, s.P99 = res.Requests-res.Status, res.Errors(), res.Duration, res.P50, res.P99
	case KindHandshake:
		res, err := RunHandshakes(ctx, h.tools["h2load"], url, HandshakeBurst, d)
		if err != nil {
			return TLSSample{}, err
		}
		s.Requests, s.Errors, s.Duration, s.Protocol = res.Succeeded, res.Errors(), res.Duration, res.Protocol
	case KindH2:
		res, err := RunH2load(ctx, H2loadOptions{Bin: h.tools["h2load"], URL: url, Clients: H2Clients, Streams: H2Streams, Duration: d})
		if err != nil {
			return TLSSample{}, err
		}
		s.Requests, s.Errors, s.Duration, s.Protocol = res.Succeeded, res.Errors(), res.Duration, res.Protocol
	default:
		return TLSSample{}, fmt.Errorf("benchkit: unknown TLS measurement %q", kind)
	}
	if s.CPU, err = cpu(); err != nil {
		return TLSSample{}, err
	}
	return s, nil
}

// RunHandshakes opens new TLS connections to url, each sending one
// HTTP/1.1 request (ALPN http/1.1 only), in h2load runs of burst
// connections (h2load -n burst -c burst --h1), one after the other until d
// has passed (at least one run). A client of h2load opens one connection
// with a fresh TLS session and never resumes one, so that each request
// costs the server a full handshake; wrk -H 'Connection: close' and
// h2load's reconnecting clients resume their sessions, which hides most
// handshakes. It returns the runs' totals; Duration is the sum of their
// measured times.
func RunHandshakes(ctx context.Context, bin, url string, burst int, d time.Duration) (H2loadResult, error) {
	var total H2loadResult
	start := time.Now()
	for {
		r, err := RunH2load(ctx, H2loadOptions{Bin: bin, URL: url, Clients: burst, Requests: burst, H1: true})
		if err != nil {
			return H2loadResult{}, err
		}
		total.Duration += r.Duration
		total.Succeeded += r.Succeeded
		total.Failed += r.Failed
		total.Errored += r.Errored
		total.TimedOut += r.TimedOut
		total.Non2xx += r.Non2xx
		total.Protocol = r.Protocol
		if time.Since(start) >= d {
			return total, nil
		}
	}
}

// writeTLSSamples writes every TLS sample as CSV.
func writeTLSSamples(path string, samples []TLSSample) error {
	return writeSamplesCSV(path, "TLS", "round,target,kind,requests,seconds,rate,errors,cpu_us,p50_us,p99_us,protocol", samples, func(s TLSSample) string {
		return fmt.Sprintf("%d,%s,%s,%d,%.3f,%.1f,%d,%d,%d,%d,%s", s.Round+1, s.Target, s.Kind, s.Requests, s.Duration.Seconds(),
			s.Rate(), s.Errors, s.CPU.Microseconds(), s.P50.Microseconds(), s.P99.Microseconds(), s.Protocol)
	})
}
