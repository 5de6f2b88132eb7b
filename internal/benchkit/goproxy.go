package benchkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// NewReverseProxy returns a bare httputil.ReverseProxy to upstream
// ("host:port"), with a keep-alive pool of 256 idle connections (zkgate's
// default): the floor a Go proxy pays, with no routing, balancing, health
// checking, metrics or logging.
func NewReverseProxy(upstream string) (http.Handler, error) {
	_, port, splitErr := net.SplitHostPort(upstream)
	target, err := url.Parse("http://" + upstream)
	if splitErr != nil || port == "" || err != nil || target.Host != upstream {
		return nil, fmt.Errorf("benchkit: reverse proxy upstream %q: want host:port", upstream)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 1024, 256
	return &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport: tr,
	}, nil
}

// RunReverseProxy serves NewReverseProxy(upstream) on listen until ctx
// ends.
func RunReverseProxy(ctx context.Context, listen, upstream string) error {
	h, err := NewReverseProxy(upstream)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("benchkit: reverse proxy: listen %s: %w", listen, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("benchkit: reverse proxy: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("benchkit: reverse proxy: shutdown: %w", err)
	}
	return nil
}
