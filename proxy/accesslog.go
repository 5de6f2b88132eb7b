package proxy

import (
	"context"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"runtime"
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
	// rather than slowing requests down. It is shared evenly among the
	// log's shards (see AccessLog), each allowed at least
	// minShardLines of it. Default 8192.
	QueueSize int
	// FlushInterval is how often waiting lines are written. Default 1s.
	FlushInterval time.Duration
	// BufferSize is the size of waiting lines past which they are written
	// at once rather than at the next FlushInterval: all of them, once one
	// shard holds its share (at least minShardBuffer of it). Default 64 KiB.
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
// A request's goroutine encodes its line straight into the batch of one of
// the log's shards, under that shard's mutex, held for the encoding only;
// one background goroutine takes every shard's batch and writes them with
// one Write every FlushInterval, or at once when a shard passes its share
// of BufferSize. So a request pays for no allocation, no channel send and
// no goroutine wake-up, and a slow disk never blocks it: past its shard's
// share of QueueSize waiting lines, lines are dropped and counted. Close
// writes what waits and stops the writer.
//
// The shards (logShards) keep the requests served on different processors
// off each other's cache lines: with a single batch, every line moved the
// mutex and the batch's tail from one core to the other, and under load
// the contended mutex put goroutines to sleep and woke them. A line goes
// to the shard of its client's address (shardFor). The writer takes every
// shard's lines at one instant, holding all their locks, and merges them by
// the time their requests ended (the wall clock at the start plus the
// monotonic duration): a request that ended before another began is
// written before it, as from a single batch. (A connection's requests all
// go to one shard: a client that sends a burst over one connection, or a
// load balancer in front with few, has its shard's share of QueueSize and
// BufferSize.)
type AccessLog struct {
	w         io.Writer
	interval  time.Duration
	threshold int // a shard's share of BufferSize (shardShare)
	maxLines  int // a shard's share of QueueSize
	log       logrus.FieldLogger
	cancel    context.CancelFunc
	done      chan struct{}
	kick      chan struct{} // cap 1: a shard passed threshold

	shards []logShard // a power of two of them
	shift  uint8      // 32 - log2(len(shards))
	// Writer goroutine only: the batches taken from the shards, and what
	// they are merged into.
	taken []shardBatch
	out   []byte

	dropped  atomic.Uint64
	failing  bool // the last write failed; writer goroutine only
	closeErr error
	once     sync.Once
}

// A logShard is the waiting lines of the connections shardFor maps to it.
type logShard struct {
	mu      sync.Mutex
	batch   shardBatch // the waiting lines
	writing int        // lines being written: they wait too
	closed  bool       // lines are dropped
	// Up to 128 bytes (two cache lines, which the adjacent-line prefetch
	// moves together) to the next shard.
	_ [128 - 8 - 48 - 8 - 8]byte
}

// A shardBatch is lines, one after the other in buf, and where each ends.
type shardBatch struct {
	buf  []byte
	ends []lineEnd
}

// lineEnd is where a line ends in its batch, and when its request ended
// (Unix nanoseconds): the key the writer merges the shards' lines by.
type lineEnd struct {
	at  int64
	off int
}

// maxLogShards bounds the shards of a log.
const maxLogShards = 64

// logShards returns the number of shards of a log for procs processors:
// about four per processor, so that two requests logging at once seldom
// share one; a power of two, at most maxLogShards.
func logShards(procs int) int {
	n := 1
	for n < 4*procs && n < maxLogShards {
		n <<= 1
	}
	return n
}

// shardFor returns the shard of the lines of the client at remoteAddr,
// picked by the address's last bytes — its port, for a TCP client.
func (a *AccessLog) shardFor(remoteAddr string) *logShard {
	var h uint32
	for i := max(len(remoteAddr)-4, 0); i < len(remoteAddr); i++ {
		h = h<<8 | uint32(remoteAddr[i])
	}
	return &a.shards[(h*0x9e3779b1)>>a.shift]
}

// Access log defaults.
const (
	DefaultAccessLogQueueSize     = 8192
	DefaultAccessLogFlushInterval = time.Second
	DefaultAccessLogBufferSize    = 64 << 10
)

// maxSpareBatch is the largest batch buffer kept for reuse: the gathered
// batches, and all of a log's shards' together.
const maxSpareBatch = 1 << 20

// A shard's least share of BufferSize and QueueSize, when they are larger,
// and the room its batch has past its share, for the line that passes it
// (a long request target's line goes over; its batch grows once).
const (
	minShardBuffer = 4 << 10
	minShardLines  = 256
	shardLineRoom  = 2 << 10
)

// shardShare returns a shard's share of total among n, at least least
// (or total, when that is smaller) and 1.
func shardShare(total, n, least int) int {
	return max((total+n-1)/n, min(total, least), 1)
}

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
	n := logShards(runtime.GOMAXPROCS(0))
	ctx, cancel := context.WithCancel(context.Background())
	a := &AccessLog{
		w:         w,
		interval:  opts.FlushInterval,
		threshold: shardShare(opts.BufferSize, n, minShardBuffer),
		maxLines:  shardShare(opts.QueueSize, n, minShardLines),
		log:       log.WithField("component", "accesslog"),
		cancel:    cancel,
		done:      make(chan struct{}),
		kick:      make(chan struct{}, 1),
		shards:    make([]logShard, n),
		shift:     uint8(32 - bits.TrailingZeros(uint(n))),
		taken:     make([]shardBatch, n),
		out:       make([]byte, 0, min(opts.BufferSize+opts.BufferSize/4, maxSpareBatch)),
	}
	for i := range a.shards {
		a.shards[i].batch.buf = make([]byte, 0, a.shardCap())
	}
	go a.run(ctx)
	return a
}

// shardCap is the room a shard's batch is made with: its share of
// BufferSize and room for the line that passes it, within the shards' part
// of maxSpareBatch. A batch that grew past twice that is not kept.
func (a *AccessLog) shardCap() int {
	return min(a.threshold+shardLineRoom, maxSpareBatch/len(a.shards))
}

// Dropped returns the number of lines dropped because too many waited or
// the log was closed.
func (a *AccessLog) Dropped() uint64 { return a.dropped.Load() }

// Close writes the waiting lines and stops the writer. Lines logged after
// Close are dropped. It returns the last write's error, if any, and is safe
// to call more than once.
func (a *AccessLog) Close() error {
	a.once.Do(func() {
		for i := range a.shards {
			sh := &a.shards[i]
			sh.mu.Lock()
			sh.closed = true
			sh.mu.Unlock()
		}
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

// writeBatch takes the waiting lines of every shard and writes them, in
// one Write. The lines count as waiting until it returns.
func (a *AccessLog) writeBatch() error {
	// The batches written last time are the shards' next ones.
	for i := range a.taken {
		t := &a.taken[i]
		t.buf, t.ends = t.buf[:0], t.ends[:0]
		if cap(t.buf) > 2*a.shardCap() || t.buf == nil {
			t.buf = make([]byte, 0, a.shardCap()) // after a burst, or at the first
		}
	}
	// Every shard is held from its swap until the last one's (a request
	// holds one lock at most): a line appended after one shard was taken
	// is never written before a line taken from another.
	for i := range a.shards {
		sh, t := &a.shards[i], &a.taken[i]
		sh.mu.Lock()
		*t, sh.batch = sh.batch, *t
		sh.writing = len(t.ends)
	}
	for i := range a.shards {
		a.shards[i].mu.Unlock()
	}
	out := mergeLines(a.out[:0], a.taken)
	if cap(out) > maxSpareBatch {
		a.out = nil
	} else {
		a.out = out[:0]
	}
	if len(out) == 0 {
		return nil
	}
	_, err := a.w.Write(out)
	for i := range a.shards {
		sh := &a.shards[i]
		sh.mu.Lock()
		sh.writing = 0
		sh.mu.Unlock()
	}
	a.noteErr(err)
	return err
}

// mergeLines appends the lines of the batches to out in the order of
// their requests' ends. Each batch holds its lines about in that order
// (a line is appended after its request's end is read, under the shard's
// lock), and the merge keeps a batch's order where it is not.
func mergeLines(out []byte, batches []shardBatch) []byte {
	var next [maxLogShards]int // per batch, its next line
	for {
		first := -1
		for i := range batches {
			b := &batches[i]
			if next[i] < len(b.ends) && (first < 0 || b.ends[next[i]].at < batches[first].ends[next[first]].at) {
				first = i
			}
		}
		if first < 0 {
			return out
		}
		b, k := &batches[first], next[first]
		from := 0
		if k > 0 {
			from = b.ends[k-1].off
		}
		out = append(out, b.buf[from:b.ends[k].off]...)
		next[first]++
	}
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
	end := ex.start.UnixNano() + int64(d)
	sh := a.shardFor(remoteAddr)
	sh.mu.Lock()
	if sh.closed || len(sh.batch.ends)+sh.writing >= a.maxLines {
		sh.mu.Unlock()
		a.dropped.Add(1)
		return
	}
	b := append(sh.batch.buf, `{"time":"`...)
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
	sh.batch.buf = b
	sh.batch.ends = append(sh.batch.ends, lineEnd{at: end, off: len(b)})
	full := len(b) >= a.threshold
	sh.mu.Unlock()
	if full {
		select {
		case a.kick <- struct{}{}:
		default: // the writer has been told already
		}
	}
}
