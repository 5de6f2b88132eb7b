package auth

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/sirupsen/logrus"
	"github.com/zkgate/zkgate/internal/filewatch"
)

// maxFileSize bounds what is read from a credentials file: a path naming
// /dev/zero or a log file must not exhaust memory. 4 MiB is some 50,000 API
// keys or bcrypt lines.
const maxFileSize = 4 << 20

// Option sets an optional part of a check.
type Option func(*options)

type options struct {
	log logrus.FieldLogger
}

// WithLogger sets where reloads (done and refused) are logged; the default
// discards them.
func WithLogger(l logrus.FieldLogger) Option { return func(o *options) { o.log = l } }

func buildOptions(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.log = l
	}
	return o
}

// readFile reads a credentials file, refusing a directory or device, an
// empty (or all blank) file and one larger than maxFileSize. The error is a
// *FileError naming path.
func readFile(path string) ([]byte, error) {
	if path == "" {
		return nil, &FileError{Path: `""`, Err: errors.New("no file named")}
	}
	data, err := filewatch.ReadFile(path, maxFileSize)
	if err != nil {
		return nil, &FileError{Path: path, Err: err}
	}
	return data, nil
}

// forEachLine calls f with each line of a line-based credentials file that
// is neither blank nor a "#" comment, trimmed of surrounding spaces, and its
// 1-based number. A line holding a control character (a tab inside it
// included; a CR ending it excepted) is an error naming the line but not
// its content, which may be a secret. The first error stops the walk.
func forEachLine(path string, data []byte, f func(n int, line []byte) error) error {
	n := 0
	for line := range bytes.Lines(data) {
		n++
		line = bytes.TrimSuffix(line, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		line = bytes.Trim(line, " \t")
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		for _, c := range line {
			if c < 0x20 || c == 0x7f {
				return &FileError{Path: path, Line: n, Err: errors.New("holds a control character (the line is not shown)")}
			}
		}
		if err := f(n, line); err != nil {
			return &FileError{Path: path, Line: n, Err: err}
		}
	}
	return nil
}

// reloader is the reload and watch machinery the three checks share: one
// load at a time, counted and logged, and a file watch that reloads.
type reloader struct {
	what  string // "API keys", for logs
	files []string
	load  func() error // reads the files and publishes new state, or fails keeping the old
	log   logrus.FieldLogger

	mu       sync.Mutex // one load at a time, so the last one read wins
	reloads  atomic.Uint64
	failures atomic.Uint64
	watches  sync.WaitGroup
}

// Reload reads the file again; a file that does not load is an error and
// the previous credentials stay in force.
func (r *reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.load(); err != nil {
		r.failures.Add(1)
		r.log.WithError(err).Errorf("%s reload refused: keeping the previous ones", r.what)
		return err
	}
	r.reloads.Add(1)
	r.log.Infof("%s reloaded", r.what)
	return nil
}

// Watch reloads when the file changes, until ctx ends (see
// internal/filewatch). It returns once the watch is set up, or why it could
// not be; Wait waits for it to stop.
func (r *reloader) Watch(ctx context.Context) error {
	return filewatch.Watch(ctx, filewatch.Options{
		Files:     r.files,
		OnChange:  func() { _ = r.Reload() }, // logged and counted by Reload
		Logger:    r.log,
		WaitGroup: &r.watches,
	})
}

// Wait blocks until every watch started by Watch has stopped (after its ctx
// ended), a reload it started included.
func (r *reloader) Wait() { r.watches.Wait() }

// Reloads is the number of successful reloads (the first load not counted).
func (r *reloader) Reloads() uint64 { return r.reloads.Load() }

// ReloadFailures is the number of refused reloads.
func (r *reloader) ReloadFailures() uint64 { return r.failures.Load() }
