package console_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ocdn/ocdn/internal/browsertest"
	"github.com/ocdn/ocdn/internal/console"
)

// browser starts a headless Chromium (internal/browsertest) for the
// test; with OCDN_REQUIRE_EXTERNAL=1 (make test) a missing browser or a
// binary built without the npm assets is a failure, else a skip.
func browser(t *testing.T) context.Context {
	t.Helper()
	if m := console.MissingAssets(); len(m) > 0 {
		browsertest.Require(t, fmt.Sprintf("the console was built without its npm assets (%s): run make console-assets", strings.Join(m, ", ")))
	}
	return browsertest.Start(t, browsertest.Options{Width: 1400, Height: 1000}).Ctx
}

// shots is where the test writes its screenshots: OCDN_ARTIFACTS if set,
// else a directory under the system's temporary directory that outlives
// the test (so a person can look); the test prints it.
func shots(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("OCDN_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "ocdn-artifacts")
	}
	dir = filepath.Join(dir, "console-screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s", dir)
	return dir
}

// screenshot saves the whole page as dir/name.png.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", p)
}

// waitJS waits until a JavaScript condition in the page holds or the
// timeout passes; the page refreshes itself, so conditions about live
// data become true without reloading. A navigation under way (a form
// post, a redirect) ends a poll early; it is then polled again.
func waitJS(t *testing.T, ctx context.Context, timeout time.Duration, what, expr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	retry := time.NewTicker(200 * time.Millisecond)
	defer retry.Stop()
	for ctx.Err() == nil {
		if _, err = chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(200*time.Millisecond))); err == nil {
			return
		}
		// Let the navigation settle before polling the new document.
		chromedp.Do(ctx, chromedp.WaitReady(chromedp.CSS("body")))
		select {
		case <-ctx.Done():
		case <-retry.C:
		}
	}
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer dcancel()
	html, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`document.body ? document.body.innerHTML : ""`))
	t.Fatalf("waiting for %s: %v\n(%s)\npage: %.3000s", what, err, expr, html)
}

// evalString evaluates expr in the page (awaiting it if it is a promise).
func evalString(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

// signIn fills the login form.
func signIn(t *testing.T, ctx context.Context, base, token string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.ID("sign-in")),
	); err != nil {
		t.Fatalf("sign in: %v", err)
	}
}
