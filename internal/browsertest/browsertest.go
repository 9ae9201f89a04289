// Package browsertest starts Debian's Chromium for tests and drives it
// with chromedp: a headless browser with a fresh profile and the flags
// that keep it off the network (this machine reaches none but loopback),
// optionally behind a proxy and trusting a test's CA, whose console
// messages and exceptions go to the test log; and waits on conditions in
// the page rather than on time.
//
// A test that needs the browser skips without it, and fails with
// OCDN_REQUIRE_EXTERNAL=1 (make test), naming the Debian package.
package browsertest

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"

	"github.com/chromedp/cdproto/network"

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

// Certutil returns the path of NSS's certutil, or skips (fails under
// OCDN_REQUIRE_EXTERNAL=1).
func Certutil(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("certutil")
	if err != nil {
		Require(t, "certutil not found in PATH: install the Debian package libnss3-tools (apt-get install libnss3-tools)")
	}
	return p
}

// Options shape a browser.
type Options struct {
	// Proxy, when set, sends every connection through this proxy
	// (socks5://host:port), loopback included.
	Proxy string
	// Flags are extra command-line flags (name → value; true for a bare
	// switch).
	Flags map[string]any
	// CAFile, when set, is a PEM bundle of CA certificates the browser
	// trusts to issue servers' certificates, so that it verifies a test's
	// HTTPS servers as it would any site. Without it the browser trusts
	// only its built-in roots, which sign nothing on this machine.
	CAFile string
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
	// Chromium on Linux takes the roots a user added from the NSS database
	// in $HOME/.pki/nssdb, not from a flag (its flags can only skip
	// verification, which a test must not do). So every browser gets a
	// HOME of its own: with the test's CA imported when there is one, and
	// empty otherwise, so that what the machine's user trusts never
	// leaks into a test.
	home := t.TempDir()
	if opts.CAFile != "" {
		if err := trustCA(Certutil(t), home, opts.CAFile); err != nil {
			t.Fatalf("browser CA %s: %v", opts.CAFile, err)
		}
	}
	flags := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.UserDataDir(t.TempDir()), chromedp.Env("HOME=" + home),
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

// trustCA makes the NSS database Chromium reads under home and imports
// every certificate of the PEM file caFile into it as a CA trusted to
// issue TLS servers' certificates (trust "C,,": servers only, not e-mail
// or code signing).
func trustCA(certutil, home, caFile string) error {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		return err
	}
	run := func(args ...string) error {
		out, err := exec.Command(certutil, append([]string{"-d", "sql:" + db}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("certutil %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
	if err := run("-N", "--empty-password"); err != nil {
		return err
	}
	// certutil -i reads one certificate from a file: each goes on its own.
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		f := filepath.Join(home, fmt.Sprintf("ca-%d.pem", n))
		if err := os.WriteFile(f, pem.EncodeToMemory(blk), 0o600); err != nil {
			return err
		}
		if err := run("-A", "-t", "C,,", "-n", fmt.Sprintf("ocdn-test-ca-%d", n), "-i", f); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no PEM CERTIFICATE block in the file")
	}
	return nil
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

// ClearCache empties the browser's HTTP cache, so that a page fetches
// from the network what an earlier page cached (a second playback of a
// title: the appliances let browsers keep segments for a day).
func (b *Browser) ClearCache() {
	b.t.Helper()
	clear := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, network.ClearBrowserCache, cdp.Empty{})
		return err
	})
	if err := chromedp.Do(b.Ctx, clear); err != nil {
		b.t.Fatalf("clearing the browser's cache: %v", err)
	}
}

// Navigate opens url in the tab.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	if err := b.TryNavigate(url); err != nil {
		b.t.Fatalf("navigate to %s: %v", url, err)
	}
}

// TryNavigate opens url in the tab and returns why the page did not load
// (Chromium's net error, such as "page load error
// net::ERR_CERT_AUTHORITY_INVALID"), for tests of what must fail.
func (b *Browser) TryNavigate(url string) error {
	return chromedp.Do(b.Ctx, chromedp.Navigate(url))
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
