package control

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/rib"
	"github.com/ocdn/ocdn/internal/steer"
)

func TestExperimentArmsAreFixedAndFollowShares(t *testing.T) {
	e := newExperiment(config.Experiment{Name: "exp-a", Shares: map[string]float64{"bgp": 0.3, "measured": 0.7}}, time.Unix(0, 0))
	other := newExperiment(config.Experiment{Name: "exp-b"}, time.Unix(0, 0))
	count := map[string]int{}
	same := 0
	const n = 20000
	for i := range n {
		c := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 7})
		a := e.arm(c)
		if e.arm(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 200})) != a {
			t.Fatalf("two clients of one /24 got different arms")
		}
		count[a]++
		if (a == ArmMeasured) == (other.arm(c) == ArmMeasured) {
			same++
		}
	}
	// Binomial sd at n = 20000 is about 0.003: 0.02 is a wide band.
	if f := float64(count[ArmMeasured]) / n; math.Abs(f-0.7) > 0.02 {
		t.Errorf("measured share = %.3f, want 0.7 (%v)", f, count)
	}
	// Another experiment's assignment is independent: agreement ≈ 0.7·0.5 + 0.3·0.5.
	if f := float64(same) / n; math.Abs(f-0.5) > 0.03 {
		t.Errorf("agreement with an independent experiment = %.3f, want about 0.5", f)
	}
	ctx := e.context(netip.MustParseAddr("10.0.0.1"))
	if ctx["experiment"] != "exp-a" || ctx["arm_shares"] != "bgp=0.3,measured=0.7" || ctx["control_arm"] != "bgp" || ctx["experiment_start"] != "1970-01-01T00:00:00Z" {
		t.Errorf("context = %v", ctx)
	}
	if n := testing.AllocsPerRun(100, func() { e.arm(netip.MustParseAddr("10.1.2.3")) }); n != 0 {
		t.Errorf("arm allocates %v times, want 0 (it runs on every steering decision)", n)
	}
}

// measuredWorld is a control plane whose embedded appliance e1 and IXP
// appliance x1 both hear the clients' prefix with equal routes, with
// measured steering on and the clock real (the ingester dates reports by
// the wall clock).
func measuredWorld(t *testing.T, ms MeasuredSteering) (*Server, string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, _, cat := newTestServerWith(t, func(c *Config) {
		c.MeasureDir = t.TempDir()
		c.Measured = ms
		c.Now = time.Now
		c.Registry = reg
	})
	t.Cleanup(func() { s.measure.Close() })
	h := s.Handler()
	f := s.probeFile()
	_ = cat
	beat(t, h, "e1", 1, []string{f})
	beat(t, h, "x1", 1, []string{f})
	for _, id := range []string{"e1", "x1"} {
		report(t, h, api.RouteReport{Appliance: id, Epoch: "e-" + id, Seq: 1, Snapshot: true, Announce: []rib.Route{route("10.64.0.0/16")}})
	}
	return s, f
}

var reportSeq int

// probeReports ingests, from clients 10.64.i.9, reports of one TTFB pulse
// per site.
func probeReports(t *testing.T, s *Server, clients int, ttfb map[string]float64) {
	t.Helper()
	now := time.Now()
	for i := range clients {
		reportSeq++
		rep := &measure.Report{ID: fmt.Sprintf("report-%016d", reportSeq), Recipe: "r", ClientTime: now}
		j := 0
		for app, v := range ttfb {
			rep.Pulses = append(rep.Pulses, measure.Pulse{Target: app, Appliance: app, Type: measure.TypeHTTPTTFB, Seq: j,
				Start: now, TTFBMs: v + float64(i%5), DurationMs: v + 5, Status: measure.StatusOK})
			j++
		}
		if _, err := s.measure.Ingest(context.Background(), netip.AddrFrom4([4]byte{10, 64, byte(i), 9}), rep); err != nil {
			t.Fatal(err)
		}
	}
}

// firstFor is the appliance steering puts first for client.
func firstFor(t *testing.T, s *Server, f string, client netip.Addr) string {
	t.Helper()
	choices, _, err := s.engine.Steer(s.snap.Load(), client, f, 2, false)
	if err != nil || len(choices) == 0 {
		t.Fatalf("steer: %v %v", choices, err)
	}
	return choices[0].Appliance
}

// movedShare counts the clients 10.64.i.9 steered to x1.
func movedShare(t *testing.T, s *Server, f string, clients []netip.Addr) float64 {
	moved := 0
	for _, c := range clients {
		if firstFor(t, s, f, c) == "x1" {
			moved++
		}
	}
	return float64(moved) / float64(len(clients))
}

func allClients() []netip.Addr {
	var out []netip.Addr
	for i := range 256 {
		out = append(out, netip.AddrFrom4([4]byte{10, 64, byte(i), 9}))
	}
	return out
}

// TestMeasuredMovesWithinTheStep: with clear evidence that x1 is faster,
// each step moves at most MaxStep of the group, until all of it has
// moved; explain shows the move.
func TestMeasuredMovesWithinTheStep(t *testing.T) {
	s, f := measuredWorld(t, MeasuredSteering{Enabled: true, MinSamples: 30, Refresh: time.Hour, MaxStep: 0.25})
	clients := allClients()
	if got := movedShare(t, s, f, clients); got != 0 {
		t.Fatalf("before measurements %.2f of clients moved, want 0", got)
	}
	probeReports(t, s, 40, map[string]float64{"e1": 60, "x1": 15})
	for step := 1; step <= 6; step++ {
		s.measuredStep()
		share := math.Min(1, 0.25*float64(step))
		// Exactly the clients placed below the share move: each step
		// adds those between the previous share and this one, no others.
		for _, c := range clients {
			want := "e1"
			if movedFraction(c) < share {
				want = "x1"
			}
			if got := firstFor(t, s, f, c); got != want {
				t.Fatalf("step %d (share %.2f): %v goes to %s, want %s", step, share, c, got, want)
			}
		}
		if got := movedShare(t, s, f, clients); math.Abs(got-share) > 0.12 {
			t.Errorf("step %d: %.2f of the /24s moved, want about %.2f", step, got, share)
		}
	}
	st := s.MeasuredStatus()
	if len(st.Groups) != 1 || st.Groups[0].Site != "ix" || st.Groups[0].BGPSite != "emb" || st.Groups[0].Share != 1 || st.Groups[0].Steps != 4 || st.Arms["all"].Steps != 4 {
		t.Errorf("status = %+v, want group moved to ix in 4 steps", st)
	}
	for i, h := range st.Groups[0].History {
		if d := h.Share - func() float64 {
			if i == 0 {
				return 0
			}
			return st.Groups[0].History[i-1].Share
		}(); d > 0.25+1e-9 {
			t.Errorf("history %d: share grew by %.2f, more than the step", i, d)
		}
	}
	_, why, _ := s.engine.Steer(s.snap.Load(), clients[0], f, 2, true)
	if why[0].Appliance != "x1" || why[0].Measured == "" {
		t.Errorf("explain = %+v, want x1 first with the measurements' reason", why)
	}
}

// TestMeasuredNeedsClearEvidence: equal sites, or too few samples, move
// nobody however many steps pass.
func TestMeasuredNeedsClearEvidence(t *testing.T) {
	for _, tc := range []struct {
		name    string
		clients int
		ttfb    map[string]float64
	}{
		{"equal", 60, map[string]float64{"e1": 30, "x1": 29}},
		{"within the margin", 60, map[string]float64{"e1": 30, "x1": 28}},
		{"too few samples", 20, map[string]float64{"e1": 60, "x1": 15}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, f := measuredWorld(t, MeasuredSteering{Enabled: true, MinSamples: 30, Refresh: time.Hour})
			probeReports(t, s, tc.clients, tc.ttfb)
			for range 5 {
				s.measuredStep()
			}
			if got := movedShare(t, s, f, allClients()); got != 0 {
				t.Errorf("%.2f of clients moved, want none", got)
			}
		})
	}
}

func qoeReport(t *testing.T, s *Server, client netip.Addr, arm, servedBy string, startupMs float64) {
	t.Helper()
	reportSeq++
	rep := &measure.Report{ID: fmt.Sprintf("qoe-%016d", reportSeq), Recipe: "playback", ClientTime: time.Now(),
		Player: &measure.QoE{StartupMs: startupMs, AvgBitrateKbps: 2500, DurationMs: 12000, ServedBy: []string{servedBy}}}
	if arm != "" {
		rep.Context = map[string]string{"arm": arm}
	}
	if _, err := s.measure.Ingest(context.Background(), client, rep); err != nil {
		t.Fatal(err)
	}
}

// TestQoEWatchRollsBack: in an experiment, once the measured arm's moved
// clients start slower than the control arm's, the group goes back to
// BGP and stays there for the hold; a report naming the wrong arm is a
// mismatch, not evidence for either arm.
func TestQoEWatchRollsBack(t *testing.T) {
	s, f := measuredWorld(t, MeasuredSteering{Enabled: true, MinSamples: 30, Refresh: time.Hour, MaxStep: 1,
		QoE:        config.QoEWatch{MinSessions: 3, Hold: time.Hour},
		Experiment: &config.Experiment{Name: "watch"}})
	exp := s.msteer.exp
	var measured, control []netip.Addr
	for _, c := range allClients() {
		if exp.arm(c) == ArmMeasured {
			measured = append(measured, c)
		} else {
			control = append(control, c)
		}
	}
	probeReports(t, s, 40, map[string]float64{"e1": 60, "x1": 15})
	s.measuredStep()
	if firstFor(t, s, f, measured[0]) != "x1" || firstFor(t, s, f, control[0]) != "e1" {
		t.Fatalf("after one full step the measured arm must be on x1 and the control on e1")
	}
	// Mismatched reports (a control client claiming the measured arm)
	// with terrible startup must not count for the measured arm.
	for i := range 5 {
		qoeReport(t, s, control[i], ArmMeasured, "x1", 9000)
	}
	for i := range 5 {
		qoeReport(t, s, measured[i], ArmMeasured, "x1", 800)
		qoeReport(t, s, control[i], ArmBGP, "e1", 700)
	}
	s.measuredStep()
	st := s.MeasuredStatus()
	if st.Mismatches != 5 || st.Groups[0].Rollbacks != 0 || firstFor(t, s, f, measured[0]) != "x1" {
		t.Fatalf("status = %+v: want 5 mismatches, no rollback, the measured arm still moved", st)
	}
	if got := counterValue(s.msteer.mismatch); got != 5 {
		t.Errorf("mismatch counter = %v, want 5", got)
	}
	// Now the moved clients really start slower.
	for i := range 12 {
		qoeReport(t, s, measured[i], ArmMeasured, "x1", 3000)
	}
	s.measuredStep()
	st = s.MeasuredStatus()
	g := st.Groups[0]
	if g.Rollbacks != 1 || g.Share != 0 || g.HeldUntil.IsZero() || st.Arms[ArmMeasured].Rollbacks != 1 || st.Arms[ArmBGP].Steps != 0 {
		t.Fatalf("status = %+v, want one rollback in the measured arm and the group held", st)
	}
	if got := counterValue(s.msteer.rollbacks.WithLabelValues(ArmMeasured)); got != 1 {
		t.Errorf("rollback counter = %v, want 1", got)
	}
	if firstFor(t, s, f, measured[0]) != "e1" {
		t.Errorf("after the rollback the measured arm is still moved")
	}
	// The evidence is still clear, but the hold keeps the group on BGP.
	probeReports(t, s, 40, map[string]float64{"e1": 60, "x1": 15})
	s.measuredStep()
	if firstFor(t, s, f, measured[0]) != "e1" {
		t.Errorf("a held group moved again within its hold")
	}
}

// TestMeasuredEligibilityPolicy: with the IXP site reachable only
// without a route, local_pref never moves to it; embedded_ixp does for an
// ISP that allows it.
func TestMeasuredEligibilityPolicy(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ms    MeasuredSteering
		moved bool
	}{
		{"local_pref", MeasuredSteering{Enabled: true, MinSamples: 30, Refresh: time.Hour, MaxStep: 1}, false},
		{"embedded_ixp, ISP not listed", MeasuredSteering{Enabled: true, MinSamples: 30, Refresh: time.Hour, MaxStep: 1,
			Eligibility: steer.EligibleEmbeddedIXP, AllowIXP: []string{"other"}}, false},
		{"embedded_ixp", MeasuredSteering{Enabled: true, MinSamples: 30, Refresh: time.Hour, MaxStep: 1,
			Eligibility: steer.EligibleEmbeddedIXP, AllowIXP: []string{"isp"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, f := measuredWorld(t, tc.ms)
			// x1 withdraws its route: it is now only a global candidate.
			report(t, s.Handler(), api.RouteReport{Appliance: "x1", Epoch: "e-x1", Seq: 2, Withdraw: []netip.Prefix{netip.MustParsePrefix("10.64.0.0/16")}})
			probeReports(t, s, 40, map[string]float64{"e1": 60, "x1": 15})
			s.measuredStep()
			if got := firstFor(t, s, f, netip.MustParseAddr("10.64.1.9")) == "x1"; got != tc.moved {
				t.Errorf("moved to the IXP = %v, want %v", got, tc.moved)
			}
		})
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return math.NaN()
	}
	return m.GetCounter().GetValue()
}

// TestMeasuredShareHoldsWithoutEvidence: a moved group whose evidence
// has left the window keeps its clients where they are (neither growing
// nor dropping back silently).
func TestMeasuredShareHoldsWithoutEvidence(t *testing.T) {
	s, f := measuredWorld(t, MeasuredSteering{Enabled: true, MinSamples: 30, Refresh: time.Hour, MaxStep: 0.5})
	probeReports(t, s, 40, map[string]float64{"e1": 60, "x1": 15})
	s.measuredStep()
	before := movedShare(t, s, f, allClients())
	s.msteer.win = newWindow(time.Hour, time.Hour) // the evidence ages out
	s.measuredStep()
	if got := movedShare(t, s, f, allClients()); got != before || before == 0 {
		t.Errorf("moved share %.2f after the evidence left the window, want it to hold at %.2f", got, before)
	}
}
