// Package filewatch calls a function when any of a set of files changes:
// the one file watch of the gateway, shared by the TLS certificate store and
// the credential files of route authentication.
//
// It watches the directory of each file rather than the file, so that a file
// renamed into place (an editor's or an atomic writer's), a symlink
// re-pointed (certbot's live/ links) and the "..data" symlink swap of a
// Kubernetes Secret or ConfigMap volume are all seen; a watch on the file
// itself would follow the old inode and miss them. Symbolic links are
// followed: the directories of a link's targets are watched as well (a
// configured path that links into certbot's live/ directory, whose links
// point into archive/), and the chain is followed again after each change. Changes are debounced: the
// function runs once the files have stayed quiet for the debounce period, so
// a set written as several files is read once, complete.
package filewatch

import (
	"context"
	"fmt"
	"io"
	"os"
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
	var roots []string
	for _, path := range opts.Files {
		if path == "" {
			continue
		}
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		roots = append(roots, filepath.Clean(path))
	}
	if len(roots) == 0 {
		return fmt.Errorf("watch: no files given")
	}
	for _, p := range followLinks(roots) {
		files[p] = true
		dirs[filepath.Dir(p)] = true
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
	// After a change, links may point elsewhere (certbot re-points
	// live/ at new archive/ files): the paths they lead to are watched
	// from then on. Runs in the watch goroutine only.
	refollow := func() {
		for _, p := range followLinks(roots) {
			files[p] = true
			if d := filepath.Dir(p); !dirs[d] {
				if err := w.Add(d); err != nil {
					log.WithError(err).WithField("directory", d).Warn("file watch: a link's directory cannot be watched")
					continue
				}
				dirs[d] = true
			}
		}
	}
	if opts.WaitGroup != nil {
		opts.WaitGroup.Add(1)
	}
	go func() {
		if opts.WaitGroup != nil {
			defer opts.WaitGroup.Done()
		}
		defer w.Close()
		loop(ctx, w, relevant, debounce, func() { refollow(); opts.OnChange() }, log)
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

// maxLinks bounds the symbolic links followed from one path.
const maxLinks = 16

// followLinks returns the paths, and for each the symbolic links it goes
// through and the paths they point to, so that a change anywhere along the
// way is seen: /etc/zkgate/tls/api.crt → /etc/letsencrypt/live/x/
// fullchain.pem → ../../archive/x/fullchain2.pem.
func followLinks(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, p)
		for range maxLinks {
			fi, err := os.Lstat(p)
			if err != nil || fi.Mode()&os.ModeSymlink == 0 {
				break
			}
			target, err := os.Readlink(p)
			if err != nil {
				break
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(p), target)
			}
			p = filepath.Clean(target)
			out = append(out, p)
		}
		if real, err := filepath.EvalSymlinks(p); err == nil && real != p {
			out = append(out, real) // links among the directories
		}
	}
	return out
}
