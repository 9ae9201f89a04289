package appliance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"sync"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/bgp"
	"github.com/ocdn/ocdn/internal/clock"
	"github.com/ocdn/ocdn/internal/rib"
)

// routeBook keeps the routes the appliance's BGP sessions accepted and the
// changes the control plane has not yet been told about. Per prefix the
// control plane gets the best route over all sessions.
type routeBook struct {
	hold time.Duration

	mu         sync.Mutex
	byNeighbor map[netip.Addr]map[netip.Prefix]heldRoute
	gen        map[netip.Addr]uint64 // bumped when a session comes up
	best       map[netip.Prefix]rib.Route
	announce   map[netip.Prefix]rib.Route
	withdraw   map[netip.Prefix]bool
	snapshot   bool // the next report must be a full snapshot
	changed    chan struct{}
}

type heldRoute struct {
	route rib.Route
	gen   uint64
}

func newRouteBook(hold time.Duration) *routeBook {
	return &routeBook{
		hold:       hold,
		byNeighbor: map[netip.Addr]map[netip.Prefix]heldRoute{},
		gen:        map[netip.Addr]uint64{},
		best:       map[netip.Prefix]rib.Route{},
		announce:   map[netip.Prefix]rib.Route{},
		withdraw:   map[netip.Prefix]bool{},
		snapshot:   true,
		changed:    make(chan struct{}, 1),
	}
}

// onEvent applies a speaker event. When a session goes down its routes are
// kept for the hold time: if the session comes back and announces them
// again within it (a flap), steering never notices.
func (b *routeBook) onEvent(ev bgp.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := ev.Neighbor
	switch ev.Kind {
	case bgp.SessionUp:
		b.gen[n]++
	case bgp.SessionDown:
		gen := b.gen[n]
		time.AfterFunc(b.hold, func() { b.expire(n, gen) })
	case bgp.Announce:
		m := b.byNeighbor[n]
		if m == nil {
			m = map[netip.Prefix]heldRoute{}
			b.byNeighbor[n] = m
		}
		for _, r := range ev.Routes {
			m[r.Prefix] = heldRoute{route: r, gen: b.gen[n]}
			b.recompute(r.Prefix)
		}
	case bgp.Withdraw:
		for _, p := range ev.Withdrawn {
			delete(b.byNeighbor[n], p)
			b.recompute(p)
		}
	}
}

// expire drops the routes of neighbor n not announced again since the
// session that went down at generation gen.
func (b *routeBook) expire(n netip.Addr, gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for p, h := range b.byNeighbor[n] {
		if h.gen <= gen {
			delete(b.byNeighbor[n], p)
			b.recompute(p)
		}
	}
}

// recompute updates the best route for p and queues the change.
func (b *routeBook) recompute(p netip.Prefix) {
	var best rib.Route
	found := false
	for _, m := range b.byNeighbor {
		if h, ok := m[p]; ok && (!found || rib.Compare(h.route, best) < 0) {
			best, found = h.route, true
		}
	}
	old, had := b.best[p]
	switch {
	case found && (!had || !old.Equal(best)):
		b.best[p] = best
		b.announce[p] = best
		delete(b.withdraw, p)
	case !found && had:
		delete(b.best, p)
		delete(b.announce, p)
		b.withdraw[p] = true
	default:
		return
	}
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

// take returns the next report's content and clears the queue. A snapshot
// carries every best route.
func (b *routeBook) take() (snapshot bool, announce []rib.Route, withdraw []netip.Prefix) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.snapshot {
		b.snapshot = false
		clear(b.announce)
		clear(b.withdraw)
		announce = make([]rib.Route, 0, len(b.best))
		for _, r := range b.best {
			announce = append(announce, r)
		}
		return true, announce, nil
	}
	for _, r := range b.announce {
		announce = append(announce, r)
	}
	for p := range b.withdraw {
		withdraw = append(withdraw, p)
	}
	clear(b.announce)
	clear(b.withdraw)
	return false, announce, withdraw
}

// resync makes the next report a snapshot: after a failed delivery or a
// gap the control plane's view is unknown, and the full set repairs it.
func (b *routeBook) resync() {
	b.mu.Lock()
	b.snapshot = true
	b.mu.Unlock()
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

// Prefixes is how many prefixes the appliance holds a route for.
func (b *routeBook) prefixes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.best)
}

// reportRoutes sends route changes to the control plane as they happen,
// batching bursts for batchDelay, and retries until ctx ends. Nothing is
// lost while the control plane is unreachable: the failed report is
// replaced by a snapshot of the current routes.
func (a *Appliance) reportRoutes(ctx context.Context, b *routeBook) {
	const batchDelay = 50 * time.Millisecond
	epoch := newEpoch()
	var seq uint64
	retry := time.NewTicker(a.cfg.HeartbeatInterval)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.changed:
		case <-retry.C:
			// Periodic wake-up: resend a snapshot that failed.
		}
		if clock.Sleep(ctx, batchDelay) != nil {
			return
		}
		snapshot, ann, wd := b.take()
		if !snapshot && len(ann) == 0 && len(wd) == 0 {
			continue
		}
		seq++
		rep := api.RouteReport{Appliance: a.cfg.ID, Epoch: epoch, Seq: seq, Snapshot: snapshot, Announce: ann, Withdraw: wd}
		var reply api.RouteReportReply
		if err := a.cfg.Control.PostJSON(ctx, "/v1/routes", rep, &reply); err != nil {
			if ctx.Err() == nil {
				a.log.Warn("route report failed; will resend a snapshot", "err", err)
			}
			b.resync()
			continue
		}
		if reply.Resync {
			b.resync()
		}
	}
}

func newEpoch() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
