package lab

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
)

// loopScenario is the built-in scenario with only the loops' events: a
// title turns hot among isp-a's clients once the demand average has some
// history (a 10 s half-life), and a release is announced 8 s before it
// starts. The fill clock is the default's (a fill window every 24 s), so
// two windows after the shift fit in the run with room to see misses stay
// down. Its addresses are its own.
func loopScenario(t *testing.T) *Scenario {
	t.Helper()
	y := string(DefaultScenario)
	y = y[:strings.Index(y, "\nevents:")] + `
events:
  - {at: 10s, kind: popularity_shift, target: isp-a, title: t0009, share: 0.5}
  - {at: 30s, kind: release, title: t0011, share: 0.5, lead: 8s}
`
	y = strings.NewReplacer(
		"duration: 90s", "duration: 64s",
		"half_life: 30s", "half_life: 10s",
		// Fewer clients than the built-in scenario: enough for the
		// figures, lighter on a shared machine.
		"{isp: isp-a, count: 16}", "{isp: isp-a, count: 12}",
		"{isp: isp-b, count: 12}", "{isp: isp-b, count: 6}",
		"{isp: isp-c, count: 6}", "{isp: isp-c, count: 3}",
		"127.1.0.1:", "127.1.70.1:", "127.1.0.2:", "127.1.70.2:",
		"127.1.1.1:", "127.1.71.1:", "127.1.1.2:", "127.1.71.2:",
		"127.1.2.1:", "127.1.72.1:",
	).Replace(y)
	var sc Scenario
	if err := decodeScenario("loop scenario", []byte(y), &sc); err != nil {
		t.Fatal(err)
	}
	return &sc
}

// TestLabLoops is the targets for the placement loop, as lab
// figures: after a popularity shift the hot title's content misses at the
// region's home site fall under a tenth of their peak within two fill
// windows and stay there, every replan's churn is within its bound, offload
// recovers, and a release pre-positioned from the feed is served from
// embedded sites from the first request.
func TestLabLoops(t *testing.T) {
	sc := loopScenario(t)
	rep, err := New(sc, Options{}).Run(context.Background())
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	var b strings.Builder
	rep.Print(&b)
	t.Logf("report:\n%s", b.String())
	lp := rep.Loops
	if lp == nil {
		t.Fatal("report has no loops section")
	}
	if s := rep.Sessions; s.Failed != 0 || s.Completed < 40 {
		t.Errorf("sessions = %+v, want ≥ 40 completed and none failed", s)
	}
	if lp.Replans < 1 || len(lp.Recent) == 0 {
		t.Errorf("replans = %d, want the loop to replan", lp.Replans)
	}
	if lp.ChurnBound <= 0 || lp.MaxChurnShare > lp.ChurnBound {
		t.Errorf("churn per replan up to %.3f of a site's capacity, bound %.3f", lp.MaxChurnShare, lp.ChurnBound)
	}
	if len(lp.Shifts) != 1 {
		t.Fatalf("shifts = %+v, want one", lp.Shifts)
	}
	sh := lp.Shifts[0]
	if sh.PeakBytes == 0 {
		t.Errorf("shift %+v: no content misses of the hot title at all; the scenario no longer tests the loop", sh)
	}
	if sh.RecoveredAtSeconds == 0 || sh.RecoveryWindows > 2 {
		t.Errorf("shift: the hot title's content misses %v (peak %d) were under a tenth of the peak only %.2f fill windows after the shift (recovered at %.0f s), want within 2",
			sh.Misses, sh.PeakBytes, sh.RecoveryWindows, sh.RecoveredAtSeconds)
	}
	// Offload recovers: after the misses fell, embedded sites serve more
	// than in the interval of the peak.
	var peak, after float64
	n := 0
	for _, s := range lp.Samples {
		switch {
		case s.AtSeconds == sh.PeakAtSeconds:
			peak = s.Offload
		case sh.RecoveredAtSeconds > 0 && s.AtSeconds > sh.RecoveredAtSeconds && s.ClientBytes > 0:
			after += s.Offload
			n++
		}
	}
	if n == 0 || after/float64(n) <= peak {
		t.Errorf("offload at the miss peak %.2f, after recovery %.2f over %d intervals: want it to recover", peak, after/float64(max(n, 1)), n)
	}
	if len(lp.Releases) != 1 {
		t.Fatalf("releases = %+v, want one", lp.Releases)
	}
	if rl := lp.Releases[0]; rl.Sessions == 0 || rl.FirstFromEmbedded != rl.Sessions || rl.FeedAtSeconds == 0 {
		t.Errorf("release = %+v, want every session of clients with an embedded home served from an embedded site from its first request", rl)
	}
}

// TestPlaylist: before its release a title is never played; after a shift
// about its share of the region's plays go to the hot title, and other
// regions are unaffected.
func TestPlaylist(t *testing.T) {
	titles := []string{"t0000", "t0001", "t0002", "t0003"}
	p := newPlaylist(titles, []Event{{Kind: "release", Title: "t0003"}})
	rng := rand.New(rand.NewPCG(1, 2))
	count := func(isp string, n int) map[string]int {
		out := map[string]int{}
		for range n {
			out[p.next(isp, rng)]++
		}
		return out
	}
	if c := count("isp-a", 2000); c["t0003"] != 0 || c["t0000"] <= c["t0002"] {
		t.Errorf("before release and shift: plays %v, want Zipf over the first three titles", c)
	}
	p.shift("isp-a", "t0002", 0.5)
	if c := count("isp-a", 4000); c["t0002"] < 2000 || c["t0002"] > 2600 {
		t.Errorf("after the shift: isp-a plays %v, want about half (plus its Zipf share) on t0002", c)
	}
	if c := count("isp-b", 4000); c["t0002"] > 1000 {
		t.Errorf("after isp-a's shift: isp-b plays %v, want only its Zipf share on t0002", c)
	}
	p.release("t0003", 0.3)
	// 30% on the release, and its Zipf share (0.25/H(4) = 12%) of the rest.
	if c := count("isp-b", 4000); c["t0003"] < 1350 || c["t0003"] > 1750 {
		t.Errorf("after the release: isp-b plays %v, want about 38%% on t0003", c)
	}
}

// TestShiftReport: recovery is the end of the first interval after the
// peak from which every interval stays under a tenth of the peak.
func TestShiftReport(t *testing.T) {
	cum := []int64{0, 0, 0, 50, 150, 160, 300, 305, 306, 306}
	var samples []loopSample
	for i, c := range cum {
		samples = append(samples, loopSample{at: float64(5 * i), ok: true, byHome: map[string]map[string]int64{"home": {"t": c}}})
	}
	sr := shiftReport(samples, 12, "isp", "home", "t", 24)
	// Intervals ending at 15…45: 50 100 10 140 5 1 0.
	if sr.PeakBytes != 140 || sr.PeakAtSeconds != 30 || sr.RecoveredAtSeconds != 35 || sr.MissesBefore != 0 {
		t.Errorf("shiftReport = %+v, want peak 140 at 30 s, recovered at 35 s", sr)
	}
	if w := sr.RecoveryWindows; w < (35.0-12)/24-1e-9 || w > (35.0-12)/24+1e-9 {
		t.Errorf("RecoveryWindows = %v, want (35-12)/24", w)
	}
	// Misses that come back above a tenth: not recovered.
	samples = append(samples, loopSample{at: 50, ok: true, byHome: map[string]map[string]int64{"home": {"t": 400}}})
	if sr := shiftReport(samples, 12, "isp", "home", "t", 24); sr.RecoveredAtSeconds != 0 {
		t.Errorf("misses back at the end: recovered at %v, want not recovered", sr.RecoveredAtSeconds)
	}
}
