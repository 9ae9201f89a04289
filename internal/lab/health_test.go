package lab

import (
	"context"
	"testing"
)

// TestLabHealthReport: the killed appliance leaves steering within two
// heartbeat intervals, and the report says how long it took.
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
	if rep.Health.ReportsDelivered != rep.Health.ReportsQueued {
		t.Errorf("health = %+v, want every queued report delivered", rep.Health)
	}
	t.Logf("health: %+v (interval %v)", rep.Health, sc.HeartbeatInterval)
}
