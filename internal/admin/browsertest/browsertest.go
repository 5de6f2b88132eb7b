// Package browsertest drives the system's headless Chromium from tests, for
// checks of the admin status page in a real browser: against the admin
// package's fake source in its own tests, and against a running gateway in
// end-to-end tests.
//
// It imports testing and is meant for _test.go files only; the gateway
// binary never links it.
//
//	ctx := browsertest.New(t)                       // skips or fails without Chromium
//	ctx = browsertest.NewTab(t, ctx)                // optional: one tab per subtest
//	browsertest.Open(t, ctx, adminURL)              // navigate, wait for the first poll
//	browsertest.WaitFor(t, ctx, `document.querySelector('[data-endpoint="127.0.0.1:9001"]') !== null`, 10*time.Second)
//	browsertest.Screenshot(t, ctx, filepath.Join(t.TempDir(), "status.png"))
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Viewport is the browser window size New sets, in CSS pixels.
const (
	ViewportWidth  = 1440
	ViewportHeight = 1000
)

// candidates are the executable names searched on PATH, Debian's first.
var candidates = []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome", "headless-shell"}

// ExecPath returns the Chromium executable to use: $CHROMIUM_PATH when set,
// else the first of chromium, chromium-browser, google-chrome on PATH, else "".
func ExecPath() string {
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		return p
	}
	for _, name := range candidates {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// New starts a headless Chromium with a fresh profile under t.TempDir() and
// returns a chromedp context for one tab, closed when the test ends. Without
// Chromium the test is skipped with a message naming the Debian package, or
// fails when $CI is "true".
func New(t testing.TB) context.Context {
	t.Helper()
	path := ExecPath()
	if path == "" {
		msg := "browsertest: no Chromium found (install Debian's chromium package: apt-get install chromium, or set CHROMIUM_PATH)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	profile := filepath.Join(t.TempDir(), "chromium-profile")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.WindowSize(ViewportWidth, ViewportHeight),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser process to exit
	})
	start(t, ctx, "start "+path)
	return ctx
}

// NewTab opens another tab in the browser of ctx (a context from New),
// closed when the test ends. Tabs share the browser but not their pages, so
// subtests can use one browser.
func NewTab(t testing.TB, ctx context.Context) context.Context {
	t.Helper()
	// A window of its own: Chrome hides inactive tabs, and a hidden page
	// gets no animation frames, which Poll waits for.
	tab, cancel := chromedp.NewContext(ctx, chromedp.WithNewWindow(true))
	t.Cleanup(cancel)
	start(t, tab, "open a tab")
	return tab
}

// start runs the first action on ctx, which creates its tab (and the
// browser, for the first context). That Run binds the tab's life to its
// context, so it must not be a timeout context: bound it from outside.
func start(t testing.TB, ctx context.Context, what string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		done <- chromedp.Do(ctx, chromedp.EmulateViewport(ViewportWidth, ViewportHeight))
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("browsertest: %s: %v", what, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("browsertest: %s: no answer within 60s", what)
	}
}

// Open navigates to url and waits until the status page has rendered its
// first poll (#app[data-loaded="true"]).
func Open(t testing.TB, ctx context.Context, url string) {
	t.Helper()
	if err := Navigate(ctx, url); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, ctx, `document.getElementById('app') && document.getElementById('app').dataset.loaded === 'true'`, 15*time.Second)
}

// Navigate loads url in the tab and waits for its load event.
func Navigate(ctx context.Context, url string) error {
	if err := run(ctx, 30*time.Second, chromedp.Navigate(url)); err != nil {
		return fmt.Errorf("browsertest: open %s: %w", url, err)
	}
	return nil
}

// WaitFor polls the JavaScript expression every 50ms until it is truthy, and
// fails the test when it is still not after timeout.
func WaitFor(t testing.TB, ctx context.Context, expr string, timeout time.Duration) {
	t.Helper()
	if err := Wait(ctx, expr, timeout); err != nil {
		t.Fatalf("browsertest: waiting %v for %s: %v", timeout, expr, err)
	}
}

// Wait is WaitFor returning the error instead of failing a test.
func Wait(ctx context.Context, expr string, timeout time.Duration) error {
	return run(ctx, timeout+5*time.Second, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[bool]("!!("+expr+")",
			chromedp.WithPollingInterval(50*time.Millisecond),
			chromedp.WithPollingTimeout(timeout))(ctx, tg)
		return chromedp.Void{}, err
	})
}

// Eval evaluates a JavaScript expression and decodes its JSON value into T.
func Eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("browsertest: evaluate %s: %v", expr, err)
	}
	return v
}

// Screenshot saves a PNG of the whole page to path, creating its directory.
func Screenshot(t testing.TB, ctx context.Context, path string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("browsertest: screenshot: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("browsertest: screenshot directory: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("browsertest: write screenshot %s: %v", path, err)
	}
}

// JSString quotes s as a JavaScript string literal, for building selectors
// such as `[data-endpoint=` + JSString(addr) + `]` inside expressions.
func JSString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals; U+2028/2029 are escaped
	return string(b)
}

func run(ctx context.Context, timeout time.Duration, a chromedp.Action[chromedp.Void]) error {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := chromedp.Run(tctx, a)
	return err
}
