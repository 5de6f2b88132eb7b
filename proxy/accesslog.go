package proxy

import (
	"bufio"
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
	// the queue is full, lines are dropped and counted (see Dropped)
	// rather than slowing requests down. Default 8192.
	QueueSize int
	// FlushInterval is how often buffered lines are flushed to the
	// writer. Default 1s.
	FlushInterval time.Duration
	// BufferSize is the size of the write buffer. Default 64 KiB.
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
// Lines are encoded on the request's goroutine into pooled buffers and
// written by one background goroutine through a buffered writer, so a slow
// disk never blocks a request. Close flushes and stops it.
type AccessLog struct {
	queue    chan *[]byte
	w        io.Writer
	out      *bufio.Writer
	interval time.Duration
	log      logrus.FieldLogger
	cancel   context.CancelFunc
	done     chan struct{}
	bufs     sync.Pool

	closed   atomic.Bool
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

// maxPooledLine is the largest line buffer returned to the pool.
const maxPooledLine = 16 << 10

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
		queue:    make(chan *[]byte, opts.QueueSize),
		w:        w,
		out:      bufio.NewWriterSize(w, opts.BufferSize),
		interval: opts.FlushInterval,
		log:      log.WithField("component", "accesslog"),
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	go a.run(ctx)
	return a
}

// Dropped returns the number of lines dropped because the queue was full or
// the log was closed.
func (a *AccessLog) Dropped() uint64 { return a.dropped.Load() }

// Close writes the queued lines, flushes them and stops the writer. Lines
// logged after Close are dropped. It returns the flush error, if any, and
// is safe to call more than once.
func (a *AccessLog) Close() error {
	a.once.Do(func() {
		a.closed.Store(true)
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
		case b := <-a.queue:
			a.write(b)
		case <-tick.C:
			if a.out.Buffered() > 0 {
				a.flush()
			}
		case <-ctx.Done():
			for {
				select {
				case b := <-a.queue:
					a.write(b)
				default:
					a.closeErr = a.flush()
					return
				}
			}
		}
	}
}

func (a *AccessLog) write(b *[]byte) {
	_, err := a.out.Write(*b)
	a.putBuf(b)
	a.noteErr(err)
}

func (a *AccessLog) flush() error {
	err := a.out.Flush()
	a.noteErr(err)
	if err != nil {
		return fmt.Errorf("proxy: flush access log: %w", err)
	}
	return nil
}

// noteErr logs the first error of a failing run and the recovery.
func (a *AccessLog) noteErr(err error) {
	switch {
	case err != nil && !a.failing:
		a.failing = true
		a.log.WithError(err).Error("access log write failed")
	case err == nil && a.failing:
		a.failing = false
		a.log.Info("access log writes recovered")
	}
	if err != nil {
		// A bufio.Writer keeps its first error forever: drop the
		// buffered lines and start over, so a passing failure (a full
		// disk) does not end logging.
		a.out.Reset(a.w)
	}
}

func (a *AccessLog) getBuf() *[]byte {
	if b, ok := a.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 512)
	return &b
}

func (a *AccessLog) putBuf(b *[]byte) {
	if cap(*b) > maxPooledLine {
		return
	}
	*b = (*b)[:0]
	a.bufs.Put(b)
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
	if a.closed.Load() {
		a.dropped.Add(1)
		return
	}
	var route, service string
	if ex.e != nil {
		route, service = ex.e.route.Name, ex.e.service
	}
	retries := ex.attempts - 1
	if retries < 0 {
		retries = 0
	}
	bp := a.getBuf()
	b := append((*bp)[:0], `{"time":"`...)
	b = ex.start.UTC().AppendFormat(b, time.RFC3339Nano)
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
	*bp = b
	select {
	case a.queue <- bp:
	default:
		a.dropped.Add(1)
		a.putBuf(bp)
	}
}
