package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// AccessLogOptions tunes an AccessLog. Zero fields take the defaults given.
type AccessLogOptions struct {
	// QueueSize is the number of lines that may wait for the writer; when
	// that many wait, further lines are dropped and counted (see Dropped)
	// rather than slowing requests down. Default 8192.
	QueueSize int
	// FlushInterval is how often waiting lines are written. Default 1s.
	FlushInterval time.Duration
	// BufferSize is the size of waiting lines past which they are written
	// at once rather than at the next FlushInterval. Default 64 KiB.
	BufferSize int
	// Logger receives write errors (once per failing run). Nil discards.
	Logger logrus.FieldLogger
}

// AccessLog writes one JSON line per request, with Traefik's field names:
//
//	{"time":"2025-01-02T03:04:05.123456789Z","ClientAddr":"10.0.0.7:51234",
//	 "ClientHost":"10.0.0.7","RequestMethod":"GET","RequestHost":"example.com",
//	 "RequestPath":"/api/x?y=1","RequestProtocol":"HTTP/1.1",
//	 "DownstreamStatus":200,"DownstreamContentSize":512,"Duration":1234567,
//	 "RouterName":"api","ServiceName":"echo","ServiceAddr":"10.0.1.2:8080",
//	 "RetryAttempts":0}
//
// (one line in the output). time is the request's arrival, Duration is in
// nanoseconds, ClientHost is the client address as X-Real-IP gives it,
// RequestPath is the request target as received, DownstreamStatus is 499
// when the client went away first, ServiceAddr is the last endpoint tried
// and RetryAttempts the number of endpoints tried after the first. Fields
// that do not apply (no route matched) are empty strings.
//
// A request's goroutine encodes its line straight into a shared batch,
// under a mutex held for the encoding only; one background goroutine takes
// the whole batch and writes it with one Write every FlushInterval, or at
// once when it passes BufferSize. So a request pays for no allocation, no
// channel send and no goroutine wake-up, and a slow disk never blocks it:
// past QueueSize waiting lines, lines are dropped and counted. Close
// writes what waits and stops the writer.
type AccessLog struct {
	w         io.Writer
	interval  time.Duration
	threshold int
	maxLines  int
	log       logrus.FieldLogger
	cancel    context.CancelFunc
	done      chan struct{}
	kick      chan struct{} // cap 1: the batch passed threshold

	mu      sync.Mutex
	pending []byte // the waiting lines
	lines   int    // how many
	writing int    // lines of the batch being written: they wait too
	spare   []byte // the batch last written, reused; writer goroutine only
	closed  bool   // lines are dropped

	dropped  atomic.Uint64
	failing  bool // the last write failed; writer goroutine only
	closeErr error
	once     sync.Once
}

// Access log defaults.
const (
	DefaultAccessLogQueueSize     = 8192
	DefaultAccessLogFlushInterval = time.Second
	DefaultAccessLogBufferSize    = 64 << 10
)

// maxSpareBatch is the largest batch buffer kept for reuse.
const maxSpareBatch = 1 << 20

// NewAccessLog starts an access log writing to w. The caller keeps
// ownership of w (a file, os.Stdout): Close does not close it.
func NewAccessLog(w io.Writer, opts AccessLogOptions) *AccessLog {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultAccessLogQueueSize
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultAccessLogFlushInterval
	}
	if opts.BufferSize <= 0 {
		opts.BufferSize = DefaultAccessLogBufferSize
	}
	log := opts.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &AccessLog{
		w:         w,
		interval:  opts.FlushInterval,
		threshold: opts.BufferSize,
		maxLines:  opts.QueueSize,
		log:       log.WithField("component", "accesslog"),
		cancel:    cancel,
		done:      make(chan struct{}),
		kick:      make(chan struct{}, 1),
		pending:   make([]byte, 0, min(opts.BufferSize+opts.BufferSize/4, maxSpareBatch)),
	}
	go a.run(ctx)
	return a
}

// Dropped returns the number of lines dropped because too many waited or
// the log was closed.
func (a *AccessLog) Dropped() uint64 { return a.dropped.Load() }

// Close writes the waiting lines and stops the writer. Lines logged after
// Close are dropped. It returns the last write's error, if any, and is safe
// to call more than once.
func (a *AccessLog) Close() error {
	a.once.Do(func() {
		a.mu.Lock()
		a.closed = true
		a.mu.Unlock()
		a.cancel()
		<-a.done
	})
	return a.closeErr
}

func (a *AccessLog) run(ctx context.Context) {
	defer close(a.done)
	defer func() {
		if p := recover(); p != nil {
			a.closeErr = fmt.Errorf("proxy: access log writer panicked: %v", p)
			a.log.WithField("panic", p).Error("access log writer stopped")
		}
	}()
	tick := time.NewTicker(a.interval)
	defer tick.Stop()
	for {
		select {
		case <-a.kick:
			a.writeBatch()
		case <-tick.C:
			a.writeBatch()
		case <-ctx.Done():
			if err := a.writeBatch(); err != nil {
				a.closeErr = fmt.Errorf("proxy: write access log: %w", err)
			}
			return
		}
	}
}

// writeBatch takes the waiting lines and writes them.
func (a *AccessLog) writeBatch() error {
	a.mu.Lock()
	b := a.pending
	a.pending, a.writing, a.lines = a.spare[:0], a.lines, 0
	a.mu.Unlock()
	if len(b) == 0 {
		a.spare = b
		return nil
	}
	_, err := a.w.Write(b)
	a.mu.Lock()
	a.writing = 0
	a.mu.Unlock()
	a.noteErr(err)
	if cap(b) > maxSpareBatch {
		b = nil
	}
	a.spare = b[:0]
	return err
}

// noteErr logs the first error of a failing run and the recovery. The
// lines of a failed write are lost; later ones are written again.
func (a *AccessLog) noteErr(err error) {
	switch {
	case err != nil && !a.failing:
		a.failing = true
		a.log.WithError(err).Error("access log write failed")
	case err == nil && a.failing:
		a.failing = false
		a.log.Info("access log writes recovered")
	}
}

// record encodes the line of one request and queues it.
func (a *AccessLog) record(ex *exchange, r *http.Request, status int, d time.Duration) {
	target := r.RequestURI
	if target == "" {
		target = r.URL.RequestURI()
	}
	a.recordFields(ex, r.RemoteAddr, r.Method, r.Host, target, r.Proto, status, d)
}

// recordFields is record with the request's fields given one by one (the
// fast path has no http.Request). The strings are not kept.
func (a *AccessLog) recordFields(ex *exchange, remoteAddr, method, host, target, proto string, status int, d time.Duration) {
	var route, service string
	if ex.e != nil {
		route, service = ex.e.route.Name, ex.e.service
	}
	retries := ex.attempts - 1
	if retries < 0 {
		retries = 0
	}
	a.mu.Lock()
	if a.closed || a.lines+a.writing >= a.maxLines {
		a.mu.Unlock()
		a.dropped.Add(1)
		return
	}
	b := append(a.pending, `{"time":"`...)
	b = appendRFC3339Nano(b, ex.start)
	b = append(b, `","ClientAddr":`...)
	b = appendJSONString(b, remoteAddr)
	b = append(b, `,"ClientHost":`...)
	b = appendJSONString(b, ex.clientIP)
	b = append(b, `,"RequestMethod":`...)
	b = appendJSONString(b, method)
	b = append(b, `,"RequestHost":`...)
	b = appendJSONString(b, host)
	b = append(b, `,"RequestPath":`...)
	b = appendJSONString(b, target)
	b = append(b, `,"RequestProtocol":`...)
	b = appendJSONString(b, proto)
	b = append(b, `,"DownstreamStatus":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"DownstreamContentSize":`...)
	b = strconv.AppendInt(b, ex.sw.size, 10)
	b = append(b, `,"Duration":`...)
	b = strconv.AppendInt(b, int64(d), 10)
	b = append(b, `,"RouterName":`...)
	b = appendJSONString(b, route)
	b = append(b, `,"ServiceName":`...)
	b = appendJSONString(b, service)
	b = append(b, `,"ServiceAddr":`...)
	b = appendJSONString(b, ex.addr)
	b = append(b, `,"RetryAttempts":`...)
	b = strconv.AppendInt(b, int64(retries), 10)
	b = append(b, "}\n"...)
	a.pending = b
	a.lines++
	full := len(b) >= a.threshold
	a.mu.Unlock()
	if full {
		select {
		case a.kick <- struct{}{}:
		default: // the writer has been told already
		}
	}
}
