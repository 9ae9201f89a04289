// Package browsertest starts Debian's Chromium for tests and drives it
// with chromedp: a headless browser with a fresh profile and the flags
// that keep it off the network (this machine reaches none but loopback),
// optionally behind a proxy, whose console messages and exceptions go to
// the test log; and waits on conditions in the page rather than on time.
//
// A test that needs the browser skips without it, and fails with
// OCDN_REQUIRE_EXTERNAL=1 (make test), naming the Debian package.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Require skips the test with why, or fails it under
// OCDN_REQUIRE_EXTERNAL=1.
func Require(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("OCDN_REQUIRE_EXTERNAL") == "1" {
		t.Fatalf("%s; OCDN_REQUIRE_EXTERNAL=1 makes this a failure", why)
	}
	t.Skipf("%s; set OCDN_REQUIRE_EXTERNAL=1 to make this a failure", why)
}

// Chromium returns the path of Debian's Chromium, or skips (fails under
// OCDN_REQUIRE_EXTERNAL=1).
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	Require(t, "chromium not found in PATH: install the Debian package chromium (apt-get install chromium)")
	return ""
}

// Options shape a browser.
type Options struct {
	// Proxy, when set, sends every connection through this proxy
	// (socks5://host:port), loopback included.
	Proxy string
	// Flags are extra command-line flags (name → value; true for a bare
	// switch).
	Flags map[string]any
	// Width and Height are the window's size (1200×900 when zero), which
	// is what full-page screenshots show.
	Width, Height int
}

// Browser is one headless Chromium and its first tab.
type Browser struct {
	// Ctx runs chromedp actions in the tab; it ends with the test.
	Ctx context.Context
	t   testing.TB

	mu      sync.Mutex
	console []string
}

// Start launches Chromium for the test; it is stopped at the test's end.
func Start(t testing.TB, opts Options) *Browser {
	t.Helper()
	exe := Chromium(t)
	flags := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
	}
	w, h := opts.Width, opts.Height
	if w == 0 || h == 0 {
		w, h = 1200, 900
	}
	flags = append(flags, chromedp.WindowSize(w, h))
	if opts.Proxy != "" {
		// Chromium never proxies loopback unless told not to bypass it.
		flags = append(flags, chromedp.ProxyServer(opts.Proxy), chromedp.Flag("proxy-bypass-list", "<-loopback>"))
	}
	for k, v := range opts.Flags {
		flags = append(flags, chromedp.Flag(k, v))
	}
	b := &Browser{t: t}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), flags...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf), chromedp.WithListener(b.onEvent))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	b.Ctx = ctx
	return b
}

// onEvent keeps the page's console output and exceptions; it runs on
// chromedp's reader and must be quick.
func (b *Browser) onEvent(ev any) {
	var line string
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		var args []string
		for _, a := range e.Args {
			if len(a.Value) > 0 {
				args = append(args, string(a.Value))
			} else {
				args = append(args, a.Description)
			}
		}
		line = fmt.Sprintf("console.%s: %s", e.Type, strings.Join(args, " "))
	case *runtime.EventExceptionThrown:
		line = "exception: " + e.ExceptionDetails.Text
		if ex := e.ExceptionDetails.Exception; ex != nil {
			line += " " + ex.Description
		}
	default:
		return
	}
	b.mu.Lock()
	b.console = append(b.console, line)
	b.mu.Unlock()
}

// Console is what the page logged and threw so far.
func (b *Browser) Console() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.console...)
}

// Navigate opens url in the tab.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(url)); err != nil {
		b.t.Fatalf("navigate to %s: %v", url, err)
	}
}

// WaitJS waits until the JavaScript expression cond is true, up to
// timeout; on failure it reports what, the value of dump (a JavaScript
// expression describing the page's state) and the console.
func (b *Browser) WaitJS(timeout time.Duration, what, cond, dump string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, timeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0)))
	if err == nil {
		return
	}
	b.t.Fatalf("waiting %v for %s: %v\nstate: %s\nconsole:\n  %s", timeout, what, err, b.Dump(dump), strings.Join(b.Console(), "\n  "))
}

// Dump evaluates expr for a failure message (errors included).
func (b *Browser) Dump(expr string) string {
	if expr == "" {
		expr = "document.body ? document.body.innerText : ''"
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(b.Ctx), 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		return fmt.Sprintf("(%s: %v)", expr, err)
	}
	return s
}

// Eval evaluates expr in the page (awaiting a promise) and decodes its
// value into T.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.Ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}
