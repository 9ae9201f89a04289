package health

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestHysteresisDoesNotFlap(t *testing.T) {
	tests := []struct {
		name  string
		loads []float64
		want  []State
	}{
		{"oscillating around the overload mark stays overloaded once in",
			[]float64{0.5, 0.96, 0.94, 0.96, 0.93, 0.96, 0.9},
			[]State{Up, Overloaded, Overloaded, Overloaded, Overloaded, Overloaded, Overloaded}},
		{"oscillating just below the overload mark stays degraded",
			[]float64{0.81, 0.94, 0.86, 0.94, 0.72, 0.79},
			[]State{Degraded, Degraded, Degraded, Degraded, Degraded, Degraded}},
		{"oscillating around the degraded mark enters once",
			[]float64{0.79, 0.81, 0.79, 0.81, 0.75},
			[]State{Up, Degraded, Degraded, Degraded, Degraded}},
		{"leaves only below the low marks",
			[]float64{0.97, 0.84, 0.69},
			[]State{Overloaded, Degraded, Up}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker(time.Second, 3)
			tr.Thresholds.OverloadExclude = time.Hour
			for i, u := range tc.loads {
				at := t0.Add(time.Duration(i) * time.Second)
				tr.Report("a", at, Report{Utilization: u})
				if got := tr.State("a", at); got != tc.want[i] {
					t.Errorf("after load %v (step %d): State = %s, want %s", u, i, got, tc.want[i])
				}
			}
		})
	}
}

func TestOverloadReducesShareThenExcludes(t *testing.T) {
	tr := NewTracker(time.Second, 3)
	tr.Report("a", t0, Report{Utilization: 0.96})
	st := tr.Status("a", t0)
	if st.State != Overloaded || st.Weight <= 0 || st.Weight >= 1 || !st.Serving() {
		t.Fatalf("Status = %+v, want overloaded with a weight in (0,1)", st)
	}
	tr.Report("a", t0.Add(time.Second), Report{Utilization: 0.96})
	st = tr.Status("a", t0.Add(time.Second))
	if st.Weight != 0 || st.Serving() {
		t.Fatalf("after one interval overloaded: Status = %+v, want excluded (weight 0)", st)
	}
	tr.Report("a", t0.Add(2*time.Second), Report{Utilization: 0.5})
	if st := tr.Status("a", t0.Add(2*time.Second)); st.State != Up || st.Weight != 1 {
		t.Fatalf("after load fell: Status = %+v, want up weight 1", st)
	}
}

func TestDownAfterMissedBeatsOrRefusedProbe(t *testing.T) {
	tr := NewTracker(time.Second, 3)
	if got := tr.State("a", t0); got != Unknown {
		t.Fatalf("State before any beat = %s, want unknown", got)
	}
	tr.Beat("a", t0, false)
	for _, tc := range []struct {
		after time.Duration
		want  State
	}{{0, Up}, {2900 * time.Millisecond, Up}, {3 * time.Second, Down}} {
		if got := tr.State("a", t0.Add(tc.after)); got != tc.want {
			t.Errorf("State %v after the beat = %s, want %s", tc.after, got, tc.want)
		}
	}
	tr.Beat("a", t0.Add(4*time.Second), false)
	tr.Probe("a", t0.Add(4500*time.Millisecond), false, true)
	if st := tr.Status("a", t0.Add(4500*time.Millisecond)); st.State != Up || !st.Unreachable {
		t.Errorf("after a probe timeout: %+v, want up and unreachable", st)
	}
	tr.Probe("a", t0.Add(5*time.Second), true, false)
	if got := tr.State("a", t0.Add(5*time.Second)); got != Down {
		t.Errorf("after a refused probe: State = %s, want down at once", got)
	}
	tr.Beat("a", t0.Add(6*time.Second), false)
	if got := tr.State("a", t0.Add(6*time.Second)); got != Up {
		t.Errorf("after a new heartbeat: State = %s, want up", got)
	}
}

func TestDrainWindowAndDrained(t *testing.T) {
	tr := NewTracker(time.Second, 3)
	tr.Report("a", t0, Report{Transfers: 3})
	tr.SetDrain("a", &Window{At: t0.Add(10 * time.Second), Until: t0.Add(20 * time.Second)})
	steps := []struct {
		at        time.Duration
		transfers int
		want      State
	}{{5 * time.Second, 3, Up}, {10 * time.Second, 3, Draining}, {12 * time.Second, 0, Drained}, {20 * time.Second, 0, Up}}
	for _, s := range steps {
		now := t0.Add(s.at)
		tr.Report("a", now, Report{Transfers: s.transfers})
		if got := tr.State("a", now); got != s.want {
			t.Errorf("at %v with %d transfers: State = %s, want %s", s.at, s.transfers, got, s.want)
		}
	}
	tr.SetDrain("a", nil)
	tr.Report("a", t0.Add(30*time.Second), Report{Transfers: 2, SelfDraining: true})
	if got := tr.State("a", t0.Add(30*time.Second)); got != Draining {
		t.Errorf("self-draining: State = %s, want draining", got)
	}
}

// A certificate fault keeps a heartbeating appliance down, with the fault
// as the reason, until a handshake verifies again.
func TestCertificateFault(t *testing.T) {
	tr := NewTracker(time.Second, 3)
	tr.Beat("a", t0, false)
	tr.Certificate("a", "certificate expired")
	st := tr.Status("a", t0)
	if st.State != Down || st.Serving() || st.Reason != "probe: certificate expired" || st.CertFault != "certificate expired" {
		t.Fatalf("after a certificate fault: Status = %+v, want down with the fault as reason", st)
	}
	tr.Beat("a", t0.Add(time.Second), false)
	if got := tr.State("a", t0.Add(time.Second)); got != Down {
		t.Errorf("a heartbeat does not clear a certificate fault: State = %s, want down", got)
	}
	tr.Certificate("a", "")
	if st := tr.Status("a", t0.Add(time.Second)); st.State != Up || st.CertFault != "" {
		t.Errorf("after a verified handshake: Status = %+v, want up", st)
	}
}
