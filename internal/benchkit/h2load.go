package benchkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// H2loadOptions describe one h2load run (nghttp2's load generator).
type H2loadOptions struct {
	// Bin is the h2load executable. Default "h2load".
	Bin string
	// URL is the target. Required.
	URL string
	// Clients and Streams are h2load's -c and -m (streams per connection;
	// with H1, requests pipelined). Defaults 1 and 1.
	Clients, Streams int
	// Requests is -n, the total, split evenly over the clients: Requests
	// equal to Clients is one request per connection. Ignored when
	// Duration is set.
	Requests int
	// Duration is -D, a timed run (whole seconds, at least 1); 0 = count
	// Requests.
	Duration time.Duration
	// H1 offers only http/1.1 by ALPN (--h1).
	H1 bool
}

// Args returns h2load's command line for o, without the executable.
func (o H2loadOptions) Args() []string {
	args := []string{"-t1", "-c" + strconv.Itoa(max(o.Clients, 1)), "-m" + strconv.Itoa(max(o.Streams, 1))}
	if o.Duration > 0 {
		args = append(args, "-D", strconv.Itoa(max(int(o.Duration/time.Second), 1)))
	} else {
		args = append(args, "-n"+strconv.Itoa(max(o.Requests, o.Clients, 1)))
	}
	if o.H1 {
		args = append(args, "--h1")
	}
	return append(args, o.URL)
}

// H2loadResult is what one h2load run measured.
type H2loadResult struct {
	// Duration is h2load's "finished in".
	Duration time.Duration
	// Succeeded are the requests answered completely; Failed, Errored and
	// TimedOut h2load's other outcomes; Non2xx the answers that were not
	// 2xx.
	Succeeded, Failed, Errored, TimedOut, Non2xx int64
	// Protocol is the TLS version, cipher and key exchange h2load reports,
	// and the application protocol ALPN chose ("TLSv1.3
	// TLS_AES_128_GCM_SHA256 X25519 h2").
	Protocol string
}

// Errors returns every request that did not end in a 2xx answer.
func (r H2loadResult) Errors() int64 { return r.Failed + r.Errored + r.TimedOut + r.Non2xx }

// RunH2load runs h2load and returns its measurements. The run is bounded
// by its duration plus a margin (a minute for counted runs), and by ctx.
func RunH2load(ctx context.Context, o H2loadOptions) (H2loadResult, error) {
	if o.URL == "" {
		return H2loadResult{}, errors.New("benchkit: h2load: URL is required")
	}
	bin := o.Bin
	if bin == "" {
		bin = "h2load"
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, o.Args()...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return H2loadResult{}, fmt.Errorf("benchkit: h2load %s: %w (stderr: %s; stdout: %s)", strings.Join(o.Args(), " "), err,
			strings.TrimSpace(stderr.String()), truncate(stdout.String(), 300))
	}
	r, err := ParseH2load(stdout.String())
	if err != nil {
		return H2loadResult{}, fmt.Errorf("benchkit: h2load %s: %w", strings.Join(o.Args(), " "), err)
	}
	return r, nil
}

var (
	h2loadFinished = regexp.MustCompile(`(?m)^finished in ([0-9.]+(?:s|ms|us)),`)
	h2loadRequests = regexp.MustCompile(`(?m)^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2loadStatus   = regexp.MustCompile(`(?m)^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
	h2loadTLS      = regexp.MustCompile(`(?m)^(TLS Protocol|Cipher|Server Temp Key|Application protocol): (.+)$`)
)

// ParseH2load reads h2load's report.
func ParseH2load(out string) (H2loadResult, error) {
	var r H2loadResult
	m := h2loadFinished.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no \"finished in\" line in h2load output: %q", truncate(out, 300))
	}
	d, err := time.ParseDuration(m[1])
	if err != nil || d <= 0 {
		return r, fmt.Errorf("h2load duration %q: want a positive duration", m[1])
	}
	r.Duration = d
	req := h2loadRequests.FindStringSubmatch(out)
	st := h2loadStatus.FindStringSubmatch(out)
	if req == nil || st == nil {
		return r, fmt.Errorf("no requests or status codes line in h2load output: %q", truncate(out, 300))
	}
	n := func(s string) int64 { v, _ := strconv.ParseInt(s, 10, 64); return v } // the patterns admit digits only
	r.Succeeded, r.Failed, r.Errored, r.TimedOut = n(req[4]), n(req[5]), n(req[6]), n(req[7])
	r.Non2xx = n(st[2]) + n(st[3]) + n(st[4])
	// h2load counts a 4xx or 5xx answer as succeeded: only 2xx are.
	r.Succeeded = max(r.Succeeded-r.Non2xx, 0)
	var proto []string
	for _, m := range h2loadTLS.FindAllStringSubmatch(out, -1) {
		v := strings.TrimSpace(m[2])
		if m[1] == "Server Temp Key" { // "X25519 253 bits", "ECDH, prime256v1, 256 bits"
			f := strings.Fields(strings.NewReplacer(",", " ", "ECDH", "").Replace(v))
			if len(f) == 0 {
				continue
			}
			v = f[0]
		}
		proto = append(proto, v)
	}
	r.Protocol = strings.Join(proto, " ")
	return r, nil
}
