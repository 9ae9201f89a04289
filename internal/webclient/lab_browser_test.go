package webclient_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/browsertest"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/lab"
	"github.com/ocdn/ocdn/internal/lab/labtest"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/webclient"
)

// TestPagesAgainstLab drives Chromium, as a client of the lab's first ISP
// over its emulated links (the lab's SOCKS5 proxy), through the three
// pages against a running lab as deployed, the appliances serving HTTPS
// by name, verified against the lab's CA (a browser without it is
// refused): the probe's reports land in the Parquet store with connect,
// TLS and first-byte times and dns pulses joined with the DNS server's
// log, marked as a browser's; the speed test's figure lies within 15%
// of the link to the site it measured; the player plays a real H.264 title to its end, failing over
// when the appliance serving it is killed, and its QoE is stored; given a one-URL list, it asks
// steering again when that appliance is killed and plays on from another. And
// what must be refused is: a page of another origin cannot read an
// appliance (no CORS headers, so the fetch fails), a preflight for a
// method or header appliances do not serve fails the fetch, and a report
// with a missing or forged recipe context is answered 400 naming the
// field.
func TestPagesAgainstLab(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a whole lab (a minute or more)")
	}
	if m := webclient.MissingAssets(); len(m) > 0 {
		browsertest.Require(t, fmt.Sprintf("built without the player library (%s): run make webclient-assets", strings.Join(m, ", ")))
	}
	browsertest.Chromium(t) // fail or skip before the lab starts

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	data := t.TempDir()
	liveCh := make(chan *lab.Live, 1)
	release := make(chan struct{})
	// Fewer Go clients than the built-in scenario (the browser is the
	// client under test; the machine is shared), on appliance addresses
	// free now (other packages' lab tests, and other checkouts' runs of
	// this one, run at the same time). The lab runs as deployed:
	// appliances serve HTTPS by name, and the browser verifies them
	// against the lab's CA.
	sc := labtest.Scenario(t, labtest.Shrink{Titles: 3, ClientShare: 0.2})
	l := lab.New(sc, lab.Options{WorkDir: t.TempDir(), DataDir: data, ApplianceOctet: labtest.FreeOctet(t),
		OnStreaming: func(ctx context.Context, live *lab.Live) {
			liveCh <- live
			select {
			case <-release:
			case <-ctx.Done():
			}
		}})
	type result struct {
		rep *lab.Report
		err error
	}
	done := make(chan result, 1)
	go func() { rep, err := l.Run(ctx); done <- result{rep, err} }()
	// On a failure before the end, stop the lab and wait for it.
	ended := false
	defer func() {
		if !ended {
			close(release)
			cancel()
			<-done
		}
	}()
	var live *lab.Live
	select {
	case live = <-liveCh:
	case r := <-done:
		ended = true // nothing left to stop or wait for
		t.Fatalf("lab ended before streaming: %v", r.err)
	case <-time.After(4 * time.Minute): // fill and turn-up on a busy machine
		t.Fatal("the lab did not fill and stream within 4m")
	}
	t.Logf("lab up: %+v", live.Browser)
	if live.Browser.CAFile == "" {
		t.Fatal("the lab names no CA for the browser: its appliances do not serve HTTPS")
	}
	// The browser trusts the lab's CA as a user would (its NSS database),
	// and nothing else: certificates are verified.
	b := browsertest.Start(t, browsertest.Options{Proxy: live.Browser.Proxy, CAFile: live.Browser.CAFile})
	base := live.ControlURL

	// The probe: the control plane's recipe run in the page.
	b.Navigate(base + webclient.ProbePath)
	b.WaitJS(2*time.Minute, "the probe's report stored", `ocdnProbe.phase === "done" || ocdnProbe.phase === "failed"`, `JSON.stringify(ocdnProbe)`)
	if e := browsertest.Eval[string](b, `String(ocdnProbe.error || "")`); e != "" {
		t.Fatalf("probe failed: %s\nconsole: %v", e, b.Console())
	}
	probeID := browsertest.Eval[string](b, `ocdnProbe.report.id`)

	// Bad reports from the page (an allowed origin): 400 naming the field.
	post := func(mutate string) string {
		return browsertest.Eval[string](b, `(async () => {
			const rec = await ocdn.recipe();
			const rep = {id: ocdn.newID(), recipe: rec.id, context: rec.context, client_time: new Date().toISOString(),
				pulses: [{target: "t", type: "http_ttfb", seq: 0, start: new Date().toISOString(), duration_ms: 3, ttfb_ms: 3, status: "ok"}]};
			`+mutate+`;
			const r = await fetch("/v1/reports", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(rep)});
			return r.status + " " + (await r.text());
		})()`)
	}
	for _, c := range []struct{ name, mutate, field string }{
		{"missing context", `delete rep.context`, `context: missing`},
		{"forged context", `rep.context = Object.assign({}, rep.context, {arm: "forged"})`, `context["sig"]: does not match`},
		{"context of another recipe", `rep.recipe = "r-forged"`, `context["sig"]: does not match`},
	} {
		if got := post(c.mutate); !strings.HasPrefix(got, "400 ") || !strings.Contains(got, c.field) {
			t.Errorf("report with a %s = %q, want 400 naming %s", c.name, got, c.field)
		}
	}

	// What the pages fetch is what steering hands out: HTTPS by name.
	target := browsertest.Eval[string](b, `ocdnProbe.recipe.targets[0].url`)
	tu, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := netip.ParseAddr(tu.Hostname()); tu.Scheme != "https" || err == nil {
		t.Fatalf("probe target %s, want an https URL with a name", target)
	}
	// Verification is on: a browser that does not trust the lab's CA,
	// otherwise the same, refuses the appliance.
	bare := browsertest.Start(t, browsertest.Options{Proxy: live.Browser.Proxy})
	if err := bare.TryNavigate(target); err == nil || !strings.Contains(err.Error(), "ERR_CERT_AUTHORITY_INVALID") {
		t.Errorf("%s from a browser without the lab's CA: navigation error %v, want net::ERR_CERT_AUTHORITY_INVALID", target, err)
	}

	// CORS: the control plane's pages may read an appliance; a page of
	// another origin gets no CORS headers, so its fetch fails, whether
	// simple or preflighted (Range).
	fetchJS := func(headers string) string {
		return fmt.Sprintf(`fetch(%q, {cache: "no-store", headers: %s}).then(r => "ok " + r.status, e => "failed: " + e.name)`, target, headers)
	}
	for _, h := range []string{`{}`, `{Range: "bytes=0-0"}`} {
		if got := browsertest.Eval[string](b, fetchJS(h)); !strings.HasPrefix(got, "ok 20") {
			t.Errorf("fetch %s with %s from the control plane's page = %q, want ok", target, h, got)
		}
	}
	// A preflight for what appliances do not serve is refused, so the
	// fetch fails even from an allowed origin.
	for _, opts := range []string{`{method: "DELETE"}`, `{headers: {"X-Not-Served": "1"}}`} {
		js := fmt.Sprintf(`fetch(%q, %s).then(r => "ok " + r.status, e => "failed: " + e.name)`, target, opts)
		if got := browsertest.Eval[string](b, js); got != "failed: TypeError" {
			t.Errorf("fetch %s with %s from the control plane's page = %q, want the preflight refused", target, opts, got)
		}
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><title>elsewhere</title><p>another origin")
	}))
	defer other.Close()
	b.Navigate(other.URL + "/")
	for _, h := range []string{`{}`, `{Range: "bytes=0-0"}`} {
		if got := browsertest.Eval[string](b, fetchJS(h)); got != "failed: TypeError" {
			t.Errorf("fetch %s with %s from %s = %q, want it to fail (no CORS headers)", target, h, other.URL, got)
		}
	}
	// A Go client of the same ISP (through the proxy, which resolves the
	// name) verifying with the same CA.
	pem, err := os.ReadFile(live.Browser.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no certificate", live.Browser.CAFile)
	}
	proxyURL, err := url.Parse(live.Browser.Proxy)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(func() *http.Request {
		req, _ := http.NewRequest("GET", target, nil)
		req.Header.Set("Origin", other.URL)
		return req
	}())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for k := range resp.Header {
		if strings.HasPrefix(k, "Access-Control-") || k == "Timing-Allow-Origin" {
			t.Errorf("GET %s with Origin %s: header %s = %q, want no CORS headers", target, other.URL, k, resp.Header.Get(k))
		}
	}

	// The speed test.
	b.Navigate(base + webclient.SpeedPath + "?max_seconds=25")
	b.WaitJS(2*time.Minute, "the speed test's result stored", `ocdnSpeed.phase === "failed" || (ocdnSpeed.phase === "done" && !!(ocdnSpeed.reported || ocdnSpeed.reportError))`, `JSON.stringify(ocdnSpeed)`)
	type speedResult struct {
		DownloadBps float64 `json:"download_bps"`
		Stable      bool    `json:"stable"`
		Connections int     `json:"connections"`
		UnloadedMs  float64 `json:"unloaded_latency_ms"`
		LoadedMs    float64 `json:"loaded_latency_ms"`
		DurationMs  float64 `json:"duration_ms"`
		Servers     []struct{ Appliance, Site string }
		ReportError string `json:"reportError"`
		Error       string `json:"error"`
		Reported    any    `json:"reported"`
	}
	var sp speedResult
	if err := json.Unmarshal([]byte(browsertest.Eval[string](b,
		`JSON.stringify(Object.assign({}, ocdnSpeed.result, {error: ocdnSpeed.error, reportError: ocdnSpeed.reportError, reported: ocdnSpeed.reported}))`)), &sp); err != nil {
		t.Fatal(err)
	}
	if sp.Error != "" || sp.ReportError != "" || sp.Reported == nil || len(sp.Servers) == 0 {
		t.Fatalf("speed test = %+v, want a result stored", sp)
	}
	link, ok := live.Link(sp.Servers[0].Site)
	if !ok || link.BandwidthMbps == 0 {
		t.Fatalf("no emulated link from %s to %s", live.Browser.ISP, sp.Servers[0].Site)
	}
	got := sp.DownloadBps / 1e6
	t.Logf("speed test: %.2f Mbit/s against a %.0f Mbit/s link to %s (%+.1f%%); stable %v, %d connections, latency %.1f ms unloaded, %.1f ms loaded (link RTT %v), %.1f s",
		got, link.BandwidthMbps, sp.Servers[0].Site, 100*(got/link.BandwidthMbps-1), sp.Stable, sp.Connections, sp.UnloadedMs, sp.LoadedMs, link.RTT, sp.DurationMs/1000)
	// Over HTTPS Chromium speaks HTTP/2 to an appliance (it offers h2 by
	// ALPN): the speed test's parallel downloads to one appliance are
	// streams of one connection, as in any browser.
	t.Logf("speed test: protocols to the appliances %s", browsertest.Eval[string](b, `[...new Set(performance.getEntriesByType("resource")
		.filter(e => e.name.startsWith("https:")).map(e => new URL(e.name).host + " " + e.nextHopProtocol))].join(", ")`))
	if math.Abs(got/link.BandwidthMbps-1) > 0.15 {
		t.Errorf("speed test measured %.2f Mbit/s, want within 15%% of the link's %.0f Mbit/s", got, link.BandwidthMbps)
	}
	if sp.UnloadedMs < float64(link.RTT.Milliseconds()) {
		t.Errorf("unloaded latency %.1f ms, below the link's round trip %v", sp.UnloadedMs, link.RTT)
	}

	// The player: kill the appliance it plays from once it plays, and it
	// must fail over and play to the end.
	b.Navigate(base + webclient.PlayPath + "?title=" + content.MediaTitle(0) + "&buffer=4")
	b.WaitJS(time.Minute, "playback under way", `ocdnPlayer.phase === "failed" || (ocdnPlayer.phase === "playing" && ocdnPlayer.position > 1)`, `JSON.stringify(ocdnPlayer, (k, v) => k === "hls" ? undefined : v)`)
	first := browsertest.Eval[string](b, `ocdnPlayer.servedBy[0] || ""`)
	if first == "" {
		t.Fatalf("player: %s", b.Dump(`JSON.stringify(ocdnPlayer, (k, v) => k === "hls" ? undefined : v)`))
	}
	if !live.KillAppliance(first) {
		t.Fatalf("could not kill %s", first)
	}
	t.Logf("killed %s at %.1f s of playback", first, browsertest.Eval[float64](b, `ocdnPlayer.position`))
	b.WaitJS(2*time.Minute, "the title played to its end and its QoE stored", `ocdnPlayer.phase === "failed" || (ocdnPlayer.phase === "ended" && !!(ocdnPlayer.reported || ocdnPlayer.reportError))`, `JSON.stringify(ocdnPlayer, (k, v) => k === "hls" ? undefined : v)`)
	var pl struct {
		Phase, Error, ReportError string
		Failovers                 int
		ServedBy                  []string
		QoE                       map[string]any
	}
	if err := json.Unmarshal([]byte(browsertest.Eval[string](b, `JSON.stringify({phase: ocdnPlayer.phase, error: ocdnPlayer.error || "", reportError: ocdnPlayer.reportError || "", failovers: ocdnPlayer.failovers, servedBy: ocdnPlayer.servedBy, qoe: ocdnPlayer.qoe})`)), &pl); err != nil {
		t.Fatal(err)
	}
	t.Logf("player: %+v", pl)
	t.Logf("player events: %s; hls.js bandwidth estimate %.1f Mbit/s", browsertest.Eval[string](b, `ocdnPlayer.events.join("; ")`),
		browsertest.Eval[float64](b, `ocdnPlayer.hls ? ocdnPlayer.hls.bandwidthEstimate / 1e6 : 0`))
	if pl.Phase != "ended" || pl.ReportError != "" || pl.Failovers < 1 || len(pl.ServedBy) < 2 || pl.ServedBy[0] != first || pl.ServedBy[len(pl.ServedBy)-1] == first {
		t.Errorf("player = %+v, want it ended after failing over from %s, its QoE stored", pl, first)
	}

	// A list of one URL: when its appliance is killed, the list is used
	// up at once, and the player must ask steering again (with backoff,
	// until the control plane has seen the appliance go) and play on.
	// The browser cached the title's segments from the playback above
	// (and a new token for the same file and client is the same URL):
	// without clearing, nothing would be fetched after the kill.
	b.ClearCache()
	b.Navigate(base + webclient.PlayPath + "?title=" + content.MediaTitle(0) + "&buffer=4&urls=1")
	b.WaitJS(time.Minute, "playback under way from a one-URL list", `ocdnPlayer.phase === "failed" || (ocdnPlayer.phase === "playing" && ocdnPlayer.position > 1)`, `JSON.stringify(ocdnPlayer, (k, v) => k === "hls" ? undefined : v)`)
	only := browsertest.Eval[string](b, `ocdnPlayer.servedBy[0] || ""`)
	if n := browsertest.Eval[float64](b, `ocdnPlayer.urls.length`); only == "" || n != 1 {
		t.Fatalf("player with ?urls=1: %d URLs, served by %q: %s", int(n), only, b.Dump(`JSON.stringify(ocdnPlayer, (k, v) => k === "hls" ? undefined : v)`))
	}
	if !live.KillAppliance(only) {
		t.Fatalf("could not kill %s", only)
	}
	t.Logf("killed %s, the one URL of the list, at %.1f s of playback", only, browsertest.Eval[float64](b, `ocdnPlayer.position`))
	b.WaitJS(2*time.Minute, "the title played to its end from a new list", `ocdnPlayer.phase === "failed" || (ocdnPlayer.phase === "ended" && !!(ocdnPlayer.reported || ocdnPlayer.reportError))`, `JSON.stringify(ocdnPlayer, (k, v) => k === "hls" ? undefined : v)`)
	var rs struct {
		Phase, Error string
		Resteers     int
		ServedBy     []string
	}
	if err := json.Unmarshal([]byte(browsertest.Eval[string](b, `JSON.stringify({phase: ocdnPlayer.phase, error: ocdnPlayer.error || "", resteers: ocdnPlayer.resteers, servedBy: ocdnPlayer.servedBy})`)), &rs); err != nil {
		t.Fatal(err)
	}
	t.Logf("player with one URL: %+v; events: %s", rs, browsertest.Eval[string](b, `ocdnPlayer.events.join("; ")`))
	if rs.Phase != "ended" || rs.Resteers < 1 || len(rs.ServedBy) < 2 || rs.ServedBy[0] != only || rs.ServedBy[len(rs.ServedBy)-1] == only {
		t.Errorf("player with one URL = %+v, want it ended after asking steering again, served last by another than %s; console:\n  %s", rs, only, strings.Join(b.Console(), "\n  "))
	}

	// End the lab: stopping the control plane compacts the store.
	ended = true
	close(release)
	r := <-done
	if r.err != nil {
		t.Fatalf("lab.Run = %v", r.err)
	}
	rows := func(table string) []map[string]any {
		var buf bytes.Buffer
		if _, err := measure.Export(&buf, data, table, "jsonl"); err != nil {
			t.Fatalf("export %s: %v", table, err)
		}
		var out []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if line == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("%s row %q: %v", table, line, err)
			}
			// The context column is a JSON object; the ingester marks a
			// browser's reports source=browser.
			if ctx, _ := m["context"].(map[string]any); ctx["source"] == measure.SourceBrowser {
				out = append(out, m)
			}
		}
		return out
	}
	var probeRows, connect, tlsRows, ttfb, speedRows, dnsRows, dnsJoined int
	for _, m := range rows("pulses") {
		if m["report_id"] == probeID {
			probeRows++
			// A dns pulse fetched from its own name, p-<nonce>.<the
			// appliance's name>, which only the lab's DNS server could
			// answer: the server's log of it joins the row (resolver).
			if m["type"] == "dns" {
				dnsRows++
				if m["status"] == "ok" && m["nonce"] != "" && m["resolver"] != "" {
					dnsJoined++
				} else {
					t.Errorf("browser dns pulse %v, want it ok, with its nonce joined with the DNS server's log (resolver)", m)
				}
			}
			if v, _ := m["connect_ms"].(float64); v > 0 {
				connect++
			}
			if v, _ := m["tls_ms"].(float64); v > 0 {
				tlsRows++
			}
			if v, _ := m["ttfb_ms"].(float64); v > 0 {
				ttfb++
			}
		}
		if m["target"] == "speedtest" {
			speedRows++
		}
	}
	t.Logf("Parquet: the probe's report %s: %d pulses, %d with connect_ms > 0, %d with tls_ms > 0, %d with ttfb_ms > 0, %d dns pulses joined with the server's log of %d; %d speed test rows",
		probeID, probeRows, connect, tlsRows, ttfb, dnsJoined, dnsRows, speedRows)
	if dnsRows == 0 {
		t.Errorf("the browser probe ran no dns pulse: the lab's recipe has them when appliances are named")
	}
	// New connections are HTTPS ones: they have a handshake time.
	if probeRows == 0 || connect == 0 || tlsRows == 0 || ttfb == 0 {
		t.Errorf("the browser probe's rows in the Parquet store: %d pulses, %d with a connect time, %d with a TLS time, %d with a first-byte time; want all non-zero", probeRows, connect, tlsRows, ttfb)
	}
	if speedRows != 1 {
		t.Errorf("speed test rows marked as a browser's = %d, want 1", speedRows)
	}
	qoe := rows("qoe")
	found := false
	for _, m := range qoe {
		if f, _ := m["failovers"].(float64); f >= 1 {
			found = true
			t.Logf("Parquet: the player's QoE row: %v", m)
		}
	}
	if !found {
		t.Errorf("no browser QoE row with a failover in the Parquet store (%d browser rows)", len(qoe))
	}
}
