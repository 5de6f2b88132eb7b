//go:build !linux

package benchkit

import (
	"context"
	"errors"
)

// RunEpollProxy is Linux's only (epoll, SO_REUSEPORT): elsewhere it fails.
func RunEpollProxy(ctx context.Context, listen, upstream string, loops int) error {
	return errors.New("benchkit: epoll proxy: Linux only")
}
