// Package filewatch calls a function when any of a set of files changes:
// the one file watch of the gateway, shared by the TLS certificate store and
// the credential files of route authentication.
//
// It watches the directory of each file rather than the file, so that a file
// renamed into place (an editor's or an atomic writer's), a symlink
// re-pointed (certbot's live/ links) and the "..data" symlink swap of a
// Kubernetes Secret or ConfigMap volume are all seen; a watch on the file
// itself would follow the old inode and miss them. Changes are debounced: the
// function runs once the files have stayed quiet for the debounce period, so
// a set written as several files is read once, complete.
package filewatch

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/sirupsen/logrus"
)

// DefaultDebounce is the quiet period when Options.Debounce is zero.
const DefaultDebounce = 250 * time.Millisecond

// Options says what to watch and what to do on a change.
type Options struct {
	// Files are the paths watched; empty paths are ignored. Relative paths
	// are made absolute when Watch is called.
	Files []string
	// Debounce is how long the files must stay quiet before OnChange runs;
	// zero means DefaultDebounce.
	Debounce time.Duration
	// OnChange runs in the watch goroutine after each quiet period, never
	// two at once. A panic in it is recovered and logged; the watch goes on.
	OnChange func()
	// Logger receives watch errors and recovered panics; nil discards them.
	Logger logrus.FieldLogger
	// WaitGroup, when set, counts the watch goroutine: Add(1) before it
	// starts, Done when it has stopped (its last OnChange returned), so an
	// owner's Wait covers every watch it started.
	WaitGroup *sync.WaitGroup
}

// Watch starts watching until ctx ends. It returns once the watch is set up,
// or why it could not be (a directory that does not exist or cannot be
// watched, named in the error); nothing runs then.
func Watch(ctx context.Context, opts Options) error {
	if opts.OnChange == nil {
		return fmt.Errorf("watch: no OnChange function")
	}
	files := make(map[string]bool)
	dirs := make(map[string]bool)
	for _, path := range opts.Files {
		if path == "" {
			continue
		}
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		path = filepath.Clean(path)
		files[path] = true
		dirs[filepath.Dir(path)] = true
	}
	if len(files) == 0 {
		return fmt.Errorf("watch: no files given")
	}
	debounce := opts.Debounce
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	log := opts.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}

	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	sorted := make([]string, 0, len(dirs))
	for d := range dirs {
		sorted = append(sorted, d)
	}
	slices.Sort(sorted)
	for _, d := range sorted {
		if err := w.Add(d); err != nil {
			_ = w.Close()
			return fmt.Errorf("watch directory %s: %w", d, err)
		}
	}
	relevant := func(name string) bool {
		name = filepath.Clean(name)
		return files[name] || (filepath.Base(name) == "..data" && dirs[filepath.Dir(name)])
	}
	if opts.WaitGroup != nil {
		opts.WaitGroup.Add(1)
	}
	go func() {
		if opts.WaitGroup != nil {
			defer opts.WaitGroup.Done()
		}
		defer w.Close()
		loop(ctx, w, relevant, debounce, opts.OnChange, log)
	}()
	return nil
}

// loop waits for relevant events and calls onChange after each quiet period.
func loop(ctx context.Context, w *fsnotify.Watcher, relevant func(string) bool,
	debounce time.Duration, onChange func(), log logrus.FieldLogger) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if relevant(ev.Name) {
				timer.Reset(debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			log.WithError(err).Warn("file watch error")
		case <-timer.C:
			safeCall(onChange, log)
		}
	}
}

// safeCall runs f, turning a panic into a logged error.
func safeCall(f func(), log logrus.FieldLogger) {
	defer func() {
		if r := recover(); r != nil {
			log.WithField("panic", r).Error("file watch: reload panicked")
		}
	}()
	f()
}
