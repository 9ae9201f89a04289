package lab

import (
	"context"
	"testing"
)

// TestLabHealthReport: the killed appliance leaves steering within two
// heartbeat intervals, and the report says how long it took; across the
// scenario's control-plane outage no session fails and every heartbeat
// queued during it is delivered after the restart.
func TestLabHealthReport(t *testing.T) {
	sc := testScenario(t)
	rep, err := New(sc, Options{}).Run(context.Background())
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	ex, ok := rep.Health.ExclusionSeconds["ams-a-1"]
	if !ok || ex <= 0 || ex > 2*sc.HeartbeatInterval.Seconds() {
		t.Errorf("health = %+v, want ams-a-1 excluded within 2 intervals (%v)", rep.Health, 2*sc.HeartbeatInterval)
	}
	checkReportsDelivered(t, rep.Health)
	if rep.Health.ControlPlaneOutageSeconds != 2 {
		t.Errorf("control_plane_outage_seconds = %v, want the scenario's 2", rep.Health.ControlPlaneOutageSeconds)
	}
	if rep.Sessions.Failed != 0 {
		t.Errorf("sessions = %+v, want none failed across the outage", rep.Sessions)
	}
	t.Logf("health: %+v (interval %v)", rep.Health, sc.HeartbeatInterval)
}

// checkReportsDelivered checks that heartbeats were queued during the
// control-plane outage and none was lost: every record is delivered or,
// if its heartbeat failed after the outage (a timeout on a busy machine)
// with no later heartbeat yet when the run ended, still queued.
func checkReportsDelivered(t *testing.T, h HealthReport) {
	t.Helper()
	if h.ReportsQueued == 0 || h.ReportsDelivered == 0 || h.ReportsDropped != 0 ||
		h.ReportsDelivered+h.ReportsPending != h.ReportsQueued {
		t.Errorf("reports queued %d, delivered %d, pending %d, dropped %d: want some queued during the outage, every one delivered or still queued, none dropped",
			h.ReportsQueued, h.ReportsDelivered, h.ReportsPending, h.ReportsDropped)
	}
}
