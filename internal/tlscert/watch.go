package tlscert

import (
	"context"
	"fmt"

	"github.com/zkgate/zkgate/internal/filewatch"
)

// Watch reloads the store when one of its files changes, until ctx ends. The
// watch is internal/filewatch's: it watches the directory of each
// certificate, key and CA file rather than the file, so that a file renamed
// into place, a symlink re-pointed (certbot's live/ links) and the "..data"
// symlink swap of a Kubernetes Secret or ConfigMap volume are all seen.
// Changes are debounced (WatchDebounce) so a pair written as two files is
// read once, complete; a reload that still sees half a renewal is refused
// like any bad one, and the next event reloads.
//
// Watch returns once the watch is set up, or why it could not be (the store
// keeps serving; Reload still works). Wait waits for the watch to stop.
func (s *Store) Watch(ctx context.Context) error {
	files := make([]string, 0, 2*len(s.pairs)+1)
	for _, p := range s.pairs {
		files = append(files, p.CertFile, p.KeyFile)
	}
	files = append(files, s.caFile)
	err := filewatch.Watch(ctx, filewatch.Options{
		Files:     files,
		Debounce:  s.debounce,
		OnChange:  s.safeReload,
		Logger:    s.log,
		WaitGroup: &s.watches,
	})
	if err != nil {
		return fmt.Errorf("tlscert: %w", err)
	}
	return nil
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
