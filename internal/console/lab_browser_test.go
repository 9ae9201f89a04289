package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ocdn/ocdn/internal/lab"
	"github.com/ocdn/ocdn/internal/lab/labtest"
)

// TestConsoleAgainstLab drives Chromium through the console of a running
// lab, as an operator would: sign in, see every appliance, drain one and
// watch it leave steering, look up a client and read the explanation,
// see plots drawn from live data; and it checks what must be refused:
// markup in a query or a reason is shown as text, a cross-origin form
// post and a forged CSRF token change nothing, a wrong token gets the
// login page, a viewer cannot act. Each page is saved as a screenshot.
func TestConsoleAgainstLab(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a whole lab (about a minute)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := browser(t)
	dir := shots(t)

	work := t.TempDir()
	type ready struct{ url, tokenFile string }
	up := make(chan ready, 1)
	// Fewer clients probing more often than the built-in scenario, so
	// measurements arrive within seconds on a shared machine; addresses
	// of its own (other lab tests may run at the same time).
	sc := labtest.Scenario(t, labtest.Shrink{Titles: 4, ClientShare: 0.37, ProbeEvery: 3 * time.Second})
	l := lab.New(sc, lab.Options{WorkDir: work, ApplianceOctet: labtest.FreeOctet(t), Console: func(u, f string) { up <- ready{u, f} }})
	done := make(chan error, 1)
	go func() { _, err := l.Run(ctx); done <- err }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("lab.Run = %v", err)
		}
	}()
	var r ready
	select {
	case r = <-up:
	case err := <-done:
		t.Fatalf("lab ended before its control plane served: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the lab's control plane did not come up within 2m")
	}
	readToken := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	operator := readToken(r.tokenFile)
	viewer := readToken(filepath.Join(filepath.Dir(r.tokenFile), "viewer.token"))
	base := r.url
	t.Logf("console at %s", base)
	nav := func(path string) {
		t.Helper()
		if err := chromedp.Do(b, chromedp.Navigate(base+path)); err != nil {
			t.Fatalf("navigate %s: %v", path, err)
		}
	}

	// Without a session every page is the login page.
	nav("")
	waitJS(t, b, 30*time.Second, "the login page", `location.pathname === "/ui/login" && !!document.getElementById("token")`)
	screenshot(t, b, dir, "01-login")

	signIn(t, b, base, operator)
	const long = 3 * time.Minute // fill and turn-up on a busy machine
	waitJS(t, b, long, "every appliance up and serving", `(() => {
		const rows = document.querySelectorAll("#appliances tbody tr[data-appliance]");
		return rows.length === 5 && [...rows].every(r => r.dataset.state === "up" && r.dataset.serving === "true");
	})()`)
	for _, id := range []string{"ams-a-1", "ams-a-2", "fra-b-1", "fra-b-2", "amsix-1"} {
		if got := evalString(t, b, fmt.Sprintf(`document.getElementById("appliance-%s").querySelector("th").textContent`, id)); got != id {
			t.Errorf("fleet row of %s names %q", id, got)
		}
	}
	waitJS(t, b, time.Minute, "the fleet plots drawn", `(() => {
		const f = document.querySelector('figure[data-series="serving"]');
		return f.dataset.rendered === "true" && +f.dataset.points > 2 && !!f.querySelector("canvas");
	})()`)
	waitJS(t, b, time.Minute, "the map with its outline and every site", `document.querySelectorAll(".map-svg .site").length === 3 && document.querySelector(".map-svg .land").getAttribute("d").length > 1000`)
	screenshot(t, b, dir, "02-fleet")

	// Drain ams-a-2 with a reason that carries markup.
	const reason = `maintenance <img src=x id=injected-reason>`
	// The row's link, followed by its address: the live refresh replaces
	// the table every second, so a click could land on a replaced node.
	drainURL := evalString(t, b, `document.getElementById("drain-ams-a-2").href`)
	if err := chromedp.Do(b,
		chromedp.Navigate(drainURL),
		chromedp.WaitVisible(chromedp.ID("confirm")),
		chromedp.SendKeys(chromedp.ID("reason"), reason),
	); err != nil {
		t.Fatalf("opening the drain confirmation: %v", err)
	}
	screenshot(t, b, dir, "03-confirm-drain")
	if err := chromedp.Do(b, chromedp.Click(chromedp.ID("confirm"))); err != nil {
		t.Fatalf("confirming the drain: %v", err)
	}
	waitJS(t, b, time.Minute, "ams-a-2 out of steering on the fleet page", `(() => {
		const r = document.getElementById("appliance-ams-a-2");
		return location.pathname === "/ui/" && r && r.dataset.serving === "false" && r.dataset.state.startsWith("drain");
	})()`)
	waitJS(t, b, 30*time.Second, "the drain in the recent changes", `document.getElementById("events").textContent.includes("ams-a-2")`)
	screenshot(t, b, dir, "04-fleet-drained")

	// A client of isp-a: ams-a-2 heard its route but is left out. The
	// page starts with a skip link for keyboard users, and every field
	// has a label.
	nav("routes")
	if err := chromedp.Do(b, chromedp.KeyEvent("\t")); err != nil {
		t.Fatalf("tab: %v", err)
	}
	waitJS(t, b, 5*time.Second, "the skip link focused by the first Tab, every field labelled", `document.activeElement.classList.contains("skip") &&
		[...document.querySelectorAll("input:not([type=hidden])")].every(i => i.labels.length > 0)`)
	if err := chromedp.Do(b,
		chromedp.SendKeys(chromedp.ID("q"), "127.64.0.10"),
		chromedp.Click(chromedp.ID("lookup")),
		chromedp.WaitVisible(chromedp.ID("explanation")),
	); err != nil {
		t.Fatalf("route lookup: %v", err)
	}
	waitJS(t, b, 10*time.Second, "the explanation leaving ams-a-2 out", `(() => {
		const ex = document.querySelector('#explanation tr[data-appliance="ams-a-2"]');
		return !!ex && ex.dataset.excluded.startsWith("state drain") &&
			!document.querySelector('#steer-choices tr[data-appliance="ams-a-2"]') &&
			!!document.querySelector('#steer-choices tr[data-appliance="ams-a-1"]') &&
			!!document.querySelector('#rib-candidates');
	})()`)
	if got := evalString(t, b, `document.getElementById("lookup-client").textContent`); got != "127.64.0.10" {
		t.Errorf("lookup shows client %q", got)
	}
	screenshot(t, b, dir, "05-routes-lookup")

	// The placement loop as the control plane recorded it: the lab's
	// control plane replans at least every 30 s (replan_interval), with
	// max_churn 0.25; a table of top files for each of the three sites.
	nav("fill")
	waitJS(t, b, time.Minute, "the fill plot drawn, the manifests, a replan and the churn bound", `(() => {
		const f = document.querySelector('figure[data-series="filled"]');
		return f.dataset.rendered === "true" && +f.dataset.points > 0 && document.querySelectorAll("#manifests tbody tr").length === 3 &&
			document.querySelectorAll("#replans tbody tr[data-seq]").length > 0 &&
			document.getElementById("churn-bound").textContent === "25.0%" &&
			document.querySelectorAll("#top-files table[data-site]").length === 3;
	})()`)
	screenshot(t, b, dir, "06-fill")

	nav("measure")
	waitJS(t, b, long, "the TTFB plot drawn with measurements", `(() => {
		const f = document.querySelector('figure[data-series="ttfb_p50"]');
		return f.dataset.rendered === "true" && +f.dataset.points >= 3 && !!f.querySelector("canvas") &&
			document.querySelectorAll("#site-quantiles tbody th").length >= 2;
	})()`)
	screenshot(t, b, dir, "07-measure")

	nav("audit")
	waitJS(t, b, 10*time.Second, "the drain in the audit log, its reason as text", `(() => {
		const rows = [...document.querySelectorAll("#audit tbody tr")];
		return rows.some(r => r.textContent.includes("console:operator") && r.textContent.includes("drain") &&
			r.textContent.includes("<img src=x id=injected-reason>")) && !document.getElementById("injected-reason");
	})()`)
	screenshot(t, b, dir, "08-audit")

	// Markup in a query string is text.
	nav("routes?q=" + url.QueryEscape(`<b id=injected-query>x</b>`))
	waitJS(t, b, 10*time.Second, "the query shown as text", `document.getElementById("problem").textContent.includes("<b id=injected-query>") && !document.getElementById("injected-query")`)
	screenshot(t, b, dir, "09-injected-query")

	// A forged CSRF token from the console's own origin changes nothing.
	status := evalString(t, b, `fetch("/ui/action", {method: "POST", body: new URLSearchParams({csrf: "forged", action: "drain", appliance: "fra-b-1"})}).then(r => String(r.status))`)
	if status != "403" {
		t.Errorf("POST /ui/action with a forged CSRF token = %s, want 403", status)
	}
	// A form on another origin posting to the console (with the right
	// field names and the session cookie, which the browser sends to the
	// same site) is refused.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form id=f method=post action="%saction"><input name=csrf value=guess><input name=action value=drain><input name=appliance value=fra-b-1></form><script>document.getElementById("f").submit()</script>`, base)
	}))
	defer evil.Close()
	if err := chromedp.Do(b, chromedp.Navigate(evil.URL)); err != nil {
		t.Fatalf("navigate to the other origin: %v", err)
	}
	waitJS(t, b, 20*time.Second, "the cross-origin post refused", `location.pathname === "/ui/action" && document.body.innerText.includes("cross-origin request refused")`)
	screenshot(t, b, dir, "10-cross-origin-refused")
	nav("")
	waitJS(t, b, 30*time.Second, "fra-b-1 still serving", `document.getElementById("appliance-fra-b-1").dataset.serving === "true"`)

	// Sign out; a wrong token gets the login page again, not data.
	if err := chromedp.Do(b, chromedp.Click(chromedp.CSS("form.who button"))); err != nil {
		t.Fatalf("sign out: %v", err)
	}
	waitJS(t, b, 10*time.Second, "the login page after signing out", `location.pathname === "/ui/login"`)
	signIn(t, b, base, "not-the-token-0123456789")
	waitJS(t, b, 10*time.Second, "the wrong token refused", `location.pathname === "/ui/login" && !!document.getElementById("login-error") && !document.getElementById("appliances")`)
	screenshot(t, b, dir, "11-login-wrong-token")
	nav("")
	waitJS(t, b, 10*time.Second, "no data without a session", `location.pathname === "/ui/login" && !document.body.textContent.includes("ams-a-1")`)

	// A viewer reads but cannot act, nor see what the API keeps for admins.
	signIn(t, b, base, viewer)
	waitJS(t, b, 30*time.Second, "the fleet as a viewer", `document.getElementById("role").textContent === "viewer" &&
		document.querySelectorAll("#appliances tbody tr").length === 5 && !document.querySelector('a[id^="drain-"]')`)
	nav("routes?q=127.64.0.10")
	waitJS(t, b, 10*time.Second, "lookups refused to a viewer", `!!document.getElementById("lookup-needs-operator") && !document.getElementById("explanation")`)
	screenshot(t, b, dir, "12-viewer-routes")
}
