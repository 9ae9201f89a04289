package control

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/cpstore"
	"github.com/ocdn/ocdn/internal/health"
	"github.com/ocdn/ocdn/internal/rib"
)

// Persistence. With Config.Store set, every change of an appliance's state
// (heartbeat, content, drain, routes) is queued, coalesced per appliance,
// and written in one transaction every flushEvery, off the request path.
// Every SyncInterval the server reads back the rows changed since it last
// looked — its own and other replicas' — and applies what is newer than
// what it holds; that is how replicas on one PostgreSQL agree, and how a
// restarted control plane recovers. Because versions come from a sequence
// and transactions may commit out of order, each read starts from the top
// version of the read before the previous one, so a late commit is picked
// up on the next round (applying a row twice is harmless).

const flushEvery = 100 * time.Millisecond

type persister struct {
	mu      sync.Mutex
	pending map[string]*cpstore.Change
	order   []string
	synced  int64 // highest version applied (for tests)
	syncMu  sync.Mutex

	// failingSince is when the store last started failing (zero: it
	// answers), lastErr why; under healthMu.
	healthMu     sync.Mutex
	failingSince time.Time
	lastErr      string
}

// storeResult records whether the store answered a read or write. While
// it does not, the control plane keeps answering from memory (its last
// snapshot and whatever heartbeats it receives itself) and says so in
// /healthz and ocdn_control_store_up.
func (s *Server) storeResult(err error) {
	p := &s.persist
	p.healthMu.Lock()
	defer p.healthMu.Unlock()
	switch {
	case err == nil && !p.failingSince.IsZero():
		s.log.Info("state store reachable again", "after", s.cfg.Now().Sub(p.failingSince))
		p.failingSince, p.lastErr = time.Time{}, ""
	case err != nil && p.failingSince.IsZero():
		p.failingSince = s.cfg.Now()
		s.log.Error("state store unreachable; serving from memory", "err", err)
	}
	if err != nil {
		p.lastErr = err.Error()
		s.metrics.storeUp.Set(0)
	} else {
		s.metrics.storeUp.Set(1)
	}
}

// Health says how the control plane is: "ok", or degraded with the
// reason (it still answers steering). A degraded control plane is still
// healthy enough to keep in rotation, so ok stays true.
func (s *Server) Health() (msg string, ok bool) {
	p := &s.persist
	p.healthMu.Lock()
	defer p.healthMu.Unlock()
	if p.failingSince.IsZero() {
		return "ok", true
	}
	return fmt.Sprintf("degraded: state store unreachable since %s (%s); steering from the last snapshot",
		p.failingSince.UTC().Format(time.RFC3339), p.lastErr), true
}

func (s *Server) queueChange(id string, f func(c *cpstore.Change)) {
	if s.cfg.Store == nil {
		return
	}
	p := &s.persist
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending == nil {
		p.pending = map[string]*cpstore.Change{}
	}
	c, ok := p.pending[id]
	if !ok {
		c = &cpstore.Change{ID: id}
		p.pending[id] = c
		p.order = append(p.order, id)
	}
	f(c)
}

func (s *Server) persistBeat(hb api.Heartbeat, at time.Time) {
	if s.cfg.Store == nil {
		return
	}
	held := hb.Held
	hb.Held = nil
	raw, _ := json.Marshal(hb)
	s.queueChange(hb.Appliance, func(c *cpstore.Change) {
		keep := []string(nil)
		if c.Beat != nil {
			keep = c.Beat.Held
		}
		c.Beat = &cpstore.Beat{At: at, Heartbeat: raw, ContentGen: hb.ContentGen, Held: keep}
		if held != nil {
			c.Beat.Held = held
		}
	})
}

func (s *Server) persistDrain(id string, w *health.Window) {
	s.queueChange(id, func(c *cpstore.Change) {
		c.SetDrain = true
		c.Drain = nil
		if w != nil {
			c.Drain = &cpstore.Drain{At: w.At, Until: w.Until, Reason: w.Reason}
		}
	})
}

// persistTurnUp records that id passed turn-up at.
func (s *Server) persistTurnUp(id string, at time.Time) {
	s.queueChange(id, func(c *cpstore.Change) { c.TurnedUp = at })
}

// persistRoutes saves id's whole route set after a report.
func (s *Server) persistRoutes(id string) {
	if s.cfg.Store == nil {
		return
	}
	s.routeMu.Lock()
	st := s.routeSeq[id]
	routes := s.routes.Routes(id)
	s.routeMu.Unlock()
	raw, _ := json.Marshal(routes)
	s.queueChange(id, func(c *cpstore.Change) { c.Routes = &cpstore.Routes{Routes: raw, Epoch: st.epoch, Seq: st.seq} })
}

func (s *Server) logAdmin(actor, action string, detail any) {
	if s.cfg.Store == nil {
		return
	}
	if actor == "" {
		actor = "operator"
	}
	b, _ := json.Marshal(detail)
	if err := s.cfg.Store.LogAdmin(context.Background(), s.cfg.Now(), actor, action, string(b)); err != nil {
		s.log.Error("admin log", "err", err)
	}
}

// flush writes the queued changes.
func (s *Server) flush(ctx context.Context) error {
	p := &s.persist
	p.mu.Lock()
	var changes []cpstore.Change
	for _, id := range p.order {
		changes = append(changes, *p.pending[id])
	}
	p.pending, p.order = nil, nil
	p.mu.Unlock()
	if err := s.cfg.Store.Apply(ctx, changes); err != nil {
		// Put them back unless something newer arrived meanwhile.
		p.mu.Lock()
		for _, c := range changes {
			if _, ok := p.pending[c.ID]; !ok {
				if p.pending == nil {
					p.pending = map[string]*cpstore.Change{}
				}
				c := c
				p.pending[c.ID] = &c
				p.order = append(p.order, c.ID)
			}
		}
		p.mu.Unlock()
		return err
	}
	return nil
}

// persistLoop flushes queued changes until ctx ends, then once more.
func (s *Server) persistLoop(ctx context.Context) {
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s.flush(fctx)
			cancel()
			return
		case <-t.C:
			if err := s.flush(ctx); ctx.Err() == nil {
				if err != nil {
					s.log.Warn("persisting state failed; will retry", "err", err)
				}
				s.storeResult(err)
			}
		}
	}
}

// syncLoop reads shared state every SyncInterval until ctx ends.
func (s *Server) syncLoop(ctx context.Context) {
	every := s.cfg.SyncInterval
	if every <= 0 {
		every = s.cfg.HeartbeatInterval / 2
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var prev, cur int64
	for {
		top, err := s.Sync(ctx, prev)
		if ctx.Err() == nil {
			s.storeResult(err)
		}
		if err == nil {
			prev, cur = cur, top
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sync applies the shared rows changed after version since and returns the
// highest version seen.
func (s *Server) Sync(ctx context.Context, since int64) (int64, error) {
	rows, top, err := s.cfg.Store.Changes(ctx, since)
	if err != nil {
		return since, err
	}
	changed := false
	for _, row := range rows {
		if s.applyRow(row) {
			changed = true
		}
	}
	if changed {
		s.rebuild()
	}
	s.persist.syncMu.Lock()
	s.persist.synced = max(s.persist.synced, top)
	s.persist.syncMu.Unlock()
	return top, nil
}

// applyRow brings memory up to a stored row where the row is newer.
func (s *Server) applyRow(row cpstore.Appliance) (changed bool) {
	id := row.ID
	if _, ok := s.applianceSite[id]; !ok {
		return false
	}
	if last, ok := s.health.LastBeat(id); !row.LastBeat.IsZero() && (!ok || row.LastBeat.After(last)) && row.Heartbeat != nil {
		var hb api.Heartbeat
		if json.Unmarshal(row.Heartbeat, &hb) == nil {
			s.health.Report(id, row.LastBeat, healthReport(&hb))
			s.hs.setLatest(hb)
			changed = true
		}
	}
	s.mu.Lock()
	if row.Held != nil && (s.held[id] == nil || s.gen[id] != row.ContentGen) {
		set := make(map[string]bool, len(row.Held))
		for _, p := range row.Held {
			set[p] = true
		}
		s.held[id], s.gen[id] = set, row.ContentGen
		changed = true
	}
	s.mu.Unlock()
	var w *health.Window
	if row.Drain != nil {
		w = &health.Window{At: row.Drain.At, Until: row.Drain.Until, Reason: row.Drain.Reason}
	}
	if cur := s.health.Status(id, s.cfg.Now()).Drain; !sameWindow(cur, w) {
		s.health.SetDrain(id, w)
		changed = true
	}
	if row.Routes != nil {
		s.routeMu.Lock()
		st := s.routeSeq[id]
		if st.epoch != row.RouteEpoch || st.seq != row.RouteSeq {
			var routes []rib.Route
			if err := json.Unmarshal(row.Routes, &routes); err == nil {
				if err := s.routes.Replace(id, routes); err == nil {
					s.routeSeq[id] = routeState{epoch: row.RouteEpoch, seq: row.RouteSeq}
					changed = true
				}
			}
		}
		s.routeMu.Unlock()
	}
	if !row.TurnedUp.IsZero() && s.turnUp.pass(id) {
		changed = true
	}
	return changed
}

func sameWindow(a, b *health.Window) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.At.Equal(b.At) && a.Until.Equal(b.Until) && a.Reason == b.Reason
}

// startBackground starts the active prober and the store's loops as
// configured; the returned function waits for them after ctx ends.
func (s *Server) startBackground(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	start := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	if s.cfg.ActivePoll {
		start(s.pollLoop)
	}
	start(s.replanLoop)
	if s.cfg.Store != nil {
		start(s.persistLoop)
		start(s.syncLoop)
	}
	return wg.Wait
}
