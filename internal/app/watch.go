package app

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/sirupsen/logrus"
)

// reloadDebounce is how long the config file must stay quiet before a reload:
// editors and config-management tools write a file in several steps (truncate,
// write, rename), and the gateway should read it once, complete.
const reloadDebounce = 250 * time.Millisecond

// watchReloads calls reload after the config file at path changes (debounced)
// and on SIGHUP, until ctx ends. It watches the file's directory, not the file,
// so that an atomic rename-into-place (and Kubernetes' ConfigMap symlink swap)
// is seen. The returned channel is closed when the watcher has stopped (after
// ctx ended), a reload it started included. When the file's directory cannot
// be watched, err says why and SIGHUP still reloads.
func watchReloads(ctx context.Context, path string, log logrus.FieldLogger, reload func(reason string)) (<-chan struct{}, error) {
	done := make(chan struct{})
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)

	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	dir := filepath.Dir(abs)
	// Without a file watch, SIGHUP still reloads: the error is returned
	// and the loop below runs with nil event channels.
	var events <-chan fsnotify.Event
	var errs <-chan error
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(dir); err != nil {
			_ = w.Close()
		} else {
			events, errs = w.Events, w.Errors
		}
	}
	go func() {
		defer close(done)
		defer signal.Stop(hup)
		if events != nil {
			defer w.Close()
		}
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-hup:
				reload("SIGHUP")
			case ev, ok := <-events:
				if !ok {
					return
				}
				if filepath.Clean(ev.Name) != abs && !isSymlinkSwap(ev.Name, dir) {
					continue
				}
				timer.Reset(reloadDebounce)
			case err, ok := <-errs:
				if !ok {
					return
				}
				log.WithError(err).Warn("config file watch error")
			case <-timer.C:
				reload("file changed")
			}
		}
	}()
	return done, err
}

// isSymlinkSwap reports whether name is the "..data" link Kubernetes swaps
// when a mounted ConfigMap changes.
func isSymlinkSwap(name, dir string) bool {
	return filepath.Clean(name) == filepath.Join(dir, "..data")
}
