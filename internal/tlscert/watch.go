package tlscert

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch reloads the store when one of its files changes, until ctx ends. It
// watches the directory of each certificate, key and CA file rather than the
// file, so that a file renamed into place, a symlink re-pointed (certbot's
// live/ links) and the "..data" symlink swap of a Kubernetes Secret or
// ConfigMap volume are all seen. Changes are debounced (WatchDebounce) so a
// pair written as two files is read once, complete; a reload that still sees
// half a renewal is refused like any bad one, and the next event reloads.
//
// Watch returns once the watch is set up, or why it could not be (the store
// keeps serving; Reload still works). Wait waits for the watch to stop.
func (s *Store) Watch(ctx context.Context) error {
	files := make(map[string]bool)
	dirs := make(map[string]bool)
	add := func(path string) {
		if path == "" {
			return
		}
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		path = filepath.Clean(path)
		files[path] = true
		dirs[filepath.Dir(path)] = true
	}
	for _, p := range s.pairs {
		add(p.CertFile)
		add(p.KeyFile)
	}
	add(s.caFile)

	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("tlscert: watch: %w", err)
	}
	sorted := make([]string, 0, len(dirs))
	for d := range dirs {
		sorted = append(sorted, d)
	}
	slices.Sort(sorted)
	for _, d := range sorted {
		if err := w.Add(d); err != nil {
			_ = w.Close()
			return fmt.Errorf("tlscert: watch directory %s: %w", d, err)
		}
	}
	relevant := func(name string) bool {
		name = filepath.Clean(name)
		return files[name] || (filepath.Base(name) == "..data" && dirs[filepath.Dir(name)])
	}
	s.watches.Add(1)
	go func() {
		defer s.watches.Done()
		defer w.Close()
		s.watchLoop(ctx, w, relevant)
	}()
	return nil
}

// watchLoop waits for relevant events and reloads after each quiet period.
func (s *Store) watchLoop(ctx context.Context, w *fsnotify.Watcher, relevant func(string) bool) {
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
				timer.Reset(s.debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			s.log.WithError(err).Warn("TLS certificate file watch error")
		case <-timer.C:
			s.safeReload()
		}
	}
}

// safeReload reloads, turning a panic into a logged, counted failure so the
// watch goes on.
func (s *Store) safeReload() {
	defer func() {
		if r := recover(); r != nil {
			s.failures.Add(1)
			s.log.WithField("panic", r).Error("TLS certificate reload panicked: keeping the previous ones")
		}
	}()
	_ = s.Reload() // logged and counted by Reload
}

// Wait blocks until every watch started by Watch has stopped (after its ctx
// ended), a reload it started included.
func (s *Store) Wait() { s.watches.Wait() }
