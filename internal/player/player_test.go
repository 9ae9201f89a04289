package player

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/cpclient/cptest"
	"github.com/ocdn/ocdn/internal/netem"
	"github.com/ocdn/ocdn/internal/steer"
)

// served is one response of a fake appliance: the range asked for and
// the bytes actually sent.
type served struct {
	path     string
	off, end int64
	sent     int64
}

// fakeAppliance serves synthetic files as byte ranges. cut, when set,
// decides per request how many bytes to send before dying ("abort") or
// hanging ("hang"); -1 sends all.
type fakeAppliance struct {
	id  string
	srv *httptest.Server
	cat *content.Catalog

	mu   sync.Mutex
	log  []served
	reqs int
	cut  func(req int, off, end int64) (int64, string)
}

func newAppliance(t *testing.T, id string, cat *content.Catalog) *fakeAppliance {
	a := &fakeAppliance{id: id, cat: cat}
	a.srv = httptest.NewServer(a)
	t.Cleanup(a.srv.Close)
	return a
}

// deadAppliance is an appliance whose server is closed: connections to
// its URL are refused.
func deadAppliance(t *testing.T, id string, cat *content.Catalog) *fakeAppliance {
	a := newAppliance(t, id, cat)
	a.srv.Close()
	return a
}

func (a *fakeAppliance) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// /c/{token}/{title}/{file}
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/c/"), "/", 2)
	f, err := a.cat.Lookup(parts[len(parts)-1])
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	var off, end int64
	if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &off, &end); err != nil || end >= f.Size || off > end {
		http.Error(w, "bad range", http.StatusRequestedRangeNotSatisfiable)
		return
	}
	a.mu.Lock()
	req := a.reqs
	a.reqs++
	cut := a.cut
	a.mu.Unlock()
	send, action := int64(-1), ""
	if cut != nil {
		send, action = cut(req, off, end)
	}
	want := end - off + 1
	if send < 0 || send > want {
		send = want
	}
	w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, end, f.Size))
	w.Header().Set("Content-Length", fmt.Sprint(want))
	w.WriteHeader(http.StatusPartialContent)
	n, _ := io.Copy(w, io.NewSectionReader(content.SynthReader(f.Path, f.Size), off, send))
	a.mu.Lock()
	a.log = append(a.log, served{path: f.Path, off: off, end: end, sent: n})
	a.mu.Unlock()
	if n < want {
		w.(http.Flusher).Flush()
		if action == "hang" {
			<-r.Context().Done()
		}
		panic(http.ErrAbortHandler) // cut the connection mid-body
	}
}

func (a *fakeAppliance) served() []served {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.log)
}

// newControl is a control plane of two replicas serving the catalog;
// route gives the appliances (in rank order) for the n-th steering
// request.
func newControl(t *testing.T, cat *content.Catalog, route func(call int) []*fakeAppliance) *cptest.Plane {
	return cptest.New(t, cptest.Config{Catalog: cat, Steer: func(call int, file string) []steer.Choice {
		var cs []steer.Choice
		for _, a := range route(call) {
			cs = append(cs, steer.Choice{URL: a.srv.URL + "/c/tok/" + file, Appliance: a.id, Site: "s-" + a.id})
		}
		return cs
	}})
}

func catalog(t *testing.T, dur time.Duration) *content.Catalog {
	t.Helper()
	cat, err := content.Synth(content.SynthSpec{Titles: 1, LadderKbps: []int{400, 1500, 3000}, Duration: dur})
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// checkBytes fails unless the session counted exactly the bytes the
// appliances sent: nothing fetched twice is hidden, nothing lost.
func checkBytes(t *testing.T, sess Session, apps ...*fakeAppliance) {
	t.Helper()
	var total int64
	for _, a := range apps {
		for _, s := range a.served() {
			total += s.sent
		}
	}
	if total != sess.Bytes {
		t.Errorf("appliances sent %d bytes, session counted %d", total, sess.Bytes)
	}
}

func TestBBARateMap(t *testing.T) {
	a := &bba{ladder: []int{400, 1000, 2500}, reservoir: time.Second, cushion: 2 * time.Second}
	for _, tc := range []struct {
		prev int
		b    time.Duration
		want int
	}{
		{2, 500 * time.Millisecond, 0}, // at or below the reservoir: lowest
		{0, 3 * time.Second, 1},        // at reservoir+cushion or above: up, one rung at a time
		{1, 3 * time.Second, 2},
		{0, 1200 * time.Millisecond, 0}, // f = 610 < 1000: stay
		{0, 2 * time.Second, 1},         // f = 1450 ≥ 1000: highest rung below f
		{1, 2 * time.Second, 1},         // f between the neighbours: stay
		{1, 2500 * time.Millisecond, 1}, // f = 1975 < 2500: stay
		{2, 2500 * time.Millisecond, 2}, // f = 1975 > 1000: stay
		{2, 1400 * time.Millisecond, 1}, // f = 820 ≤ 1000: lowest rung above f
		{1, 1050 * time.Millisecond, 1}, // f = 452.5 > 400: stay
	} {
		if got := a.next(tc.prev, tc.b); got != tc.want {
			t.Errorf("next(prev=%d, B=%v) = %d (f=%.0f), want %d", tc.prev, tc.b, got, a.rate(tc.b), tc.want)
		}
	}
}

// shortPlayer is a player for a test: half-second segments so that a
// session is a few seconds long.
func shortPlayer(t *testing.T, ctl *cptest.Plane, mod func(*Config)) *Player {
	t.Helper()
	cfg := Config{ControlURLs: ctl.URLs(), SegmentDuration: 500 * time.Millisecond, MaxBuffer: 3 * time.Second,
		RequestTimeout: 2 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func throttle(l netem.Link) func(*Config) {
	return func(c *Config) {
		c.Dial = netem.Dialer(nil, func(netip.AddrPort) (netem.Link, bool) { return l, true })
	}
}

func TestABRClimbsOnFastLinkStaysLowOnSlowOne(t *testing.T) {
	cat := catalog(t, 8*time.Second)
	title := cat.Titles()[0]
	for _, tc := range []struct {
		name  string
		link  netem.Link
		check func(t *testing.T, s Session)
	}{
		{"fast", netem.Link{RTT: 2 * time.Millisecond, BandwidthBps: 50e6}, func(t *testing.T, s Session) {
			if s.BitrateKbps != 3000 || s.AvgBitrateKbps < 2000 {
				t.Errorf("on a 50 Mbit/s link: last rung %d, average %.0f kbit/s; want the top rung and over 2000", s.BitrateKbps, s.AvgBitrateKbps)
			}
			if s.Rebuffers != 0 {
				t.Errorf("on a 50 Mbit/s link: %d rebuffers, want none", s.Rebuffers)
			}
		}},
		{"throttled", netem.Link{RTT: 20 * time.Millisecond, BandwidthBps: 700e3}, func(t *testing.T, s Session) {
			if s.AvgBitrateKbps > 1000 {
				t.Errorf("on a 700 kbit/s link: average %.0f kbit/s, want at most 1000", s.AvgBitrateKbps)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newAppliance(t, "oca1", cat)
			ctl := newControl(t, cat, func(int) []*fakeAppliance { return []*fakeAppliance{a} })
			p := shortPlayer(t, ctl, throttle(tc.link))
			defer p.Close()
			s, err := p.Play(context.Background(), title)
			if err != nil {
				t.Fatalf("Play: %v", err)
			}
			t.Logf("%s: startup %.0fms avg %.0f kbit/s last %d switches %d rebuffers %d (%.0fms) failovers %d",
				tc.name, s.StartupMs, s.AvgBitrateKbps, s.BitrateKbps, s.Switches, s.Rebuffers, s.RebufferMs, s.Failovers)
			tc.check(t, s)
			if s.Segments != 16 || s.Failovers != 0 {
				t.Errorf("segments %d failovers %d, want 16 and 0", s.Segments, s.Failovers)
			}
			checkBytes(t, s, a)
		})
	}
}

func TestFailoverMidSegment(t *testing.T) {
	cat := catalog(t, 3*time.Second)
	title := cat.Titles()[0]
	for _, action := range []string{"abort", "hang"} {
		t.Run(action, func(t *testing.T) {
			t.Parallel()
			a := newAppliance(t, "oca-a", cat)
			b := newAppliance(t, "oca-b", cat)
			// The third request to a sends 1000 bytes and then dies or
			// hangs.
			a.cut = func(req int, off, end int64) (int64, string) {
				if req == 2 {
					return 1000, action
				}
				return -1, ""
			}
			ctl := newControl(t, cat, func(int) []*fakeAppliance { return []*fakeAppliance{a, b} })
			p := shortPlayer(t, ctl, func(c *Config) { c.ABR = ABRFixed; c.RequestTimeout = 500 * time.Millisecond })
			defer p.Close()
			s, err := p.Play(context.Background(), title)
			if err != nil {
				t.Fatalf("Play: %v", err)
			}
			if s.Failovers != 1 {
				t.Errorf("failovers = %d, want 1", s.Failovers)
			}
			if want := []string{"oca-a", "oca-b"}; !slices.Equal(s.ServedOrder, want) {
				t.Errorf("served order = %v, want %v", s.ServedOrder, want)
			}
			f, _ := cat.Lookup(title + "/video_3000k.mp4")
			if s.Bytes != f.Size {
				t.Errorf("session bytes = %d, want the file's %d", s.Bytes, f.Size)
			}
			// b was asked for exactly the rest of the cut segment.
			cutSeg := a.served()[2]
			got := b.served()
			if len(got) == 0 || got[0].off != cutSeg.off+1000 || got[0].end != cutSeg.end {
				t.Errorf("after the cut at %d+1000 the next appliance got %+v, want the rest %d-%d", cutSeg.off, got, cutSeg.off+1000, cutSeg.end)
			}
			checkBytes(t, s, a, b)
		})
	}
}

func TestThroughputCollapseFailsOver(t *testing.T) {
	cat := catalog(t, 3*time.Second)
	title := cat.Titles()[0]
	slow := newAppliance(t, "oca-slow", cat)
	fast := newAppliance(t, "oca-fast", cat)
	// slow sends 2000 bytes of the first segment, then stalls; the
	// request timeout (5 s) is far away, so only the collapse rule can
	// move the player on quickly.
	slow.cut = func(req int, off, end int64) (int64, string) { return 2000, "hang" }
	ctl := newControl(t, cat, func(int) []*fakeAppliance { return []*fakeAppliance{slow, fast} })
	p := shortPlayer(t, ctl, func(c *Config) { c.RequestTimeout = 5 * time.Second; c.CollapseGrace = 200 * time.Millisecond })
	defer p.Close()
	s, err := p.Play(context.Background(), title)
	if err != nil {
		t.Fatalf("Play: %v", err)
	}
	if s.Collapses != 1 || s.Failovers != 1 {
		t.Errorf("collapses %d failovers %d, want 1 and 1", s.Collapses, s.Failovers)
	}
	// 400 kbit/s × 0.5 s = 25000 bytes; half rate is 25 kB/s, so 2000
	// bytes buy 80 ms past the 200 ms grace.
	if s.StartupMs > 1000 {
		t.Errorf("startup took %.0fms, want the collapse detected mid-segment well before the 5s timeout", s.StartupMs)
	}
	checkBytes(t, s, slow, fast)
}

func TestResteerAfterEveryURLFails(t *testing.T) {
	cat := catalog(t, 2*time.Second)
	title := cat.Titles()[0]
	dead1 := deadAppliance(t, "dead1", cat)
	dead2 := newAppliance(t, "dead2", cat)
	good := newAppliance(t, "good", cat)
	dead2.cut = func(int, int64, int64) (int64, string) { return 0, "abort" }
	ctl := newControl(t, cat, func(call int) []*fakeAppliance {
		if call == 0 {
			return []*fakeAppliance{dead1, dead2}
		}
		return []*fakeAppliance{good}
	})
	p := shortPlayer(t, ctl, nil)
	defer p.Close()
	s, err := p.Play(context.Background(), title)
	if err != nil {
		t.Fatalf("Play: %v", err)
	}
	if s.Resteers != 1 || s.Failovers != 2 {
		t.Errorf("resteers %d failovers %d, want 1 and 2", s.Resteers, s.Failovers)
	}
	if want := []string{"good"}; !slices.Equal(s.ServedOrder, want) {
		t.Errorf("served order = %v, want %v", s.ServedOrder, want)
	}
	q := s.QoE()
	if q.Failovers != 2 || len(q.ServedBy) != 1 || q.DurationMs <= 0 {
		t.Errorf("QoE() = %+v, want 2 failovers, served by good, a duration", q)
	}
}

// TestResteerWaitsOutAnOutage: the only appliance steering knows is down
// for the first three answers (a restart the control plane has not
// noticed yet). The player asks again at once, then after 250 ms and
// 500 ms, and the fourth answer plays: a stall, not a failed session.
func TestResteerWaitsOutAnOutage(t *testing.T) {
	t.Parallel()
	cat := catalog(t, 2*time.Second)
	dead := deadAppliance(t, "dead", cat)
	good := newAppliance(t, "good", cat)
	ctl := newControl(t, cat, func(call int) []*fakeAppliance {
		if call < 3 {
			return []*fakeAppliance{dead}
		}
		return []*fakeAppliance{good}
	})
	p := shortPlayer(t, ctl, nil)
	defer p.Close()
	s, err := p.Play(context.Background(), cat.Titles()[0])
	if err != nil || !s.Completed {
		t.Fatalf("Play through a 3-answer outage = %v, want it completed", err)
	}
	if s.Resteers != 3 || s.Failovers != 3 {
		t.Errorf("resteers %d failovers %d, want 3 and 3", s.Resteers, s.Failovers)
	}
	if s.StartupMs < 750 {
		t.Errorf("startup %.0f ms, want at least the 250 + 500 ms waited between answers", s.StartupMs)
	}
}

// TestResteerPatienceExcludesSteeringWaits: the time steering takes to
// answer (a slow or absent control plane, which ControlPatience bounds)
// does not use up ResteerPatience: the second answer takes 1.5 s, longer
// than the 1 s patience, and the third still gets asked for.
func TestResteerPatienceExcludesSteeringWaits(t *testing.T) {
	t.Parallel()
	cat := catalog(t, 2*time.Second)
	dead := deadAppliance(t, "dead", cat)
	good := newAppliance(t, "good", cat)
	var slow sync.Once // steering is asked for every rung's file in one request
	ctl := newControl(t, cat, func(call int) []*fakeAppliance {
		switch call {
		case 0:
			return []*fakeAppliance{dead}
		case 1:
			slow.Do(func() { time.Sleep(1500 * time.Millisecond) }) // a control plane slow to answer
			return []*fakeAppliance{dead}
		}
		return []*fakeAppliance{good}
	})
	p := shortPlayer(t, ctl, func(c *Config) { c.ResteerPatience = time.Second })
	defer p.Close()
	s, err := p.Play(context.Background(), cat.Titles()[0])
	if err != nil || !s.Completed {
		t.Fatalf("Play = %v, want the third answer played: waiting for steering is not the appliances' patience", err)
	}
	if s.Resteers != 2 {
		t.Errorf("resteers = %d, want 2", s.Resteers)
	}
}

// TestResteerPatienceRunsOut: with every answer dead, the session asks
// again until ResteerPatience (1.5 s) would pass: at 0, 250 and 750 ms;
// the next wait (1 s) would end past it, so the session fails there,
// naming every answer it used.
func TestResteerPatienceRunsOut(t *testing.T) {
	t.Parallel()
	cat := catalog(t, 2*time.Second)
	dead := deadAppliance(t, "dead", cat)
	ctl := newControl(t, cat, func(int) []*fakeAppliance { return []*fakeAppliance{dead} })
	p := shortPlayer(t, ctl, func(c *Config) { c.ResteerPatience = 1500 * time.Millisecond })
	defer p.Close()
	s, err := p.Play(context.Background(), cat.Titles()[0])
	if err == nil || s.Completed {
		t.Fatal("Play with every appliance dead succeeded")
	}
	if s.Resteers != 3 {
		t.Errorf("resteers = %d, want 3 within the patience", s.Resteers)
	}
	if want := "every URL of 4 steering answers"; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "(dead; dead; dead; dead)") {
		t.Errorf("error %q, want it to say %q and name the appliances of each answer", err, want)
	}
}

// TestControlPlaneOutageDelaysPlayback: a control plane whose replicas
// all answer 503 for a while, then steers to nobody (it has not heard from
// any appliance since it came back), then recovers, delays the session; it
// does not fail it. A 4xx still fails at once, on the first replica.
func TestControlPlaneOutageDelaysPlayback(t *testing.T) {
	t.Parallel()
	cat := catalog(t, 2*time.Second)
	title := cat.Titles()[0]
	app := newAppliance(t, "a1", cat)
	ctl := newControl(t, cat, func(call int) []*fakeAppliance {
		if call == 0 {
			return nil // steering knows no appliance yet
		}
		return []*fakeAppliance{app}
	})
	a, b := ctl.Replica(0), ctl.Replica(1)
	a.Fail(2, http.StatusServiceUnavailable)
	b.Fail(2, http.StatusServiceUnavailable)
	p := shortPlayer(t, ctl, nil)
	defer p.Close()
	s, err := p.Play(context.Background(), title)
	if err != nil || !s.Completed {
		t.Fatalf("Play through a control-plane outage = %v (session %+v), want it delayed, not failed", err, s)
	}
	// Two rounds of both replicas answering 503, one empty steering answer.
	if s.ControlWaits != 3 {
		t.Errorf("control waits = %d, want 3", s.ControlWaits)
	}
	if got := a.Hits("/v1/titles/" + title); got != 3 {
		t.Errorf("first replica asked for the title %d times, want 3 (two 503s, then the answer)", got)
	}

	gone := cptest.New(t, cptest.Config{}) // knows no title: 404
	p2, err := New(Config{ControlURLs: gone.URLs(), ControlPatience: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	s2, err := p2.Play(context.Background(), title)
	if err == nil {
		t.Fatal("Play against a control plane answering 404 succeeded")
	}
	if s2.ControlWaits != 0 || gone.Replica(1).Hits("/v1/titles/"+title) != 0 {
		t.Errorf("a 404 was retried (%d waits, %d requests to the second replica); want it final", s2.ControlWaits, gone.Replica(1).Hits("/v1/titles/"+title))
	}
}

// TestControlReplicaKilledMidSession: the first replica answers the title
// and the first steering request, then dies. The re-steer the session
// needs goes to the second replica with no patience wait, the session
// completes, and the next session goes straight to the live replica.
func TestControlReplicaKilledMidSession(t *testing.T) {
	t.Parallel()
	cat := catalog(t, 2*time.Second)
	title := cat.Titles()[0]
	dead := deadAppliance(t, "dead", cat)
	good := newAppliance(t, "good", cat)
	ctl := newControl(t, cat, func(call int) []*fakeAppliance {
		if call == 0 {
			return []*fakeAppliance{dead}
		}
		return []*fakeAppliance{good}
	})
	a, b := ctl.Replica(0), ctl.Replica(1)
	a.KillAfter(2)
	var dials cptest.Dials
	p := shortPlayer(t, ctl, func(c *Config) { c.Dial = dials.Dial })
	defer p.Close()
	s, err := p.Play(context.Background(), title)
	if err != nil || !s.Completed {
		t.Fatalf("Play with a replica killed mid-session = %v (session %+v), want completed", err, s)
	}
	if s.Resteers != 1 || s.ControlWaits != 0 {
		t.Errorf("resteers %d, control waits %d; want 1 re-steer answered by the live replica without waiting", s.Resteers, s.ControlWaits)
	}
	if a.Hits("/v1/steer") != 1 || b.Hits("/v1/steer") != 1 || ctl.SteerCalls() != 2 {
		t.Errorf("steering requests: killed replica %d, live replica %d, answered %d; want 1, 1, 2",
			a.Hits("/v1/steer"), b.Hits("/v1/steer"), ctl.SteerCalls())
	}
	if want := []string{"good"}; !slices.Equal(s.ServedOrder, want) {
		t.Errorf("served order = %v, want %v", s.ServedOrder, want)
	}

	dialsToA := dials.To(a.URL)
	s, err = p.Play(context.Background(), title)
	if err != nil || !s.Completed || s.ControlWaits != 0 {
		t.Fatalf("second session = %v (session %+v), want completed without waiting", err, s)
	}
	if got := dials.To(a.URL); got != dialsToA {
		t.Errorf("second session dialled the dead replica %d times, want 0: the player should stay with the live one", got-dialsToA)
	}
	if b.Hits("/v1/titles/"+title) != 1 || b.Hits("/v1/steer") != 2 {
		t.Errorf("live replica saw %d title and %d steering requests, want 1 and 2", b.Hits("/v1/titles/"+title), b.Hits("/v1/steer"))
	}
}

// TestControlReplica5xxCostsOneRequest: a replica that answers every
// request with 503 is asked once; everything else goes to the next.
func TestControlReplica5xxCostsOneRequest(t *testing.T) {
	t.Parallel()
	cat := catalog(t, 2*time.Second)
	title := cat.Titles()[0]
	app := newAppliance(t, "a1", cat)
	ctl := newControl(t, cat, func(int) []*fakeAppliance { return []*fakeAppliance{app} })
	a, b := ctl.Replica(0), ctl.Replica(1)
	a.Fail(-1, http.StatusInternalServerError)
	p := shortPlayer(t, ctl, nil)
	defer p.Close()
	for range 2 {
		s, err := p.Play(context.Background(), title)
		if err != nil || s.ControlWaits != 0 {
			t.Fatalf("Play with a replica answering 500 = %v (%d control waits), want completed without waiting", err, s.ControlWaits)
		}
	}
	if got := a.Hits("/v1/titles/"+title) + a.Hits("/v1/steer"); got != 1 {
		t.Errorf("the failing replica was asked %d times in two sessions, want once", got)
	}
	if b.Hits("/v1/titles/"+title) != 2 || b.Hits("/v1/steer") != 2 {
		t.Errorf("the live replica saw %d title and %d steering requests, want 2 and 2", b.Hits("/v1/titles/"+title), b.Hits("/v1/steer"))
	}
}

func TestNewRejectsBadControlURLs(t *testing.T) {
	for _, urls := range [][]string{nil, {"127.0.0.1:8080"}, {"http://127.0.0.1:8080/v1"}} {
		if _, err := New(Config{ControlURLs: urls}); err == nil || !strings.Contains(err.Error(), "control_urls") {
			t.Errorf("New(ControlURLs: %q) = %v, want an error naming control_urls", urls, err)
		}
	}
}
