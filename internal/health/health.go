// Package health provides the control plane's view of appliance health:
// heartbeats, the state each appliance is in, and the rule that a missed
// run of heartbeats takes an appliance out of rotation.
package health

import (
	"sync"
	"time"
)

// State of an appliance as steering sees it.
type State string

// States.
const (
	Unknown  State = "unknown"
	Up       State = "up"
	Draining State = "draining"
	Down     State = "down"
)

// Serving reports whether steering may send new clients.
func (s State) Serving() bool { return s == Up }

// Tracker records heartbeats. An appliance is down once MissedBeats
// intervals pass without a heartbeat.
type Tracker struct {
	Interval    time.Duration
	MissedBeats int

	mu    sync.Mutex
	last  map[string]time.Time
	drain map[string]bool
}

// NewTracker returns a tracker; missed ≤ 0 means 3.
func NewTracker(interval time.Duration, missed int) *Tracker {
	if missed <= 0 {
		missed = 3
	}
	return &Tracker{Interval: interval, MissedBeats: missed, last: map[string]time.Time{}, drain: map[string]bool{}}
}

// Beat records a heartbeat; draining is the appliance's own report.
func (t *Tracker) Beat(id string, at time.Time, draining bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last[id] = at
	t.drain[id] = draining
}

// State returns id's state at now.
func (t *Tracker) State(id string, now time.Time) State {
	t.mu.Lock()
	defer t.mu.Unlock()
	last, ok := t.last[id]
	switch {
	case !ok:
		return Unknown
	case now.Sub(last) >= time.Duration(t.MissedBeats)*t.Interval:
		return Down
	case t.drain[id]:
		return Draining
	}
	return Up
}

// LastBeat is when id last reported.
func (t *Tracker) LastBeat(id string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.last[id]
	return l, ok
}
