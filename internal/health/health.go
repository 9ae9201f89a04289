// Package health provides the control plane's view of appliance health:
// heartbeats and what they report (load, disks, transfers), the state each
// appliance is in, thresholds with hysteresis so that states do not flap,
// the rule that a missed run of heartbeats takes an appliance out of
// rotation, an active prober's verdicts, and operator drains (now or in a
// scheduled window).
//
// The states and what steering does with them:
//
//	unknown     never heard from (or turn-up checks not passed): no clients
//	up          serving, weight 1
//	degraded    serving (a disk failed, or load above the degraded mark), weight 1
//	overloaded  load above the overload mark: its share of new clients
//	            shrinks with load (Weight < 1), and after OverloadExclude it
//	            gets none until load falls below the low mark
//	draining    an operator drain (or the appliance's own SIGTERM): no new
//	            clients, transfers in progress finish
//	drained     draining and active transfers ≤ DrainedTransfers
//	down        MissedBeats intervals without a heartbeat, or the prober's
//	            connection was refused (the host answers but nothing
//	            listens: the daemon is gone), or the prober found the
//	            appliance's TLS certificate wrong for clients (not its
//	            name, expired, unreadable, not from the CA); no clients
//
// A prober timeout alone does not make an appliance down: the control plane
// may merely be cut off from it while clients still reach it. It is marked
// Unreachable (reported, not acted on) and heartbeats decide.
package health

import (
	"sync"
	"time"
)

// State of an appliance as steering sees it.
type State string

// States.
const (
	Unknown    State = "unknown"
	Up         State = "up"
	Degraded   State = "degraded"
	Overloaded State = "overloaded"
	Draining   State = "draining"
	Drained    State = "drained"
	Down       State = "down"
)

// Serving reports whether steering may send new clients at all; an
// overloaded appliance may still get a share (see Status.Weight).
func (s State) Serving() bool { return s == Up || s == Degraded || s == Overloaded }

// Thresholds decide load states. Utilization is the larger of bits/s over
// capacity and CPU. A state is entered at its high mark and left only below
// its low mark (hysteresis), so load oscillating around one mark does not
// flap the state.
type Thresholds struct {
	DegradedHigh, DegradedLow float64
	OverloadHigh, OverloadLow float64
	// OverloadExclude is how long an appliance may stay overloaded with a
	// reduced share before it is excluded (default one interval, so it is
	// out of steering within two).
	OverloadExclude time.Duration
	// DrainedTransfers: a draining appliance is drained when its active
	// transfers are at most this.
	DrainedTransfers int
}

// DefaultThresholds are sensible marks for a storage appliance.
var DefaultThresholds = Thresholds{DegradedHigh: 0.8, DegradedLow: 0.7, OverloadHigh: 0.95, OverloadLow: 0.85, DrainedTransfers: 0}

// Report is what one heartbeat says about health.
type Report struct {
	// Utilization is 0..1+ (bits/s over capacity, or CPU, the larger).
	Utilization float64
	FailedDisks int
	// Transfers is how many content transfers are in progress.
	Transfers int
	// SelfDraining is the appliance's own drain (SIGTERM).
	SelfDraining bool
	// StaleControlPlane is set when the appliance had lost the control
	// plane for a while (informational).
	StaleSince time.Time
}

// Window is an operator drain: from At (zero: now) until Until (zero:
// until re-enabled).
type Window struct {
	At, Until time.Time
	Reason    string
}

// Active reports whether the window covers now.
func (w Window) Active(now time.Time) bool {
	return !now.Before(w.At) && (w.Until.IsZero() || now.Before(w.Until))
}

// Status is the full picture of one appliance.
type Status struct {
	State State
	// Weight is the share 0..1 of new clients steering may send.
	Weight      float64
	LastBeat    time.Time
	Report      Report
	Unreachable bool // the prober timed out; see the package doc
	Drain       *Window
	// CertFault is what the prober last found wrong with the
	// appliance's certificate ("" when nothing).
	CertFault string
	// Reason explains a state other than up.
	Reason string
}

type entry struct {
	last       time.Time
	rep        Report
	loadState  State // Up, Degraded or Overloaded, with hysteresis
	overSince  time.Time
	refusedAt  time.Time // the prober's connection was refused
	unreach    bool
	drain      *Window
	everBeaten bool
	certFault  string
}

// Tracker records heartbeats. It is safe for concurrent use.
type Tracker struct {
	Interval    time.Duration
	MissedBeats int
	Thresholds  Thresholds

	mu sync.Mutex
	m  map[string]*entry
}

// NewTracker returns a tracker with DefaultThresholds; missed ≤ 0 means 3.
func NewTracker(interval time.Duration, missed int) *Tracker {
	if missed <= 0 {
		missed = 3
	}
	th := DefaultThresholds
	th.OverloadExclude = interval
	return &Tracker{Interval: interval, MissedBeats: missed, Thresholds: th, m: map[string]*entry{}}
}

func (t *Tracker) get(id string) *entry {
	e := t.m[id]
	if e == nil {
		e = &entry{loadState: Up}
		t.m[id] = e
	}
	return e
}

// Beat records a heartbeat; draining is the appliance's own report.
func (t *Tracker) Beat(id string, at time.Time, draining bool) {
	t.Report(id, at, Report{SelfDraining: draining})
}

// Report records a heartbeat with its health report.
func (t *Tracker) Report(id string, at time.Time, r Report) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.get(id)
	e.last, e.rep, e.everBeaten = at, r, true
	if at.After(e.refusedAt) {
		e.refusedAt = time.Time{}
	}
	e.unreach = false
	th := t.Thresholds
	u := r.Utilization
	next := e.loadState
	switch e.loadState {
	case Overloaded:
		switch {
		case u < th.DegradedLow:
			next = Up
		case u < th.OverloadLow:
			next = Degraded
		}
	case Degraded:
		switch {
		case u >= th.OverloadHigh:
			next = Overloaded
		case u < th.DegradedLow:
			next = Up
		}
	default:
		switch {
		case u >= th.OverloadHigh:
			next = Overloaded
		case u >= th.DegradedHigh:
			next = Degraded
		}
	}
	if next == Overloaded && e.loadState != Overloaded {
		e.overSince = at
	}
	e.loadState = next
}

// Probe records an active probe's outcome: refused means the connection
// was refused (down at once); timeout means no answer in time (marked
// unreachable only). A successful probe clears the unreachable mark.
func (t *Tracker) Probe(id string, at time.Time, refused, timeout bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.get(id)
	switch {
	case refused:
		if e.refusedAt.IsZero() {
			e.refusedAt = at
		}
	case timeout:
		e.unreach = true
	default:
		e.unreach = false
	}
}

// Certificate records what the prober found wrong with id's TLS
// certificate, or "" when a handshake verified. A fault keeps the
// appliance down until a handshake verifies again: clients would refuse
// it.
func (t *Tracker) Certificate(id, fault string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.get(id).certFault = fault
}

// SetDrain sets (w non-nil) or clears an operator drain.
func (t *Tracker) SetDrain(id string, w *Window) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.get(id).drain = w
}

// State returns id's state at now.
func (t *Tracker) State(id string, now time.Time) State {
	return t.Status(id, now).State
}

// Status returns id's full status at now.
func (t *Tracker) Status(id string, now time.Time) Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[id]
	if !ok {
		return Status{State: Unknown, Reason: "no heartbeat yet"}
	}
	st := Status{LastBeat: e.last, Report: e.rep, Unreachable: e.unreach, Drain: e.drain, Weight: 0, CertFault: e.certFault}
	draining := e.rep.SelfDraining
	if e.drain != nil && e.drain.Active(now) {
		draining = true
		st.Reason = "operator drain"
		if e.drain.Reason != "" {
			st.Reason += ": " + e.drain.Reason
		}
	} else if draining {
		st.Reason = "appliance is shutting down"
	}
	switch {
	case !e.everBeaten:
		st.State, st.Reason = Unknown, "no heartbeat yet"
	case !e.refusedAt.IsZero():
		st.State, st.Reason = Down, "probe: connection refused"
	case now.Sub(e.last) >= time.Duration(t.MissedBeats)*t.Interval:
		st.State, st.Reason = Down, "missed heartbeats"
	case e.certFault != "":
		st.State, st.Reason = Down, "probe: "+e.certFault
	case draining && e.rep.Transfers <= t.Thresholds.DrainedTransfers:
		st.State = Drained
	case draining:
		st.State = Draining
	case e.loadState == Overloaded:
		st.State, st.Reason = Overloaded, "load above the overload mark"
		th := t.Thresholds
		if now.Sub(e.overSince) < th.OverloadExclude {
			// Share shrinks from 1/2 at the high mark towards 0 at 100%.
			span := 1 - th.OverloadHigh
			w := 0.5
			if span > 0 {
				w = 0.5 * max(0, (1-e.rep.Utilization)/span)
			}
			st.Weight = min(0.5, w)
		}
	case e.loadState == Degraded || e.rep.FailedDisks > 0:
		st.State, st.Weight = Degraded, 1
		if e.rep.FailedDisks > 0 {
			st.Reason = "failed disks"
		} else {
			st.Reason = "load above the degraded mark"
		}
	default:
		st.State, st.Weight = Up, 1
	}
	return st
}

// Serving reports whether steering may send any new client.
func (s Status) Serving() bool { return s.State.Serving() && s.Weight > 0 }

// LastBeat is when id last reported.
func (t *Tracker) LastBeat(id string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[id]
	if !ok || !e.everBeaten {
		return time.Time{}, false
	}
	return e.last, true
}
