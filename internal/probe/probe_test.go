package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ocdn/ocdn/internal/cpclient"
	"github.com/ocdn/ocdn/internal/cpclient/cptest"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/netem"
)

var allTypes = []string{measure.TypeTCPConnect, measure.TypeTLSHandshake, measure.TypeHTTPTTFB, measure.TypeThroughput}

// rangeServer serves size bytes of zeros with byte ranges, naming itself
// in the appliance header when name is set.
func rangeServer(t *testing.T, name string, size int64) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(rangeHandler(name, size))
	t.Cleanup(srv.Close)
	return srv
}

func rangeHandler(name string, size int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if name != "" {
			w.Header().Set(ApplianceHeader, name)
		}
		http.ServeContent(w, r, "f", time.Time{}, &zeros{size: size})
	})
}

// zeros is an io.ReadSeeker of size zero bytes.
type zeros struct{ size, off int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.off >= z.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), z.size-z.off))
	clear(p[:n])
	z.off += int64(n)
	return n, nil
}

func (z *zeros) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case 0:
		z.off = off
	case 1:
		z.off += off
	case 2:
		z.off = z.size + off
	}
	return z.off, nil
}

func TestRecipeJSONUsesMilliseconds(t *testing.T) {
	in := Recipe{ID: "r1", Pulses: 2, PulseDelay: 250 * time.Millisecond, PulseTimeout: 3 * time.Second,
		Targets: []Target{{ID: "a", Appliance: "oca1", Site: "s1", URL: "http://x/y", Types: []string{"tcp_connect"}, RangeBytes: 10, Steered: true}}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"pulse_delay_ms":250`, `"pulse_timeout_ms":3000`, `"range_bytes":10`, `"steered":true`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("json.Marshal(recipe) = %s, want it to contain %s", b, want)
		}
	}
	var out Recipe
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(in, out); d != "" {
		t.Errorf("recipe JSON round trip (-in +out):\n%s", d)
	}
}

// TestRecipeFamilyParam: family=both tells choose the client is
// dual-stack; any other value is refused naming the parameter.
func TestRecipeFamilyParam(t *testing.T) {
	var got []bool
	h := RecipeHandler(func(c netip.Addr, dual bool) ([]Target, error) {
		got = append(got, dual)
		return []Target{{ID: "t", Appliance: "a", Site: "s", URL: "http://127.1.0.1/x"}}, nil
	}, RecipeConfig{})
	srv := httptest.NewServer(h)
	defer srv.Close()
	cp := cpclient.Must([]string{srv.URL}, srv.Client(), "")
	for _, dual := range []bool{false, true} {
		if _, err := FetchRecipe(context.Background(), cp, dual); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(got, []bool{false, true}) {
		t.Errorf("choose saw dualStack %v, want [false true]", got)
	}
	resp, err := srv.Client().Get(srv.URL + "/v1/recipe?family=ipv5")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "family=") {
		t.Errorf("family=ipv5: %d %s, want 400 naming family", resp.StatusCode, body)
	}
}

func TestRecipeHandlerShufflesAndFills(t *testing.T) {
	var targets []Target
	for i := range 8 {
		targets = append(targets, Target{ID: fmt.Sprintf("t%d", i), Appliance: fmt.Sprintf("oca%d", i),
			Site: fmt.Sprintf("site%d", i/2), URL: "http://127.1.0.1/x", Steered: i < 2})
	}
	var gotClient netip.Addr
	h := RecipeHandler(func(c netip.Addr, _ bool) ([]Target, error) { gotClient = c; return slices.Clone(targets), nil },
		RecipeConfig{Pulses: 4, PulseDelay: 50 * time.Millisecond, PulseTimeout: time.Second, Version: "v7"})
	srv := httptest.NewServer(h)
	defer srv.Close()
	started := time.Now()
	orders := map[string]bool{}
	ids := map[string]bool{}
	for range 10 {
		rec, err := FetchRecipe(context.Background(), cpclient.Must([]string{srv.URL}, srv.Client(), ""), false)
		if err != nil {
			t.Fatal(err)
		}
		if gotClient != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("choose called with %v, want the connection's address 127.0.0.1", gotClient)
		}
		ids[rec.ID] = true
		var order []string
		for _, tg := range rec.Targets {
			order = append(order, tg.ID)
			if len(tg.Types) != 3 || tg.RangeBytes != 1<<20 {
				t.Errorf("target %s: types %v, range %d; want the 3 default types and 1 MiB", tg.ID, tg.Types, tg.RangeBytes)
			}
		}
		orders[strings.Join(order, ",")] = true
		sorted := slices.Clone(order)
		slices.Sort(sorted)
		if want := []string{"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"}; !slices.Equal(sorted, want) {
			t.Fatalf("recipe targets = %v, want a permutation of %v", order, want)
		}
		// The control plane's test (TestRecipeCarriesIssueTime) checks
		// that issued_at follows the clock it is given.
		issued, err := time.Parse(time.RFC3339Nano, rec.Context[measure.ContextIssuedAt])
		if err != nil || issued.Before(started.Add(-time.Millisecond)) || issued.After(time.Now().Add(time.Millisecond)) {
			t.Errorf("recipe context issued_at = %q, want the time it was issued (after %s)", rec.Context[measure.ContextIssuedAt], started.UTC().Format(time.RFC3339Nano))
		}
		want := map[string]string{"recipe_version": "v7", "targets": "8", "steered_site": "site0", "steered_appliance": "oca0",
			measure.ContextIssuedAt: rec.Context[measure.ContextIssuedAt]}
		if d := cmp.Diff(want, rec.Context); d != "" {
			t.Errorf("recipe context (-want +got):\n%s", d)
		}
		if rec.Pulses != 4 || rec.PulseDelay != 50*time.Millisecond || rec.PulseTimeout != time.Second {
			t.Errorf("recipe pulses %d delay %v timeout %v, want 4, 50ms, 1s", rec.Pulses, rec.PulseDelay, rec.PulseTimeout)
		}
	}
	if len(orders) < 2 {
		t.Errorf("10 recipes all had target order %v, want shuffled orders", orders)
	}
	if len(ids) != 10 {
		t.Errorf("10 recipes had %d distinct ids, want 10", len(ids))
	}
}

func TestRecipeHandlerNoTargets(t *testing.T) {
	h := RecipeHandler(func(netip.Addr, bool) ([]Target, error) { return nil, nil }, RecipeConfig{})
	rr := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/v1/recipe", nil)
	h.ServeHTTP(rr, req)
	if rr.Code != http.StatusServiceUnavailable {
		t.Errorf("recipe with no targets: status %d, want 503", rr.Code)
	}
}

func TestRunCompleteInRecipeOrder(t *testing.T) {
	a := rangeServer(t, "", 1<<20)
	b := rangeServer(t, "oca-from-header", 1<<20)
	rec := &Recipe{ID: "r", Pulses: 2, PulseDelay: time.Millisecond, PulseTimeout: 5 * time.Second,
		Context: map[string]string{"steered_site": "s1"},
		Targets: []Target{
			{ID: "b", Appliance: "oca-b", Site: "s2", URL: b.URL + "/c/tok/t1/f", Types: allTypes, RangeBytes: 100_000},
			{ID: "a", Appliance: "oca-a", Site: "s1", URL: a.URL + "/c/tok/t1/f", Types: allTypes, RangeBytes: 100_000, Steered: true},
		}}
	rep, err := Run(context.Background(), rec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Validate(time.Now()); err != nil {
		t.Errorf("report does not validate: %v", err)
	}
	if rep.Recipe != "r" || rep.Context["steered_site"] != "s1" || len(rep.ID) != 32 {
		t.Errorf("report recipe %q context %v id %q; want the recipe's id and context and a 32-char id", rep.Recipe, rep.Context, rep.ID)
	}
	var got []string
	for i, p := range rep.Pulses {
		got = append(got, p.Target+"/"+p.Type)
		if p.Seq != i {
			t.Errorf("pulse %d has seq %d", i, p.Seq)
		}
		wantApp := map[string]string{"a": "oca-a", "b": "oca-b"}[p.Target]
		if p.Target == "b" && (p.Type == measure.TypeHTTPTTFB || p.Type == measure.TypeThroughput) {
			wantApp = "oca-from-header"
		}
		if p.Appliance != wantApp {
			t.Errorf("pulse %d (%s/%s) appliance %q, want %q", i, p.Target, p.Type, p.Appliance, wantApp)
		}
		switch p.Type {
		case measure.TypeTLSHandshake:
			if p.Status != measure.StatusError || p.Error != "not https" {
				t.Errorf("tls_handshake on http: status %q error %q, want error \"not https\"", p.Status, p.Error)
			}
		case measure.TypeTCPConnect:
			if p.Status != measure.StatusOK || p.ConnectMs <= 0 {
				t.Errorf("tcp_connect: %+v, want ok with connect_ms > 0", p)
			}
		case measure.TypeHTTPTTFB:
			if p.Status != measure.StatusOK || p.TTFBMs <= 0 || p.ConnectMs <= 0 || p.Bytes != 1 || p.HTTPStatus != 206 {
				t.Errorf("http_ttfb: %+v, want ok, 206, 1 byte, ttfb and connect > 0", p)
			}
		case measure.TypeThroughput:
			if p.Status != measure.StatusOK || p.Bytes != 100_000 || p.ThroughputBps <= 0 {
				t.Errorf("throughput: %+v, want ok, 100000 bytes, a rate", p)
			}
		}
	}
	var want []string
	for range 2 {
		for _, tg := range []string{"b", "a"} {
			for _, ty := range allTypes {
				want = append(want, tg+"/"+ty)
			}
		}
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("pulse order (-want +got):\n%s", d)
	}
}

func TestRunTLS(t *testing.T) {
	srv := httptest.NewTLSServer(rangeHandler("", 1000))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	rec := &Recipe{ID: "r", Pulses: 1, Targets: []Target{{ID: "x", URL: srv.URL + "/f",
		Types: []string{measure.TypeTLSHandshake, measure.TypeHTTPTTFB}}}}
	rep, err := Run(context.Background(), rec, Options{TLSConfig: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Pulses {
		if p.Status != measure.StatusOK || p.TLSMs <= 0 || p.ConnectMs <= 0 {
			t.Errorf("%s over https: %+v, want ok with connect_ms and tls_ms > 0", p.Type, p)
		}
	}
}

func TestHangingTargetTimesOut(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	ok := rangeServer(t, "", 1000)
	const timeout = 150 * time.Millisecond
	rec := &Recipe{ID: "r", Pulses: 2, PulseTimeout: timeout, Targets: []Target{
		{ID: "hang", URL: hang.URL + "/f", Types: []string{measure.TypeHTTPTTFB, measure.TypeThroughput}},
		{ID: "ok", URL: ok.URL + "/f", Types: []string{measure.TypeHTTPTTFB}},
	}}
	start := time.Now()
	rep, err := Run(context.Background(), rec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	if len(rep.Pulses) != 6 {
		t.Fatalf("got %d pulses, want 6", len(rep.Pulses))
	}
	for _, p := range rep.Pulses {
		want := measure.StatusOK
		if p.Target == "hang" {
			want = measure.StatusTimeout
		}
		if p.Status != want {
			t.Errorf("pulse %s/%s: status %q (%s), want %q", p.Target, p.Type, p.Status, p.Error, want)
		}
	}
	// 4 hanging pulses × timeout, plus the fast ones; without the pulse
	// timeout the run would hang until the test ends, so the bound is
	// generous: a loaded machine makes the run slower, not wrong.
	if limit := 4*timeout + 10*time.Second; el > limit {
		t.Errorf("run took %v, want at most %v", el, limit)
	}
}

// TestThroughputThroughNetem checks the probes against a known emulated
// link. A starved CPU (this runs beside other race-enabled packages on
// two cores) can only make a probe slower than the link, never faster,
// so each type runs three pulses and is judged by its best.
func TestThroughputThroughNetem(t *testing.T) {
	srv := rangeServer(t, "", 4<<20)
	const bw = 20e6
	dial := netem.Dialer(nil, func(netip.AddrPort) (netem.Link, bool) {
		return netem.Link{RTT: 10 * time.Millisecond, BandwidthBps: bw}, true
	})
	rec := &Recipe{ID: "r", Pulses: 3, PulseTimeout: 10 * time.Second, Targets: []Target{
		{ID: "x", URL: srv.URL + "/f", Types: []string{measure.TypeTCPConnect, measure.TypeHTTPTTFB, measure.TypeThroughput}, RangeBytes: 2 << 20}}}
	rep, err := Run(context.Background(), rec, Options{Dial: dial})
	if err != nil {
		t.Fatal(err)
	}
	connect, ttfb, throughput := math.Inf(1), math.Inf(1), 0.0
	for _, p := range rep.Pulses {
		t.Logf("%s: %s connect %.2fms ttfb %.2fms throughput %.3f Mbit/s", p.Type, p.Status, p.ConnectMs, p.TTFBMs, p.ThroughputBps/1e6)
		if p.Status != measure.StatusOK {
			t.Errorf("pulse %s: status %q (%s)", p.Type, p.Status, p.Error)
			continue
		}
		switch p.Type {
		case measure.TypeTCPConnect:
			connect = min(connect, p.ConnectMs)
		case measure.TypeHTTPTTFB:
			ttfb = min(ttfb, p.TTFBMs)
		case measure.TypeThroughput:
			throughput = max(throughput, p.ThroughputBps)
		}
	}
	if math.Abs(connect-10) > 1 {
		t.Errorf("best connect through a 10ms link = %.2fms, want 10±1", connect)
	}
	if ttfb < 10 || ttfb > 15 {
		t.Errorf("best ttfb through a 10ms link = %.2fms, want 10 to 15", ttfb)
	}
	if e := math.Abs(throughput-bw) / bw; e > 0.05 {
		t.Errorf("best throughput through 20 Mbit/s = %.3f Mbit/s, want within 5%%", throughput/1e6)
	}
}

func testReport(i int) *measure.Report {
	return &measure.Report{ID: fmt.Sprintf("%032x", i+1), Recipe: "r", ClientTime: time.Now(),
		Pulses: []measure.Pulse{{Target: "t", Type: measure.TypeTCPConnect, Start: time.Now(), Status: measure.StatusOK, ConnectMs: 1}}}
}

// checkOnce fails unless each of ids was uploaded `uploads` times and
// stored exactly once, and nothing else was stored.
func checkOnce(t *testing.T, pl *cptest.Plane, uploads int, ids ...string) {
	t.Helper()
	up, stored := pl.Reports()
	for _, id := range ids {
		if up[id] != uploads || stored[id] != 1 {
			t.Errorf("report %s: uploaded %d times, stored %d times; want %d and 1", id, up[id], stored[id], uploads)
		}
	}
	if len(stored) != len(ids) {
		t.Errorf("%d reports stored, want %d", len(stored), len(ids))
	}
}

func TestSpoolRetryAcrossServerRestart(t *testing.T) {
	dir := t.TempDir()
	// Reserve an address, then leave it closed: the collector is down.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	up := &Uploader{Dir: dir, URL: "http://" + addr + "/v1/reports", MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	var ids []string
	for i := range 5 {
		if _, err := Spool(dir, testReport(i)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, testReport(i).ID)
	}
	if err := up.Flush(context.Background()); !errors.Is(err, ErrRetryLater) {
		t.Fatalf("Flush with the collector down = %v, want ErrRetryLater", err)
	}
	if ids, _ := up.Pending(); len(ids) != 5 {
		t.Fatalf("after a failed flush %d reports are spooled, want 5", len(ids))
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error)
	go func() { runDone <- up.Run(ctx) }()

	// The collector comes back on the same address.
	pl := cptest.New(t, cptest.Config{Replicas: 1})
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: pl.Handler()}
	go srv.Serve(ln)
	defer srv.Close()
	got := map[string]bool{}
	timeout := time.After(10 * time.Second)
	for len(got) < 5 {
		select {
		case id := <-pl.Stored:
			got[id] = true
		case <-timeout:
			t.Fatalf("after the restart %d of 5 reports arrived", len(got))
		}
	}
	// Run's flush deletes each report after its answer; a Flush of our
	// own waits for it (flushes are serialised) and must find nothing
	// left to send.
	if err := up.Flush(ctx); err != nil {
		t.Fatalf("Flush after Run delivered everything: %v", err)
	}
	if ids, _ := up.Pending(); len(ids) != 0 {
		t.Fatalf("spool still holds %v", ids)
	}
	cancel()
	<-runDone
	srv.Close()
	checkOnce(t, pl, 1, ids...)
}

func TestDuplicateUploadHarmless(t *testing.T) {
	dir := t.TempDir()
	pl := cptest.New(t, cptest.Config{Replicas: 1})
	pl.Replica(0).Fail(1, cptest.Drop) // stored, but the answer is lost
	up := &Uploader{Dir: dir, Control: cpclient.Must(pl.URLs(), nil, "")}
	Spool(dir, testReport(0))
	if err := up.Flush(context.Background()); err == nil {
		t.Fatal("Flush whose answer was lost succeeded")
	}
	// Spooling the same report again (a client that crashed before
	// deleting it) leaves one file.
	Spool(dir, testReport(0))
	if err := up.Flush(context.Background()); err != nil {
		t.Fatalf("second Flush: %v", err)
	}
	if ids, _ := up.Pending(); len(ids) != 0 {
		t.Errorf("spool holds %v after the retry, want nothing", ids)
	}
	// The ingest answered the second upload as a duplicate; the uploader
	// took that as delivered.
	checkOnce(t, pl, 2, testReport(0).ID)
}

func TestRejectedReportNotRetried(t *testing.T) {
	dir := t.TempDir()
	pl := cptest.New(t, cptest.Config{})
	a, b := pl.Replica(0), pl.Replica(1)
	bad := testReport(0)
	bad.Pulses[0].Type = "ping" // invalid
	Spool(dir, bad)
	Spool(dir, testReport(1))
	up := &Uploader{Dir: dir, Control: cpclient.Must(pl.URLs(), nil, "")}
	if err := up.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if ids, _ := up.Pending(); len(ids) != 0 {
		t.Errorf("spool holds %v, want nothing", ids)
	}
	reason, err := readFile(dir + "/rejected/" + bad.ID + ".reason")
	if err != nil || !strings.Contains(reason, "400") || !strings.Contains(reason, "type") {
		t.Errorf("rejected reason = %q (%v), want the 400 and the server's message", reason, err)
	}
	// A 400 is the answer, not an outage: the other replica never saw it.
	if b.Hits("/v1/reports") != 0 {
		t.Errorf("the second replica got %d uploads, want none", b.Hits("/v1/reports"))
	}
	checkOnce(t, pl, 1, testReport(1).ID)
	// Every replica answering 503 keeps the report.
	a.Fail(-1, http.StatusServiceUnavailable)
	b.Fail(-1, http.StatusServiceUnavailable)
	Spool(dir, testReport(2))
	if err := up.Flush(context.Background()); !errors.Is(err, ErrRetryLater) {
		t.Errorf("Flush against replicas answering 503 = %v, want ErrRetryLater", err)
	}
	if ids, _ := up.Pending(); len(ids) != 1 {
		t.Errorf("after the 503s the spool holds %v, want the report", ids)
	}
}

// TestProbeSessionsSurviveReplicaKill runs probe sessions as a client does
// (recipe, run, spool, upload) against two replicas. The first dies after
// its third answer, mid-way through the second session: that session's
// report goes to the live replica in the same flush, the third session
// never tries the dead one, and every report is stored exactly once.
func TestProbeSessionsSurviveReplicaKill(t *testing.T) {
	target := rangeServer(t, "oca1", 1000)
	pl := cptest.New(t, cptest.Config{})
	pl.Handle("GET /v1/recipe", RecipeHandler(func(netip.Addr, bool) ([]Target, error) {
		return []Target{{ID: "oca1", Appliance: "oca1", Site: "s1", URL: target.URL + "/f", Steered: true}}, nil
	}, RecipeConfig{Pulses: 1, PulseDelay: time.Millisecond, Types: []string{measure.TypeTCPConnect}}))
	a, b := pl.Replica(0), pl.Replica(1)
	a.KillAfter(3) // recipe 1, report 1, recipe 2
	var dials cptest.Dials
	cp := cpclient.Must(pl.URLs(), dials.Client(), "")
	dir := t.TempDir()
	up := &Uploader{Dir: dir, Control: cp}
	var ids []string
	dialsToA := 0
	for session := range 3 {
		if session == 2 {
			dialsToA = dials.To(a.URL)
		}
		rec, err := FetchRecipe(context.Background(), cp, false)
		if err != nil {
			t.Fatalf("session %d: FetchRecipe: %v", session, err)
		}
		up.UseRecipe(rec)
		rep, err := Run(context.Background(), rec, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Spool(dir, rep); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rep.ID)
		if err := up.Flush(context.Background()); err != nil {
			t.Fatalf("session %d: Flush: %v", session, err)
		}
	}
	if pending, _ := up.Pending(); len(pending) != 0 {
		t.Errorf("spool holds %v, want every report delivered", pending)
	}
	checkOnce(t, pl, 1, ids...)
	if a.Hits("/v1/recipe") != 2 || a.Hits("/v1/reports") != 1 || b.Hits("/v1/recipe") != 1 || b.Hits("/v1/reports") != 2 {
		t.Errorf("recipes/reports: killed replica %d/%d, live replica %d/%d; want 2/1 and 1/2",
			a.Hits("/v1/recipe"), a.Hits("/v1/reports"), b.Hits("/v1/recipe"), b.Hits("/v1/reports"))
	}
	if got := dials.To(a.URL) - dialsToA; got != 0 {
		t.Errorf("the third session dialled the dead replica %d times, want 0", got)
	}
	if cp.Current() != b.URL {
		t.Errorf("client is on %s, want the live replica %s", cp.Current(), b.URL)
	}
}

// TestLostAnswerGoesToNextReplica: the first replica stores a report and
// dies before answering; the same flush sends it to the second, which
// shares the store and answers that it is a duplicate: delivered once,
// stored once.
func TestLostAnswerGoesToNextReplica(t *testing.T) {
	pl := cptest.New(t, cptest.Config{})
	pl.Replica(0).Fail(1, cptest.Drop)
	dir := t.TempDir()
	up := &Uploader{Dir: dir, Control: cpclient.Must(pl.URLs(), nil, "")}
	Spool(dir, testReport(0))
	if err := up.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if ids, _ := up.Pending(); len(ids) != 0 {
		t.Errorf("spool holds %v, want the report delivered", ids)
	}
	checkOnce(t, pl, 2, testReport(0).ID)
}

// TestReportURL: a recipe's report_url takes reports away from the
// control plane, an explicit URL takes them from both, and a recipe with
// no report_url brings them back to the control plane.
func TestReportURL(t *testing.T) {
	pl := cptest.New(t, cptest.Config{})
	collector := cptest.New(t, cptest.Config{Replicas: 1})
	explicit := cptest.New(t, cptest.Config{Replicas: 1})
	dir := t.TempDir()
	up := &Uploader{Dir: dir, Control: cpclient.Must(pl.URLs(), nil, "")}
	send := func(i int) {
		t.Helper()
		Spool(dir, testReport(i))
		if err := up.Flush(context.Background()); err != nil {
			t.Fatalf("Flush of report %d: %v", i, err)
		}
	}
	up.UseRecipe(&Recipe{ReportURL: collector.Replica(0).URL + "/v1/reports"})
	send(0)
	up.UseRecipe(&Recipe{})
	send(1)
	up.URL = explicit.Replica(0).URL + "/v1/reports"
	up.UseRecipe(&Recipe{ReportURL: collector.Replica(0).URL + "/v1/reports"})
	send(2)
	checkOnce(t, collector, 1, testReport(0).ID)
	checkOnce(t, pl, 1, testReport(1).ID)
	checkOnce(t, explicit, 1, testReport(2).ID)
}

func TestFlushWithoutDestination(t *testing.T) {
	up := &Uploader{Dir: t.TempDir()}
	if err := up.Flush(context.Background()); err == nil || errors.Is(err, ErrRetryLater) {
		t.Errorf("Flush with neither Control nor URL = %v, want a configuration error", err)
	}
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}
