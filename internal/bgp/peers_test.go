package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ocdn/ocdn/internal/bgp/bgptest"
	"github.com/ocdn/ocdn/internal/rib"
)

// Deadlines for conditions that depend on real BGP peers. They are upper
// bounds, never expectations: tests wait for conditions, not for time.
const (
	sessionTimeout = 30 * time.Second
	eventTimeout   = 30 * time.Second
)

// testNet hands each test its own loopback addresses so that tests of this
// package run in parallel with each other and with other packages' tests
// (which use 127.0.0.0/16 and 127.1.0.0/16 per TESTING-NOTES).
type testNet struct {
	Router  netip.Addr // the ISP router's first address
	Router2 netip.Addr // a second router address for a second session
	Speaker netip.Addr // the appliance
}

var netCounter atomic.Uint32

func newTestNet() testNet {
	k := byte(netCounter.Add(1))
	return testNet{
		Router:  netip.AddrFrom4([4]byte{127, 77, k, 10}),
		Router2: netip.AddrFrom4([4]byte{127, 77, k, 11}),
		Speaker: netip.AddrFrom4([4]byte{127, 78, k, 1}),
	}
}

// eventLog records a speaker's events and lets tests wait for conditions on
// them without sleeping.
type eventLog struct {
	mu      sync.Mutex
	events  []Event
	changed chan struct{} // closed and replaced on every append
}

func newEventLog() *eventLog { return &eventLog{changed: make(chan struct{})} }

func (l *eventLog) add(ev Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, ev)
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *eventLog) snapshot() ([]Event, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...), l.changed
}

// waitFor waits until cond holds on the events so far.
func (l *eventLog) waitFor(t *testing.T, what string, cond func([]Event) bool) []Event {
	t.Helper()
	deadline := time.NewTimer(eventTimeout)
	defer deadline.Stop()
	for {
		evs, changed := l.snapshot()
		if cond(evs) {
			return evs
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s; events so far:\n%s", eventTimeout, what, formatEvents(evs))
		}
	}
}

func formatEvents(evs []Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "  %s %s %s state=%q reason=%q", ev.Kind, ev.Neighbor, ev.Family, ev.State, ev.Reason)
		for _, r := range ev.Routes {
			fmt.Fprintf(&b, " +%s", r.Prefix)
		}
		for _, p := range ev.Withdrawn {
			fmt.Fprintf(&b, " -%s", p)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// routeView replays events the way a consumer (the appliance's route set)
// does and returns the routes held per neighbor.
func routeView(evs []Event) map[netip.Addr]map[netip.Prefix]rib.Route {
	view := map[netip.Addr]map[netip.Prefix]rib.Route{}
	for _, ev := range evs {
		switch ev.Kind {
		case SessionUp, SessionDown:
			delete(view, ev.Neighbor)
		case Announce:
			if view[ev.Neighbor] == nil {
				view[ev.Neighbor] = map[netip.Prefix]rib.Route{}
			}
			for _, r := range ev.Routes {
				view[ev.Neighbor][r.Prefix] = r
			}
		case Withdraw:
			for _, p := range ev.Withdrawn {
				delete(view[ev.Neighbor], p)
			}
		}
	}
	return view
}

func hasEvent(evs []Event, kind EventKind, nb netip.Addr) bool {
	for _, ev := range evs {
		if ev.Kind == kind && ev.Neighbor == nb {
			return true
		}
	}
	return false
}

func lastEvent(evs []Event, kind EventKind, nb netip.Addr) (Event, bool) {
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == kind && evs[i].Neighbor == nb {
			return evs[i], true
		}
	}
	return Event{}, false
}

// prefixesOf returns the prefixes held for nb, sorted.
func prefixesOf(view map[netip.Addr]map[netip.Prefix]rib.Route, nb netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for p := range view[nb] {
		out = append(out, p)
	}
	sortPrefixes(out)
	return out
}

func sortPrefixes(ps []netip.Prefix) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && comparePrefix(ps[j], ps[j-1]) < 0; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// cmpNetip lets go-cmp compare netip values, whose fields are unexported.
var cmpNetip = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

// runningSpeaker is a Speaker whose Run the test owns.
type runningSpeaker struct {
	*Speaker
	events *eventLog
	logs   *bgptest.LockedBuffer
	cancel context.CancelFunc
	done   chan error
}

// startSpeaker runs a speaker until the test ends (or stop is called) and
// fails the test if Run does not return after cancellation.
func startSpeaker(t *testing.T, cfg Config) *runningSpeaker {
	t.Helper()
	logs := &bgptest.LockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	events := newEventLog()
	sp, err := New(cfg, logger, events.add)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rs := &runningSpeaker{Speaker: sp, events: events, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { rs.done <- sp.Run(ctx) }()
	t.Cleanup(func() {
		rs.stop(t)
		if t.Failed() {
			t.Logf("speaker log:\n%s", logs.String())
		}
	})
	return rs
}

func (rs *runningSpeaker) stop(t *testing.T) {
	t.Helper()
	rs.cancel()
	select {
	case err, ok := <-rs.done:
		if ok && err != nil {
			t.Errorf("Run() = %v, want nil after cancel", err)
		}
		if ok {
			close(rs.done)
		}
	case <-time.After(eventTimeout):
		t.Fatalf("Run did not return within %v of cancel", eventTimeout)
	}
}

func (rs *runningSpeaker) status(addr netip.Addr) NeighborStatus {
	for _, st := range rs.Status() {
		if st.Address == addr {
			return st
		}
	}
	return NeighborStatus{}
}

// Tests that run a Speaker do not call t.Parallel: GoBGP v4.8.0 reads
// package-level route-selection options while processing updates and every
// StartBgp rewrites them, which the race detector reports when two GoBGP
// servers run in one test binary. Each test takes a few seconds at most.

var netListenConfig net.ListenConfig

// waitListening waits until something accepts TCP connections at ap.
func waitListening(t *testing.T, ap netip.AddrPort) {
	t.Helper()
	deadline := time.Now().Add(sessionTimeout)
	for {
		c, err := net.DialTimeout("tcp", ap.String(), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listening on %s after %v: %v", ap, sessionTimeout, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a port, not waiting for an event
	}
}
