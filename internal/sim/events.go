package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/health"
	"github.com/ocdn/ocdn/internal/rib"
)

type evKind uint8

const (
	evAppFail evKind = iota
	evAppRepair
	evSiteFail
	evSiteRepair
	evReplan
	evRoute // flag: withdrawn
)

// event is one change on the run's timeline; events apply at the start
// of the first step at or after their time, in time order.
type event struct {
	at   time.Time
	kind evKind
	idx  int32
	flag bool
	seq  int
}

// buildTimeline draws every failure and repair (per appliance and site,
// from hashes of the seed, so two scenarios with the same seed fail the
// same appliances at the same times), adds the scenario's events, the
// replanning schedule and the replayed route churn.
func (sm *Sim) buildTimeline() error {
	sc := sm.sc
	t0, end := sc.Start, sc.Start.Add(sc.Duration)
	var evs []event
	add := func(at time.Time, k evKind, idx int32, flag bool) {
		if at.Before(end) {
			evs = append(evs, event{at: at, kind: k, idx: idx, flag: flag, seq: len(evs)})
		}
	}
	draw := func(salt uint64, i, j int) float64 { return unit(mix(sc.Seed ^ mix(salt<<48^uint64(i)<<16^uint64(j)))) }
	f := sc.Failures
	for i := range sm.st.apps {
		t, j := t0, 0
		if draw(1, i, 0) < f.DownAtStart {
			add(t0, evAppFail, int32(i), false)
			t = t0.Add(expDraw(max(f.ApplianceMTTR, sc.Step), draw(2, i, 0)))
			add(t, evAppRepair, int32(i), false)
		}
		for f.ApplianceMTBF > 0 && t.Before(end) {
			j++
			t = t.Add(expDraw(f.ApplianceMTBF, draw(3, i, j)))
			add(t, evAppFail, int32(i), false)
			t = t.Add(expDraw(f.ApplianceMTTR, draw(4, i, j)))
			add(t, evAppRepair, int32(i), false)
		}
	}
	for i := range sm.st.sites {
		t, j := t0, 0
		for f.SiteMTBF > 0 && t.Before(end) {
			j++
			t = t.Add(expDraw(f.SiteMTBF, draw(5, i, j)))
			add(t, evSiteFail, int32(i), false)
			t = t.Add(expDraw(f.SiteMTTR, draw(6, i, j)))
			add(t, evSiteRepair, int32(i), false)
		}
	}
	for i, ev := range sc.Events {
		at := t0.Add(ev.At)
		both := func(fail, repair evKind, idx int) {
			add(at, fail, int32(idx), false)
			add(at.Add(ev.Duration), repair, int32(idx), false)
		}
		switch ev.Kind {
		case "fail_site":
			si, _ := sm.w.SiteIndex(ev.Target)
			both(evSiteFail, evSiteRepair, si)
		case "fail_appliance":
			both(evAppFail, evAppRepair, int(sm.st.appIdx[ev.Target]))
		case "fail_metro", "fail_ixp_metro":
			m, _ := sm.w.MetroIndex(ev.Target)
			for si, s := range sm.st.sites {
				if s.metro == m && (ev.Kind == "fail_metro" || s.kind == config.SiteIXP) {
					both(evSiteFail, evSiteRepair, si)
				}
			}
		case "fail_share":
			for ai := range sm.st.apps {
				if draw(7, ai, i) < ev.Share {
					both(evAppFail, evAppRepair, ai)
				}
			}
		case "withdraw_prefix", "announce_prefix":
			p, _ := netip.ParsePrefix(ev.Target)
			pi, ok := sm.rib.bt.Get(p.Masked())
			if !ok {
				return sm.scenarioErr(fmt.Sprintf("events[%d].target", i), "%s is not a prefix of the world", p)
			}
			w := ev.Kind == "withdraw_prefix"
			add(at, evRoute, pi, w)
			if ev.Duration > 0 {
				add(at.Add(ev.Duration), evRoute, pi, !w)
			}
		}
	}
	for t := t0.Add(sc.Placement.Every); t.Before(end); t = t.Add(sc.Placement.Every) {
		add(t, evReplan, 0, false)
	}
	if path := sc.churnPath(); path != "" {
		updates, span, err := sm.readChurn(path)
		if err != nil {
			return err
		}
		sm.churnUpdates = len(updates)
		for rep := time.Duration(0); t0.Add(rep).Before(end); rep += span {
			for _, u := range updates {
				add(t0.Add(rep+u.off), evRoute, u.pi, u.withdraw)
			}
			if !sc.Churn.Repeat {
				break
			}
		}
	}
	slices.SortFunc(evs, func(a, b event) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	sm.events = evs
	return nil
}

type churnUpdate struct {
	off      time.Duration
	pi       int32
	withdraw bool
}

// readChurn reads BGP updates from an MRT file (optionally gzipped) with
// the project's MRT decoder, keeping those about prefixes of the world.
// span is the time the file covers (its replay period).
func (sm *Sim) readChurn(path string) ([]churnUpdate, time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, sm.scenarioErr("route_churn.file", "%v", err)
	}
	defer f.Close()
	r, err := rib.OpenMaybeGzip(f)
	if err != nil {
		return nil, 0, sm.scenarioErr("route_churn.file", "%s: %v", path, err)
	}
	mr := rib.NewMRTReader(r)
	var out []churnUpdate
	var first, last time.Time
	for {
		rec, err := mr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, sm.scenarioErr("route_churn.file", "%s: %v", path, err)
		}
		if first.IsZero() {
			first = rec.Time
		}
		last = rec.Time
		for _, p := range rec.Withdrawn {
			if pi, ok := sm.rib.bt.Get(p); ok {
				out = append(out, churnUpdate{off: rec.Time.Sub(first), pi: pi, withdraw: true})
			}
		}
		for _, a := range rec.Announced {
			if pi, ok := sm.rib.bt.Get(a.Prefix); ok {
				out = append(out, churnUpdate{off: rec.Time.Sub(first), pi: pi})
			}
		}
	}
	return out, max(last.Sub(first)+time.Second, sm.sc.Step), nil
}

// applyEvents applies every event due by t.
func (sm *Sim) applyEvents(ctx context.Context, t time.Time) error {
	for sm.nextEv < len(sm.events) && !sm.events[sm.nextEv].at.After(t) {
		ev := sm.events[sm.nextEv]
		sm.nextEv++
		switch ev.kind {
		case evAppFail:
			sm.st.apps[ev.idx].down++
			sm.results.failures++
		case evAppRepair:
			sm.repair(sm.st.apps[ev.idx], t)
		case evSiteFail:
			s := sm.st.sites[ev.idx]
			s.down++
			sm.results.siteFailures++
			for _, ai := range s.apps {
				sm.st.apps[ai].down++
			}
		case evSiteRepair:
			s := sm.st.sites[ev.idx]
			s.down--
			for _, ai := range s.apps {
				sm.repair(sm.st.apps[ai], t)
			}
		case evReplan:
			if err := sm.replan(ctx, t); err != nil {
				return err
			}
		case evRoute:
			if sm.rib.setWithdrawn(ev.idx, ev.flag) {
				sm.results.routeChanges++
			}
		}
	}
	return nil
}

// repair brings an appliance back: it heartbeats again, and health puts
// it back in rotation.
func (sm *Sim) repair(a *app, t time.Time) {
	a.down--
	if a.down == 0 {
		sm.tracker.Report(a.id, t, health.Report{Utilization: float64(a.active) / a.bps})
	}
}
