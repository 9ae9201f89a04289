package lab

import (
	"time"
)

// HealthReport is what the run showed about health and coordination.
type HealthReport struct {
	// ExclusionSeconds is, per killed appliance, the time from the kill to
	// the control plane no longer steering new clients to it.
	ExclusionSeconds map[string]float64 `json:"exclusion_seconds"`
	// ControlPlaneOutageSeconds is how long the control plane was stopped.
	ControlPlaneOutageSeconds float64 `json:"control_plane_outage_seconds"`
	// ReportsQueued counts heartbeat records the appliances could not
	// deliver at once; ReportsDelivered those delivered later.
	ReportsQueued    int64 `json:"reports_queued"`
	ReportsDelivered int64 `json:"reports_delivered"`
}

// healthState is the lab's health bookkeeping.
type healthState struct {
	exclusion map[string]float64
	outage    time.Duration
}

// measureExclusion waits (in its own goroutine) until the control plane
// stops steering to id and records how long that took from killed.
func (l *Lab) measureExclusion(id string, killed time.Time) {
	go func() {
		deadline := killed.Add(time.Minute)
		for time.Now().Before(deadline) {
			for _, st := range l.control.Appliances() {
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
			time.Sleep(10 * time.Millisecond)
		}
	}()
}

// healthReport sums the appliances' report queues; l.mu is held.
func (l *Lab) healthReport() HealthReport {
	h := HealthReport{ExclusionSeconds: map[string]float64{}, ControlPlaneOutageSeconds: l.health.outage.Seconds()}
	for id, s := range l.health.exclusion {
		h.ExclusionSeconds[id] = s
	}
	for _, la := range l.appliances {
		r := la.a.Reports()
		h.ReportsQueued += r.Queued
		h.ReportsDelivered += r.Delivered
	}
	return h
}
