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
// ctx ended), a reload it started included; it is closed at once when the
// watch could not be set up (err).
func watchReloads(ctx context.Context, path string, log logrus.FieldLogger, reload func(reason string)) (<-chan struct{}, error) {
	done := make(chan struct{})
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)

	w, err := fsnotify.NewWatcher()
	if err != nil {
		signal.Stop(hup)
		close(done)
		return done, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	dir := filepath.Dir(abs)
	if err := w.Add(dir); err != nil {
		signal.Stop(hup)
		_ = w.Close()
		close(done)
		return done, err
	}
	go func() {
		defer close(done)
		defer signal.Stop(hup)
		defer w.Close()
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-hup:
				reload("SIGHUP")
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if filepath.Clean(ev.Name) != abs && !isSymlinkSwap(ev.Name, dir) {
					continue
				}
				timer.Reset(reloadDebounce)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.WithError(err).Warn("config file watch error")
			case <-timer.C:
				reload("file changed")
			}
		}
	}()
	return done, nil
}

// isSymlinkSwap reports whether name is the "..data" link Kubernetes swaps
// when a mounted ConfigMap changes.
func isSymlinkSwap(name, dir string) bool {
	return filepath.Clean(name) == filepath.Join(dir, "..data")
}
