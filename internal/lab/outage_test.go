package lab

import (
	"context"
	"math"
	"testing"
	"time"
)

// TestControlPlaneOutage60s is the acceptance test: the control
// plane is stopped for 60 s mid-run. Appliances keep serving, players
// keep the URLs they hold and wait for steering instead of failing, and
// every heartbeat queued while the control plane was away is delivered
// after it returns.
func TestControlPlaneOutage60s(t *testing.T) {
	sc := testScenario(t)
	sc.Duration = 85 * time.Second
	sc.Events = []Event{{At: "5s", Kind: "stop_control_plane", Duration: 60 * time.Second}}
	rep, err := New(sc, Options{}).Run(context.Background())
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	t.Logf("sessions %+v, health %+v", rep.Sessions, rep.Health)
	if s := rep.Sessions; s.Failed != 0 || s.Completed < 10 {
		t.Errorf("sessions = %+v, want none failed and at least 10 completed across a 60 s control-plane outage", s)
	}
	h := rep.Health
	if math.Abs(h.ControlPlaneOutageSeconds-60) > 1 {
		t.Errorf("outage = %.1f s, want 60", h.ControlPlaneOutageSeconds)
	}
	checkReportsDelivered(t, h)
}
