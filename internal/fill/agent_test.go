package fill

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/store"
	"github.com/ocdn/ocdn/internal/store/storetest"
)

type fakeControl struct {
	mu       sync.Mutex
	manifest api.Manifest
	plan     api.FillPlan
	reports  []api.FillProgress
	// reported, when set, gets a value for every report (never blocking).
	reported chan struct{}
}

func (f *fakeControl) Manifest(context.Context) (api.Manifest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.manifest, nil
}

func (f *fakeControl) Plan(context.Context) (api.FillPlan, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.plan, nil
}

func (f *fakeControl) Report(_ context.Context, p api.FillProgress) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports = append(f.reports, p)
	select {
	case f.reported <- struct{}{}:
	default:
	}
	return nil
}

func (f *fakeControl) last() api.FillProgress {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reports[len(f.reports)-1]
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                                   { return c.t }
func (c fixedClock) Sleep(ctx context.Context, d time.Duration) error { return ctx.Err() }

// inWindow is 03:00 UTC, inside the default window.
var inWindow = fixedClock{time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)}

func file(path string, data []byte) content.File {
	sum := sha256.Sum256(data)
	return content.File{Path: path, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Kind: content.KindVideo}
}

func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

// server serves data for every path with Range support (as appliances and
// the origin do), counting requests.
func server(t *testing.T, data map[string][]byte, hits *atomic.Int64) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits != nil {
			hits.Add(1)
		}
		for p, d := range data {
			if strings.HasSuffix(r.URL.Path, "/"+p) {
				http.ServeContent(w, r, p, time.Time{}, bytes.NewReader(d))
				return
			}
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newStore(t *testing.T, capacity int64) *store.Store {
	st, err := store.Open(t.TempDir(), capacity, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func plan(files ...api.FillFile) api.FillPlan {
	return api.FillPlan{Appliance: "a1", Window: api.FillWindow{TimeZone: "UTC", StartHour: 2, EndHour: 14}, Files: files}
}

func manifestOf(files ...content.File) api.Manifest {
	return api.Manifest{Appliance: "a1", Files: files}
}

func stored(t *testing.T, st *store.Store, f content.File) []byte {
	t.Helper()
	fh, _, err := st.Open(f.Path)
	if err != nil {
		t.Fatalf("Open(%s) = %v, want the stored file", f.Path, err)
	}
	defer fh.Close()
	var b bytes.Buffer
	b.ReadFrom(fh)
	return b.Bytes()
}

// TestEscalationPeerTierOrigin: the first file's peer and tier fail (an
// HTTP error, a refused connection) and the origin serves it; the second
// file comes from the peer, and the farther sources are never asked.
func TestEscalationPeerTierOrigin(t *testing.T) {
	a, b := payload(300<<10, 1), payload(200<<10, 2)
	fa, fb := file("t1/a.mp4", a), file("t1/b.mp4", b)
	var peerHits, originHits atomic.Int64
	peer := server(t, map[string][]byte{fb.Path: b}, &peerHits) // holds b only: a is a 404
	deadTier := httptest.NewServer(http.NotFoundHandler())
	deadURL := deadTier.URL
	deadTier.Close() // connection refused
	origin := server(t, map[string][]byte{fa.Path: a, fb.Path: b}, &originHits)
	src := func(f content.File) []api.FillSource {
		return []api.FillSource{{URL: peer.URL + "/c/tok/" + f.Path, Tier: api.TierPeer, Appliance: "p"},
			{URL: deadURL + "/c/tok/" + f.Path, Tier: api.TierSite, Appliance: "s"},
			{URL: origin.URL + "/o/" + f.Path, Tier: api.TierOrigin}}
	}
	ctl := &fakeControl{manifest: manifestOf(fa, fb), plan: plan(api.FillFile{File: fa, Sources: src(fa)}, api.FillFile{File: fb, Sources: src(fb)})}
	st := newStore(t, 0)
	ag := New(Config{Appliance: "a1", Store: st, Control: ctl, Clock: inWindow, Concurrency: 1})
	if err := ag.Pass(context.Background()); err != nil {
		t.Fatalf("Pass() = %v, want nil", err)
	}
	if !bytes.Equal(stored(t, st, fa), a) || !bytes.Equal(stored(t, st, fb), b) {
		t.Fatal("stored bytes differ from the sources'")
	}
	s := ag.Stats()
	if s.OriginBytes != fa.Size || s.PeerBytes != fb.Size || s.TierBytes != 0 {
		t.Errorf("Stats() = %+v, want origin %d (a), peer %d (b), tier 0", s, fa.Size, fb.Size)
	}
	if originHits.Load() != 1 {
		t.Errorf("origin asked %d times, want once (only for a)", originHits.Load())
	}
	if got := ctl.last(); got.State != "idle" || got.Pending != 0 || got.FilesVerified != 2 {
		t.Errorf("last report = %+v, want idle, 0 pending, 2 verified", got)
	}
}

// TestWaitForCloserSource: a file the control plane says to wait for is
// not fetched from the origin listed behind it.
func TestWaitForCloserSource(t *testing.T) {
	a := payload(10<<10, 3)
	fa := file("t1/a.mp4", a)
	var originHits atomic.Int64
	origin := server(t, map[string][]byte{fa.Path: a}, &originHits)
	ctl := &fakeControl{manifest: manifestOf(fa), plan: plan(api.FillFile{File: fa, WaitSeconds: 5,
		Sources: []api.FillSource{{URL: origin.URL + "/o/" + fa.Path, Tier: api.TierOrigin}}})}
	ag := New(Config{Appliance: "a1", Store: newStore(t, 0), Control: ctl, Clock: inWindow})
	if err := ag.Pass(context.Background()); err != nil {
		t.Fatalf("Pass() = %v", err)
	}
	if originHits.Load() != 0 || ag.Stats().Pending != 1 {
		t.Errorf("origin hits %d, pending %d; want 0 and 1 (waiting for a peer)", originHits.Load(), ag.Stats().Pending)
	}
}

// TestCorruptSourceRejected: a peer serving wrong bytes is marked bad and
// reported, the next source is used, and the wrong bytes are never
// visible in the store.
func TestCorruptSourceRejected(t *testing.T) {
	a := payload(256<<10, 4)
	fa := file("t1/a.mp4", a)
	bad := bytes.Clone(a)
	bad[1000] ^= 0xff
	var badHits atomic.Int64
	corrupt := server(t, map[string][]byte{fa.Path: bad}, &badHits)
	good := server(t, map[string][]byte{fa.Path: a}, nil)
	srcs := []api.FillSource{{URL: corrupt.URL + "/c/t/" + fa.Path, Tier: api.TierPeer, Appliance: "evil"},
		{URL: good.URL + "/c/t/" + fa.Path, Tier: api.TierSite, Appliance: "good"}}
	ctl := &fakeControl{manifest: manifestOf(fa), plan: plan(api.FillFile{File: fa, Sources: srcs})}
	st := newStore(t, 0)
	ag := New(Config{Appliance: "a1", Store: st, Control: ctl, Clock: inWindow})
	if err := ag.Pass(context.Background()); err != nil {
		t.Fatalf("Pass() = %v", err)
	}
	if !bytes.Equal(stored(t, st, fa), a) {
		t.Fatal("store holds bytes that are not the file's")
	}
	s := ag.Stats()
	if s.FilesRejected != 1 || s.FilesVerified != 1 || s.TierBytes != fa.Size {
		t.Errorf("Stats() = %+v, want 1 rejected, 1 verified, tier bytes %d", s, fa.Size)
	}
	rep := ctl.last()
	if len(rep.Bad) != 1 || rep.Bad[0] != (api.BadCopy{Path: fa.Path, Appliance: "evil", Tier: api.TierPeer}) {
		t.Errorf("reported bad copies = %+v, want evil's copy of %s", rep.Bad, fa.Path)
	}
	// A later pass does not go back to the bad source.
	st.Remove(fa.Path)
	ag.Pass(context.Background())
	if badHits.Load() != 1 {
		t.Errorf("corrupt source asked %d times, want once", badHits.Load())
	}
}

// TestResumeAfterBrokenTransfer: the source drops the connection half way;
// the agent continues with a Range request and the result verifies.
func TestResumeAfterBrokenTransfer(t *testing.T) {
	a := payload(1<<20, 5)
	fa := file("t1/a.mp4", a)
	var ranges []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		first := len(ranges) == 1
		mu.Unlock()
		if first {
			w.Header().Set("Content-Length", fmt.Sprint(len(a)))
			w.WriteHeader(http.StatusOK)
			w.Write(a[:400<<10])
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		http.ServeContent(w, r, "a", time.Time{}, bytes.NewReader(a))
	}))
	defer srv.Close()
	ctl := &fakeControl{manifest: manifestOf(fa), plan: plan(api.FillFile{File: fa,
		Sources: []api.FillSource{{URL: srv.URL + "/o/" + fa.Path, Tier: api.TierOrigin}}})}
	st := newStore(t, 0)
	ag := New(Config{Appliance: "a1", Store: st, Control: ctl, Clock: inWindow})
	if err := ag.Pass(context.Background()); err != nil {
		t.Fatalf("Pass() = %v", err)
	}
	if !bytes.Equal(stored(t, st, fa), a) {
		t.Fatal("resumed file differs")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ranges) != 2 || ranges[0] != "" || !strings.HasPrefix(ranges[1], "bytes=") || ranges[1] == "bytes=0-" {
		t.Errorf("requests' Range headers = %q, want a full request then a continuation", ranges)
	}
	if got := ag.Stats().OriginBytes; got != fa.Size {
		t.Errorf("origin bytes = %d, want %d (no byte fetched twice)", got, fa.Size)
	}
}

// TestWindowTokyo: a site in Asia/Tokyo fills from 02:00 to 14:00 Tokyo
// time whatever the appliance's own zone; outside it only urgent files
// are filled, within the out-of-cycle budget.
func TestWindowTokyo(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Skip("no tz database:", err)
	}
	w, err := WindowFrom(api.FillWindow{TimeZone: "Asia/Tokyo", StartHour: 2, EndHour: 14})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		at   time.Time
		open bool
	}{
		{time.Date(2026, 3, 1, 1, 59, 0, 0, tokyo), false},
		{time.Date(2026, 3, 1, 2, 0, 0, 0, tokyo), true},
		{time.Date(2026, 3, 1, 13, 59, 0, 0, tokyo), true},
		{time.Date(2026, 3, 1, 14, 0, 0, 0, tokyo), false},
		// 03:00 UTC is 12:00 in Tokyo: open; 10:00 UTC is 19:00 in Tokyo:
		// closed, though inside a 02-14 window read in UTC.
		{time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC), true},
		{time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), false},
	}
	for _, c := range cases {
		if got := w.Open(c.at); got != c.open {
			t.Errorf("Open(%s) = %v, want %v", c.at.In(tokyo), got, c.open)
		}
	}
	if got, want := w.NextOpen(time.Date(2026, 3, 1, 20, 0, 0, 0, tokyo)), time.Date(2026, 3, 2, 2, 0, 0, 0, tokyo); !got.Equal(want) {
		t.Errorf("NextOpen(20:00 JST) = %s, want %s", got, want)
	}

	a, u := payload(64<<10, 6), payload(32<<10, 7)
	fa, fu := file("t1/a.mp4", a), file("t1/urgent.mp4", u)
	origin := server(t, map[string][]byte{fa.Path: a, fu.Path: u}, nil)
	srcs := func(f content.File) []api.FillSource {
		return []api.FillSource{{URL: origin.URL + "/o/" + f.Path, Tier: api.TierOrigin}}
	}
	ctl := &fakeControl{manifest: manifestOf(fa, fu), plan: api.FillPlan{Window: api.FillWindow{TimeZone: "Asia/Tokyo", StartHour: 2, EndHour: 14},
		Files: []api.FillFile{{File: fa, Sources: srcs(fa)}, {File: fu, Urgent: true, Sources: srcs(fu)}}}}
	st := newStore(t, 0)
	clk := &fixedClock{time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)} // 19:00 JST
	ag := New(Config{Appliance: "a1", Store: st, Control: ctl, Clock: clk, StrictWindow: true, OutOfCycleBudget: 40 << 10})
	if err := ag.Pass(context.Background()); err != nil {
		t.Fatalf("Pass() = %v", err)
	}
	if _, ok := st.Lookup(fa.Path); ok {
		t.Error("a regular file was filled outside the window")
	}
	if _, ok := st.Lookup(fu.Path); !ok {
		t.Error("an urgent file within the out-of-cycle budget was not filled outside the window")
	}
	if got := ctl.last().State; got != "waiting" {
		t.Errorf("state outside the window = %q, want waiting", got)
	}
	clk.t = time.Date(2026, 3, 1, 17, 30, 0, 0, time.UTC) // 02:30 JST
	ag = New(Config{Appliance: "a1", Store: st, Control: ctl, Clock: clk, StrictWindow: true})
	if err := ag.Pass(context.Background()); err != nil {
		t.Fatalf("Pass() = %v", err)
	}
	if _, ok := st.Lookup(fa.Path); !ok {
		t.Error("not filled at 02:30 Tokyo time")
	}
}

// TestRateCap: a 4 MB/s cap is used to at least 90%.
func TestRateCap(t *testing.T) {
	const rate = 4 << 20
	a := payload(8<<20, 8)
	fa := file("t1/a.mp4", a)
	origin := server(t, map[string][]byte{fa.Path: a}, nil)
	ctl := &fakeControl{manifest: manifestOf(fa), plan: plan(api.FillFile{File: fa, Sources: []api.FillSource{{URL: origin.URL + "/o/" + fa.Path, Tier: api.TierOrigin}}})}
	ag := New(Config{Appliance: "a1", Store: newStore(t, 0), Control: ctl, Clock: inWindow, Rate: rate})
	start := time.Now()
	if err := ag.Pass(context.Background()); err != nil {
		t.Fatalf("Pass() = %v", err)
	}
	el := time.Since(start).Seconds()
	got := float64(fa.Size) / el
	t.Logf("fill throughput %.2f MB/s with a cap of %.2f MB/s: %.1f%%", got/1e6, float64(rate)/1e6, 100*got/rate)
	if got < 0.9*rate {
		t.Errorf("throughput %.0f B/s is below 90%% of the cap %d", got, rate)
	}
	if got > 1.1*rate {
		t.Errorf("throughput %.0f B/s exceeds the cap %d by more than 10%%", got, rate)
	}
}

// TestBadManifestRejected: unknown files, bad sizes and malformed source
// lists are refused with a clear error and nothing stored changes.
func TestBadManifestRejected(t *testing.T) {
	keep := payload(1000, 9)
	fk := file("t0/keep.mp4", keep)
	fa := file("t1/a.mp4", payload(1000, 10))
	ok := []api.FillSource{{URL: "http://127.0.0.1:1/o/t1/a.mp4", Tier: api.TierOrigin}}
	neg, huge := fa, fa
	neg.Size, huge.Size = -5, 1<<50
	cases := []struct {
		name string
		m    api.Manifest
		p    api.FillPlan
		want error
		msg  string
	}{
		{"unknown file", manifestOf(fa), plan(api.FillFile{File: file("t9/ghost.mp4", nil), Sources: ok}), ErrBadPlan, "not in the manifest"},
		{"negative size", manifestOf(neg), plan(), ErrBadManifest, "size -5"},
		{"absurd size", manifestOf(huge), plan(), ErrBadManifest, "is not between 0"},
		{"bad path", manifestOf(content.File{Path: "../etc/passwd", SHA256: fa.SHA256}), plan(), ErrBadManifest, "want title/file"},
		{"no sources", manifestOf(fa), plan(api.FillFile{File: fa}), ErrBadPlan, "no sources"},
		{"bad url", manifestOf(fa), plan(api.FillFile{File: fa, Sources: []api.FillSource{{URL: "file:///etc/passwd", Tier: api.TierOrigin}}}), ErrBadPlan, "not an http(s) URL"},
		{"bad tier", manifestOf(fa), plan(api.FillFile{File: fa, Sources: []api.FillSource{{URL: "http://x/o/t1/a.mp4", Tier: "cloud"}}}), ErrBadPlan, "tier \"cloud\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := newStore(t, 0)
			if err := st.Put(context.Background(), fk, bytes.NewReader(keep)); err != nil {
				t.Fatal(err)
			}
			ctl := &fakeControl{manifest: c.m, plan: c.p}
			ag := New(Config{Appliance: "a1", Store: st, Control: ctl, Clock: inWindow})
			err := ag.Pass(context.Background())
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("Pass() = %v, want %v mentioning %q", err, c.want, c.msg)
			}
			if _, ok := st.Lookup(fk.Path); !ok || len(st.List()) != 1 {
				t.Errorf("store after a rejected manifest = %v, want only %s kept", st.List(), fk.Path)
			}
			if got := ctl.last().State; got != "error" {
				t.Errorf("reported state = %q, want error", got)
			}
		})
	}
}

// TestFullDiskStopsCleanly: when the new files need the room of files the
// manifest dropped, those are retired (no longer reported held) but stay
// on disk and serve until the control plane acknowledges they left
// steering, and only then make room; when nothing can make room, fill
// stops with state "full" and what is stored stays and serves.
func TestFullDiskStopsCleanly(t *testing.T) {
	old, a, b, c := payload(40<<10, 11), payload(40<<10, 12), payload(40<<10, 13), payload(40<<10, 14)
	fo, fa, fb, fc := file("t0/old.mp4", old), file("t1/a.mp4", a), file("t1/b.mp4", b), file("t1/c.mp4", c)
	origin := server(t, map[string][]byte{fa.Path: a, fb.Path: b, fc.Path: c}, nil)
	st := newStore(t, 100<<10) // room for two of them
	if err := st.Put(context.Background(), fo, bytes.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	srcs := func(f content.File) []api.FillSource {
		return []api.FillSource{{URL: origin.URL + "/o/" + f.Path, Tier: api.TierOrigin}}
	}
	ctl := &fakeControl{manifest: manifestOf(fa, fb), plan: plan(api.FillFile{File: fa, Sources: srcs(fa)}, api.FillFile{File: fb, Sources: srcs(fb)})}
	ag := New(Config{Appliance: "a1", Store: st, Control: ctl, Clock: inWindow, Concurrency: 1, RetireGrace: time.Nanosecond})
	gen0, _ := ag.Advertised()
	if err := ag.Pass(context.Background()); err != nil {
		t.Fatalf("Pass() = %v, want a pass that fills what fits and waits for room", err)
	}
	if got := ctl.last(); got.State != "waiting" || got.Pending != 1 || !strings.Contains(got.Detail, "making room") {
		t.Errorf("reported %+v, want state waiting (making room) with 1 pending", got)
	}
	gen1, held := ag.Advertised()
	if gen1 == gen0 || strings.Join(held, ",") != fa.Path {
		t.Errorf("Advertised() = %d %v (was %d), want a new generation listing only %s", gen1, held, gen0, fa.Path)
	}
	if !bytes.Equal(stored(t, st, fo), old) || !bytes.Equal(stored(t, st, fa), a) {
		t.Error("stored files are not intact and readable while room is being made")
	}
	// An acknowledgement of an older generation, or of one this agent
	// never reported, deletes nothing.
	ag.Acknowledge(gen0)
	ag.Acknowledge(gen1 + 100)
	if err := ag.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Lookup(fo.Path); !ok {
		t.Fatal("the retired file was deleted before the control plane acknowledged it left steering")
	}
	ag.Acknowledge(gen1)
	if err := ag.Pass(context.Background()); err != nil {
		t.Fatalf("Pass() after the acknowledgement = %v", err)
	}
	if _, ok := st.Lookup(fo.Path); ok {
		t.Error("the retired file is still stored after the acknowledgement and its grace")
	}
	if !bytes.Equal(stored(t, st, fb), b) || ctl.last().State != "idle" {
		t.Errorf("after making room: state %q, want b filled and idle", ctl.last().State)
	}
	// Nothing left to retire: a third file does not fit.
	ctl.manifest = manifestOf(fa, fb, fc)
	ctl.plan = plan(api.FillFile{File: fa, Sources: srcs(fa)}, api.FillFile{File: fb, Sources: srcs(fb)}, api.FillFile{File: fc, Sources: srcs(fc)})
	if err := ag.Pass(context.Background()); !errors.Is(err, store.ErrFull) {
		t.Fatalf("Pass() = %v, want ErrFull", err)
	}
	if got := ctl.last(); got.State != "full" || got.Pending != 1 {
		t.Errorf("reported %+v, want state full with 1 pending", got)
	}
	if !bytes.Equal(stored(t, st, fa), a) || !bytes.Equal(stored(t, st, fb), b) {
		t.Error("stored files are not intact and readable after the disk filled")
	}
}

// TestRetireAfterLanding: once the new manifest has landed, a file it no
// longer lists stops being reported at once but stays until acknowledged;
// listed again before that, it is reported again and never deleted.
func TestRetireAfterLanding(t *testing.T) {
	old, a := payload(10<<10, 15), payload(10<<10, 16)
	fo, fa := file("t0/old.mp4", old), file("t1/a.mp4", a)
	origin := server(t, map[string][]byte{fa.Path: a}, nil)
	st := newStore(t, 0)
	if err := st.Put(context.Background(), fo, bytes.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	ctl := &fakeControl{manifest: manifestOf(fa), plan: plan(api.FillFile{File: fa, Sources: []api.FillSource{{URL: origin.URL + "/o/" + fa.Path, Tier: api.TierOrigin}}})}
	ag := New(Config{Appliance: "a1", Store: st, Control: ctl, Clock: inWindow, RetireGrace: time.Nanosecond})
	if err := ag.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	gen, held := ag.Advertised()
	if strings.Join(held, ",") != fa.Path || ag.Retiring() != 1 {
		t.Errorf("after landing: held %v, retiring %d; want only %s held and the old file retiring", held, ag.Retiring(), fa.Path)
	}
	// The old file comes back into the manifest before it was deleted.
	ctl.manifest = manifestOf(fa, fo)
	ctl.plan = plan()
	if err := ag.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	gen2, held := ag.Advertised()
	if len(held) != 2 || gen2 == gen || ag.Retiring() != 0 {
		t.Errorf("listed again: held %v (gen %d → %d), retiring %d; want both held under a new generation", held, gen, gen2, ag.Retiring())
	}
	ag.Acknowledge(gen) // an old acknowledgement of its retirement
	if err := ag.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Lookup(fo.Path); !ok {
		t.Error("a file listed again was deleted on an old acknowledgement")
	}
}

// TestWakeStartsAPass: Wake makes Run pass at once rather than after its
// interval (an hour here).
func TestWakeStartsAPass(t *testing.T) {
	ctl := &fakeControl{manifest: manifestOf(), plan: plan(), reported: make(chan struct{}, 4)}
	ag := New(Config{Appliance: "a1", Store: newStore(t, 0), Control: ctl, Clock: inWindow, Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ag.Run(ctx) }()
	defer func() { cancel(); <-done }()
	pass := func(what string) {
		t.Helper()
		select {
		case <-ctl.reported:
		case <-time.After(time.Minute):
			t.Fatalf("no fill pass %s", what)
		}
	}
	pass("at start")
	ag.Wake()
	pass("after Wake")
}

// TestCorruptOnDiskIsRefilled is the whole cycle of issue 19's bullet on
// the fill side: objects truncated and bit-flipped on disk while the
// appliance was down are quarantined when the store opens, are not served,
// are downloaded again by the next pass (and only they), and are served
// with the right bytes.
func TestCorruptOnDiskIsRefilled(t *testing.T) {
	data := map[string][]byte{}
	var files []content.File
	for i, p := range []string{"t1/a.mp4", "t1/b.mp4", "t1/c.mp4"} {
		data[p] = payload(200<<10, byte(10+i))
		files = append(files, file(p, data[p]))
	}
	var originHits atomic.Int64
	origin := server(t, data, &originHits)
	var fillFiles []api.FillFile
	for _, f := range files {
		fillFiles = append(fillFiles, api.FillFile{File: f, Sources: []api.FillSource{{URL: origin.URL + "/o/" + f.Path, Tier: api.TierOrigin}}})
	}
	ctl := &fakeControl{manifest: manifestOf(files...), plan: plan(fillFiles...)}
	root := t.TempDir()
	st, err := store.Open(root, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := New(Config{Appliance: "a1", Store: st, Control: ctl, Clock: inWindow}).Pass(context.Background()); err != nil {
		t.Fatalf("first Pass() = %v", err)
	}
	st.Close() // the appliance stops cleanly

	// While it is down, b is truncated and one bit of c flips.
	if err := os.Truncate(storetest.ObjectFile(root, files[1]), 1000); err != nil {
		t.Fatal(err)
	}
	if err := storetest.FlipBit(storetest.ObjectFile(root, files[2]), 150_000); err != nil {
		t.Fatal(err)
	}

	st, err = store.Open(root, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q := st.Opened().Quarantined; len(q) != 2 {
		t.Errorf("Opened().Quarantined = %+v, want b and c", q)
	}
	for _, f := range files[1:] {
		if _, _, err := st.Open(f.Path); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Open(%s) after corruption = %v, want ErrNotFound", f.Path, err)
		}
	}
	hits := originHits.Load()
	if err := New(Config{Appliance: "a1", Store: st, Control: ctl, Clock: inWindow}).Pass(context.Background()); err != nil {
		t.Fatalf("Pass() after restart = %v", err)
	}
	if got := originHits.Load() - hits; got != 2 {
		t.Errorf("refill asked the origin %d times, want 2 (b and c only)", got)
	}
	for _, f := range files {
		if !bytes.Equal(stored(t, st, f), data[f.Path]) {
			t.Errorf("%s: store serves bytes that are not the file's", f.Path)
		}
	}
}

// TestUrgentFillUsesTheLowerCap: outside the window urgent files download
// under UrgentRate (default a quarter of Rate), inside it under Rate.
func TestUrgentFillUsesTheLowerCap(t *testing.T) {
	if ag := New(Config{Rate: 4 << 20}); ag.ulim == nil || ag.ulim.rate != 1<<20 {
		t.Errorf("default urgent cap = %+v, want a quarter of the rate", ag.ulim)
	}
	if ag := New(Config{}); ag.ulim != nil || ag.lim != nil {
		t.Errorf("no rate: caps %+v %+v, want none", ag.lim, ag.ulim)
	}
	u := payload(32<<10, 17)
	fu := file("t1/urgent.mp4", u)
	origin := server(t, map[string][]byte{fu.Path: u}, nil)
	ctl := &fakeControl{manifest: manifestOf(fu), plan: plan(api.FillFile{File: fu, Urgent: true,
		Sources: []api.FillSource{{URL: origin.URL + "/o/" + fu.Path, Tier: api.TierOrigin}}})}
	outside := fixedClock{time.Date(2026, 3, 1, 20, 0, 0, 0, time.UTC)}
	ag := New(Config{Appliance: "a1", Store: newStore(t, 0), Control: ctl, Clock: outside, StrictWindow: true, Rate: 100 << 20, UrgentRate: 50 << 20})
	lastIn, lastOut := ag.lim.last, ag.ulim.last
	if err := ag.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !ag.lim.last.Equal(lastIn) || ag.ulim.last.Equal(lastOut) {
		t.Errorf("an urgent fill outside the window took tokens from the in-window cap (or none from the urgent one)")
	}
}
