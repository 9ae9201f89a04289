package lab

import (
	"context"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/clock"
)

// HealthReport is what the run showed about health and coordination.
type HealthReport struct {
	// ExclusionSeconds is, per killed appliance, the time from the kill to
	// the control plane no longer steering new clients to it.
	ExclusionSeconds map[string]float64 `json:"exclusion_seconds"`
	// ControlPlaneOutageSeconds is how long the control plane was stopped.
	ControlPlaneOutageSeconds float64 `json:"control_plane_outage_seconds"`
	// ReportsQueued counts heartbeat records the appliances could not
	// deliver at once; ReportsDelivered those delivered later,
	// ReportsPending those still queued when the run ended (a heartbeat
	// that failed after the outage, with no later one yet), and
	// ReportsDropped those the bounded queue gave up.
	ReportsQueued    int64 `json:"reports_queued"`
	ReportsDelivered int64 `json:"reports_delivered"`
	ReportsPending   int64 `json:"reports_pending"`
	ReportsDropped   int64 `json:"reports_dropped"`
}

// healthState is the lab's health bookkeeping.
type healthState struct {
	exclusion map[string]float64
	outage    time.Duration
}

// measureExclusion waits (in its own goroutine) until the control plane
// stops steering to id and records how long that took from killed.
func (l *Lab) measureExclusion(ctx context.Context, id string, killed time.Time) {
	go func() {
		deadline := killed.Add(time.Minute)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			sts, _ := l.view.appliances(ctx)
			for _, st := range sts {
				if st.ID == id && !st.Serving {
					l.mu.Lock()
					if l.health.exclusion == nil {
						l.health.exclusion = map[string]float64{}
					}
					l.health.exclusion[id] = time.Since(killed).Seconds()
					l.mu.Unlock()
					return
				}
			}
			clock.Sleep(ctx, 10*time.Millisecond)
		}
	}()
}

// healthReport sums the appliances' report queues; l.mu is held.
func (l *Lab) healthReport(statuses map[string]api.ApplianceRuntime) HealthReport {
	h := HealthReport{ExclusionSeconds: map[string]float64{}, ControlPlaneOutageSeconds: l.health.outage.Seconds()}
	for id, s := range l.health.exclusion {
		h.ExclusionSeconds[id] = s
	}
	for _, st := range statuses {
		r := st.Reports
		h.ReportsQueued += r.Queued
		h.ReportsDelivered += r.Delivered
		h.ReportsPending += int64(r.Pending)
		h.ReportsDropped += r.Dropped
	}
	return h
}

// stopControlPlane takes the control plane down for d and records the
// outage.
func (l *Lab) stopControlPlane(ctx context.Context, d time.Duration) {
	l.controlPlane().Outage(ctx, d)
	l.mu.Lock()
	l.health.outage += d
	l.mu.Unlock()
}
