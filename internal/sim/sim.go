// Package sim provides the internet-scale simulator: a world's client
// population streams a catalog over simulated days while the project's own
// decision code runs the CDN: internal/steer steers every session over a
// RIB built from the world, internal/placement plans manifests from
// internal/content's popularity on the control plane's schedule,
// internal/health turns heartbeats (load, failures) into steering states,
// and internal/fill's windows gate fill, which escalates peer → tier →
// origin as the control plane tells appliances to. docs/sim.md describes
// the model, its outputs and how to run sweeps.
package sim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/fill"
	"github.com/ocdn/ocdn/internal/health"
	"github.com/ocdn/ocdn/internal/sim/world"
	"github.com/ocdn/ocdn/internal/steer"
)

// Options are how a run is carried out, not what it simulates: none of
// them changes the results.
type Options struct {
	// Workers serve sessions in parallel (default GOMAXPROCS).
	Workers int
	// Out is the directory for Parquet tables, summary.json and
	// report.html ("" writes nothing).
	Out string
	// Progress gets a progress line with the simulated clock (nil: quiet).
	Progress io.Writer
	Logger   *slog.Logger
}

// Sim is one run of a scenario over a world.
type Sim struct {
	w   *world.World
	sc  *Scenario
	opt Options
	log *slog.Logger

	cat        *catalog
	st         *state
	rib        *worldRIB
	engine     *steer.Engine
	snap       steer.Snapshot
	globalSite int32
	tracker    *health.Tracker
	pop        *content.Popularity
	windows    []fill.Window // per site

	// Demand.
	popRegions   []string // popularity region names
	titleAlias   []alias  // per country
	regionSubs   []float64
	metroPrefix  []alias
	metroSubs    []float64
	metroCountry []int
	metroLoc     []config.Location
	metroRate    []float64
	ases         []world.AS
	repAddr      []netip.Addr // per prefix with a more specific inside: an address it is the longest match of
	rungAlias    alias
	diurnal      diurnal
	fetchAudio   bool
	obs          []uint64 // popularity region × file: bytes served since the last replan

	// Steering's view of the appliances.
	globalApps  []int32 // snap.Global as appliance indexes
	fileHolders bitset  // per file, holderWords words: the appliances holding it
	holderWords int
	holdsOne    []map[string]bool // per file: a set of just its path
	views       []*applianceViews // per worker
	serve       []appServe        // per appliance (refreshServe)

	// Fill and placement.
	holders      []int32 // per file: appliances holding it
	fetcher      []int32 // per file: the CDN's designated origin fetcher
	forceOpen    bool    // prefill: every window open
	churnUpdates int
	shards       []*shard
	newTime      time.Duration // spent in New
	listedEver   bitset
	prevCopies   [][]uint8 // per site, per file: copies in the last plan
	urgent       map[int32]bool
	planSeq      int

	// Time.
	events  []event
	nextEv  int
	steps   int
	ring    [][]int64
	results *results
}

// New prepares a run: the RIB, appliances, catalog, demand tables,
// initial placement and the event timeline.
func New(w *world.World, sc *Scenario, opt Options) (*Sim, error) {
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	began := time.Now()
	sm := &Sim{w: w, sc: sc, opt: opt, log: opt.Logger.With("component", "sim"), globalSite: -1}
	defer func() { sm.newTime = time.Since(began) }()
	if sc.labCatalog != nil {
		sm.cat = fromContent(sc.labCatalog, sc.Catalog.MinDuration)
	} else {
		sm.cat = buildCatalog(sc)
	}
	sm.fetchAudio = sc.Catalog.AudioKbps > 0
	// Popularity regions.
	regionIdx := map[string]int{}
	regionOf := func(si int) int {
		ws := w.Sites[si]
		name := ws.ID
		if sc.Placement.Region == "country" {
			m, _ := w.MetroIndex(ws.Metro)
			name = w.Metros[m].Country
		}
		r, ok := regionIdx[name]
		if !ok {
			r = len(sm.popRegions)
			regionIdx[name] = r
			sm.popRegions = append(sm.popRegions, name)
		}
		return r
	}
	sm.st = newState(w, sc, regionOf)
	if err := sm.checkEvents(); err != nil {
		return nil, err
	}
	sm.rib = buildRIB(w, sm.st)
	sm.engine = &steer.Engine{}
	sm.snap = steer.Snapshot{Routes: sm.rib, Appliances: make(map[string]*steer.Appliance, len(sm.st.apps))}
	for _, a := range sm.st.apps {
		sm.snap.Appliances[a.id] = a.st
		k := sm.st.sites[a.site].kind
		if k == config.SiteFallback || (k == config.SiteIXP && w.Routing.IXPGlobal) {
			sm.snap.Global = append(sm.snap.Global, a.id)
			sm.globalApps = append(sm.globalApps, a.idx)
			if sm.globalSite < 0 {
				sm.globalSite = int32(a.site)
			}
		}
	}
	sm.tracker = health.NewTracker(sc.Health.HeartbeatInterval, sc.Health.MissedBeats)
	sm.pop = content.NewPopularity(sc.Placement.HalfLife, 24*time.Hour)
	sm.windows = make([]fill.Window, len(sm.st.sites))
	for i, s := range sm.st.sites {
		sm.windows[i] = fill.Window{Loc: s.loc, Start: sc.Fill.StartHour, End: sc.Fill.EndHour}
	}
	sm.setupDemand()
	nf := len(sm.cat.files)
	sm.obs = make([]uint64, len(sm.popRegions)*nf)
	sm.holders = make([]int32, nf)
	sm.holderWords = (len(sm.st.apps) + 63) / 64
	sm.fileHolders = newBitset(nf * sm.holderWords * 64)
	sm.holdsOne = make([]map[string]bool, nf)
	for fi, f := range sm.cat.files {
		sm.holdsOne[fi] = map[string]bool{f.Path: true}
	}
	sm.listedEver = newBitset(nf)
	sm.prevCopies = make([][]uint8, len(sm.st.sites))
	sm.urgent = map[int32]bool{}
	for _, a := range sm.st.apps {
		a.holds = newBitset(nf)
		a.listed = newBitset(nf)
	}
	if err := sm.buildTimeline(); err != nil {
		return nil, err
	}
	sm.steps = int((sc.Duration + sc.Step - 1) / sc.Step)
	maxWatch := sc.Catalog.MaxDuration
	for _, t := range sm.cat.titles {
		maxWatch = max(maxWatch, t.duration)
	}
	sm.ring = make([][]int64, int(maxWatch/sc.Step)+3)
	for i := range sm.ring {
		sm.ring[i] = make([]int64, len(sm.st.apps))
	}
	sm.results = newResults(sm)
	return sm, nil
}

// setupDemand builds the per-metro prefix tables, per-country subscriber
// totals and the client addresses of prefixes shadowed by more specific
// ones.
func (sm *Sim) setupDemand() {
	w := sm.w
	sm.diurnal = newDiurnal(sm.sc.Demand.Diurnal)
	sm.titleAlias = make([]alias, len(w.Countries))
	sm.regionSubs = make([]float64, len(w.Countries))
	sm.metroSubs = make([]float64, len(w.Metros))
	sm.metroCountry = make([]int, len(w.Metros))
	sm.metroLoc = make([]config.Location, len(w.Metros))
	sm.metroRate = make([]float64, len(w.Metros))
	for i, m := range w.Metros {
		sm.metroCountry[i], _ = w.CountryIndex(m.Country)
		sm.metroLoc[i] = m.Location()
	}
	asIdx := map[uint32]int32{}
	for _, a := range w.ASes {
		asIdx[a.ASN] = int32(len(sm.ases))
		sm.ases = append(sm.ases, a)
	}
	byMetro := make([][]int32, len(w.Metros))
	for pi, p := range w.Prefixes {
		if i, ok := asIdx[p.ASN]; ok {
			sm.rib.pfx[pi].as = i
		}
		if p.Subscribers > 0 {
			byMetro[p.Metro] = append(byMetro[p.Metro], int32(pi))
			sm.metroSubs[p.Metro] += float64(p.Subscribers)
			sm.regionSubs[sm.metroCountry[p.Metro]] += float64(p.Subscribers)
		}
	}
	sm.metroPrefix = make([]alias, len(w.Metros))
	for m, ps := range byMetro {
		sm.metroPrefix[m] = newAlias(ps, func(i int) float64 { return float64(w.Prefixes[ps[i]].Subscribers) })
	}
	// Prefixes with a more specific prefix inside: remember an address
	// whose longest match is the prefix itself.
	sm.repAddr = make([]netip.Addr, len(w.Prefixes))
	order := make([]int32, len(w.Prefixes))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		pa, pb := w.Prefixes[a].Prefix, w.Prefixes[b].Prefix
		if c := pa.Addr().Compare(pb.Addr()); c != 0 {
			return c
		}
		return pa.Bits() - pb.Bits()
	})
	var stack []int32
	for _, i := range order {
		p := w.Prefixes[i].Prefix
		for len(stack) > 0 && !w.Prefixes[stack[len(stack)-1]].Prefix.Contains(p.Addr()) {
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 {
			sm.rib.pfx[stack[len(stack)-1]].set(pfxMoreSpecific, true)
		}
		stack = append(stack, i)
	}
	for pi := range w.Prefixes {
		p := w.Prefixes[pi].Prefix
		sm.repAddr[pi] = p.Addr()
		if !sm.rib.pfx[pi].has(pfxMoreSpecific) {
			continue
		}
		// Deterministic probes for an address only pi covers.
		for j := uint64(0); j < 64; j++ {
			a := addrAt(p, mix(uint64(pi)<<8|j))
			if got, ok := sm.rib.lookupIndex(a); ok && got == int32(pi) {
				sm.repAddr[pi] = a
				sm.rib.pfx[pi].set(pfxRepRouted, true)
				break
			}
		}
	}
	items := make([]int32, len(sm.sc.Demand.RungShares))
	for i := range items {
		items[i] = int32(i)
	}
	sm.rungAlias = newAlias(items, func(i int) float64 { return sm.sc.Demand.RungShares[i] })
}

// addrAt is the address of p picked by hash h (as randomIn, without an
// RNG).
func addrAt(p netip.Prefix, h uint64) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8 && i < 64; i++ {
		if h>>(uint(i)%64)&1 == 1 {
			b[i/8] |= 1 << (7 - i%8)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Run simulates the scenario and returns its summary; with Options.Out it
// also writes the tables and the report.
func (sm *Sim) Run(ctx context.Context) (*Summary, error) {
	wall := time.Now()
	sc := sm.sc
	t0 := sc.Start
	if err := sm.prepare(ctx); err != nil {
		return nil, err
	}
	shards := sm.shards
	prog := newProgress(sm.opt.Progress, sc.Duration)
	loopStart := time.Now()
	lastHour := -1
	for k := 0; k < sm.steps; k++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t := t0.Add(time.Duration(k) * sc.Step)
		if !t.Before(sm.results.dayStart.Add(24 * time.Hour)) {
			sm.results.finishDay(sm, t) // before this step's sessions count
		}
		if err := sm.applyEvents(ctx, t); err != nil {
			return nil, err
		}
		// Sessions that end now release their appliances' throughput.
		for ai, v := range sm.ring[k%len(sm.ring)] {
			sm.st.apps[ai].active += v
		}
		clear(sm.ring[k%len(sm.ring)])
		sm.publishHealth(t)
		if h := int(t.Sub(t0) / time.Hour); h != lastHour {
			lastHour = h
			sm.buildTitleTables(t)
		}
		sm.setRates(t)
		sm.runShards(shards, k, t)
		end := t.Add(sc.Step)
		sm.mergeShards(shards, k)
		sm.heartbeats(end)
		fillBytes := sm.fillStep(t, end)
		sm.results.step(sm, t, shards, fillBytes)
		prog.update(end.Sub(t0), sm.results.sessions)
	}
	prog.done()
	sm.results.finishDay(sm, t0.Add(time.Duration(sm.steps)*sc.Step))
	sum := sm.results.summary(sm, time.Since(wall)+sm.newTime, time.Since(loopStart))
	if sm.opt.Out != "" {
		if err := sm.results.write(sm, sm.opt.Out, sum); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// prepare readies the first step: every appliance reports once (so
// health knows it), the title tables, the first placement, the shards.
func (sm *Sim) prepare(ctx context.Context) error {
	t0 := sm.sc.Start
	for _, a := range sm.st.apps {
		sm.tracker.Report(a.id, t0, health.Report{})
	}
	sm.buildTitleTables(t0)
	if err := sm.initialPlacement(ctx, t0); err != nil {
		return err
	}
	sm.publishHealth(t0)
	sm.shards = make([]*shard, nShards)
	for i := range sm.shards {
		sm.shards[i] = sm.newShard(i)
	}
	sm.views = make([]*applianceViews, min(sm.opt.Workers, nShards))
	for i := range sm.views {
		sm.views[i] = sm.newViews()
	}
	return nil
}

// setRates sets each metro's mean sessions per shard for the step
// starting at t.
func (sm *Sim) setRates(t time.Time) {
	sc := sm.sc
	mid := t.Add(sc.Step / 2)
	scale := sc.Demand.SessionsPerSubscriberDay * sc.Step.Hours() / 24 / nShards
	for m := range sm.metroRate {
		sm.metroRate[m] = sm.metroSubs[m] * scale * sm.diurnal.at(mid.In(sm.w.Metros[m].Loc))
	}
}

// runShards serves the step's sessions on the workers; each shard's
// sessions are drawn from its own stream, so the result does not depend
// on which worker ran it.
func (sm *Sim) runShards(shards []*shard, k int, t time.Time) {
	sm.refreshServe()
	var next atomic.Int32
	var wg sync.WaitGroup
	for _, v := range sm.views {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.sync(sm)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(shards) {
					return
				}
				shards[i].use(v)
				sm.runShard(shards[i], k, t)
			}
		}()
	}
	wg.Wait()
}

// mergeShards adds the shards' load to the appliances, in shard order.
func (sm *Sim) mergeShards(shards []*shard, k int) {
	for _, sh := range shards {
		for ai, v := range sh.c.appBps {
			if v != 0 {
				sm.st.apps[ai].active += v
			}
		}
		for ai, v := range sh.c.appBytes {
			if v != 0 {
				sm.st.apps[ai].dayBytes += v
			}
		}
		for _, e := range sh.ends {
			sm.ring[int(e.step)%len(sm.ring)][e.app] -= e.bps
		}
	}
}

// heartbeats reports every appliance that is up to health at t with its
// utilisation (throughput in use over capacity).
func (sm *Sim) heartbeats(t time.Time) {
	for _, a := range sm.st.apps {
		if a.down > 0 || sm.st.sites[a.site].down > 0 {
			a.dayDownSt++
			continue
		}
		u := float64(a.active) / a.bps
		a.dayPeak = max(a.dayPeak, u)
		sm.tracker.Report(a.id, t, health.Report{Utilization: u})
	}
}

// publishHealth sets what steering sees of each appliance at t from the
// health tracker, as the control plane's snapshot does.
func (sm *Sim) publishHealth(t time.Time) {
	for _, a := range sm.st.apps {
		st := sm.tracker.Status(a.id, t)
		a.st.Serving, a.st.State, a.st.Weight = st.Serving(), string(st.State), st.Weight
		if st.State == health.Overloaded {
			a.dayOverSteps++
		}
	}
}

func (sm *Sim) checkEvents() error {
	for i, ev := range sm.sc.Events {
		f := fmt.Sprintf("events[%d].target", i)
		switch ev.Kind {
		case "fail_site":
			if _, ok := sm.w.SiteIndex(ev.Target); !ok {
				return sm.scenarioErr(f, "unknown site %q", ev.Target)
			}
		case "fail_appliance":
			if _, ok := sm.st.appIdx[ev.Target]; !ok {
				return sm.scenarioErr(f, "unknown appliance %q", ev.Target)
			}
		case "fail_metro", "fail_ixp_metro":
			if _, ok := sm.w.MetroIndex(ev.Target); !ok {
				return sm.scenarioErr(f, "unknown metro %q", ev.Target)
			}
		case "withdraw_prefix", "announce_prefix":
			if _, err := netip.ParsePrefix(ev.Target); err != nil {
				return sm.scenarioErr(f, "%q is not a prefix", ev.Target)
			}
		}
	}
	return nil
}

// scenarioErr is an error about a scenario field found when checking it
// against the world.
func (sm *Sim) scenarioErr(field, format string, args ...any) error {
	name := sm.sc.file
	if name == "" {
		name = "scenario"
	}
	return &world.InputError{File: name, Line: sm.sc.lineOf(field), Field: field, Problem: fmt.Sprintf(format, args...)}
}
