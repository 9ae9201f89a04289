package sim

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/rib"
	"github.com/ocdn/ocdn/internal/steer"
)

// nShards is how many independent streams a step's sessions are drawn
// in. It is fixed (not the number of cores) so that a seed gives the same
// sessions, and so the same tables, on any machine.
const nShards = 16

// Histogram buckets: four per doubling of distance (km) or round trip (ms).
const nHist = 72

func histBucket(v float64) int { return min(int(math.Log2(v+1)*4), nHist-1) }

// histValue is the upper edge of bucket b.
func histValue(b int) float64 { return math.Exp2(float64(b+1)/4) - 1 }

// shard holds one stream's counters; shards are merged in index order.
type shard struct {
	idx   int
	snap  steer.Snapshot
	loc   config.Location
	route routeHint
	views *applianceViews // the worker's, while it runs the shard
	dst   []steer.Ranked
	c     stepCounters
	ends  []endRec
	// Run-long counters per AS (index into Sim.ases).
	asBytes    [][nSrc]int64
	asSessions []int64
}

type endRec struct {
	app  int32
	step int32
	bps  int64
}

// stepCounters are what one step's sessions did.
type stepCounters struct {
	totals
	country          [][nSrc]int64
	countrySessions  []int64
	siteBytes        []int64
	appBps, appBytes []int64
}

// totals are the counters a run sums from its shards' steps and over its
// steps alike.
type totals struct {
	sessions, decisions, failovers int64
	src                            [nSrc]int64
	miss                           [nMiss]int64
	dist, rtt                      [nHist]int64 // bytes by bucket (appliance-served)
	distBytesKm, rttBytesMs        float64
}

func (t *totals) add(o *totals) {
	t.sessions += o.sessions
	t.decisions += o.decisions
	t.failovers += o.failovers
	for i := range t.src {
		t.src[i] += o.src[i]
	}
	for i := range t.miss {
		t.miss[i] += o.miss[i]
	}
	for i := range t.dist {
		t.dist[i] += o.dist[i]
		t.rtt[i] += o.rtt[i]
	}
	t.distBytesKm += o.distBytesKm
	t.rttBytesMs += o.rttBytesMs
}

func (c *stepCounters) reset() {
	sessions := c.countrySessions
	*c = stepCounters{country: c.country, countrySessions: sessions, siteBytes: c.siteBytes, appBps: c.appBps, appBytes: c.appBytes}
	clear(c.country)
	clear(c.countrySessions)
	clear(c.siteBytes)
	clear(c.appBps)
	clear(c.appBytes)
}

func (sm *Sim) newShard(i int) *shard {
	sh := &shard{idx: i, snap: sm.snap, route: routeHint{rib: sm.rib}}
	sh.snap.Appliances = nil // the worker's views (use)
	sh.snap.Routes = &sh.route
	if sm.sc.Steering.Locate {
		// The session's own metro: steering asks for the address it
		// was given, which the shard has just drawn from that metro.
		sh.snap.Locate = func(netip.Addr) (config.Location, bool) { return sh.loc, true }
	}
	sh.c.country = make([][nSrc]int64, len(sm.w.Countries))
	sh.c.countrySessions = make([]int64, len(sm.w.Countries))
	sh.c.siteBytes = make([]int64, len(sm.st.sites))
	sh.c.appBps = make([]int64, len(sm.st.apps))
	sh.c.appBytes = make([]int64, len(sm.st.apps))
	sh.asBytes = make([][nSrc]int64, len(sm.ases))
	sh.asSessions = make([]int64, len(sm.ases))
	return sh
}

// runShard draws and serves shard sh's sessions of step k starting at t.
func (sm *Sim) runShard(sh *shard, k int, t time.Time) {
	sh.c.reset()
	sh.ends = sh.ends[:0]
	rng := rand.New(rand.NewPCG(sm.sc.Seed, uint64(k)*nShards+uint64(sh.idx)+1))
	for m, lambda := range sm.metroRate {
		n := poisson(rng, lambda)
		for range n {
			sm.session(sh, rng, m, k)
		}
	}
}

// fetchRec is one file a session streams.
type fetchRec struct {
	addr    netip.Addr
	watch   time.Duration
	pi, fi  int32
	metro   int32
	country int32
	// routed says addr's longest match is known to be prefix pi, so
	// steering's route lookup need not walk the trie again.
	routed bool
}

// session is one playback: a client of metro m picks a title by its
// country's popularity and a rung, is steered by the real engine for
// each file it streams, and is served by the first appliance of the
// answer that is really up (failing over down the list), else the
// origin. A run's sessions come metro by metro, so consecutive decisions
// share candidate lists and appliances, which keeps them in the CPU's
// caches.
func (sm *Sim) session(sh *shard, rng *rand.Rand, m, k int) {
	pi := sm.metroPrefix[m].draw(rng)
	country := sm.metroCountry[m]
	ti := sm.titleAlias[country].draw(rng)
	tt := &sm.cat.titles[ti]
	watch := min(expDraw(sm.sc.Demand.WatchMean, rng.Float64()), tt.duration)
	addr, routed := sm.clientAddr(pi, rng)
	r := fetchRec{addr: addr, watch: watch, pi: pi, fi: tt.files[sm.rungAlias.draw(rng)], metro: int32(m), country: int32(country), routed: routed}
	sm.fetch(sh, &r, k)
	if sm.fetchAudio && tt.audio >= 0 {
		r.fi = tt.audio
		sm.fetch(sh, &r, k)
	}
	sh.c.sessions++
	sh.c.countrySessions[country]++
	if as := sm.rib.pfx[pi].as; as >= 0 {
		sh.asSessions[as]++
	}
}

// routeHint is a shard's steer.Routes: the world's RIB, told which
// prefix the next client address matches (the shard drew the address
// from that prefix and checked it, or looked it up in the trie itself),
// so that steering's lookup is not a second trie walk.
type routeHint struct {
	rib *worldRIB
	pi  int32
	ok  bool // false: no prefix covers the address
}

func (h *routeHint) Lookup(a netip.Addr) (netip.Prefix, []rib.Candidate, bool) {
	if !h.ok {
		return netip.Prefix{}, nil, false
	}
	pfx, _ := a.Unmap().Prefix(int(h.rib.pfx[h.pi].bits))
	return pfx, h.rib.candidates(h.pi), true
}

// applianceViews is one worker's copy of the appliances as steering reads
// them: identity, site and location as built, Serving, State and Weight
// copied from health at the start of each step, and Holds set, before
// each decision, for the decision's file on exactly the appliances the
// decision can consider (its prefix's routed candidates and the global
// ones): the one-path set when the appliance holds the file, else none.
// steer reads Holds only as Holds[path] for the file being steered, so it
// decides exactly as over full per-appliance sets, without the run
// keeping a path-keyed map per appliance (gigabytes on a full world, and
// a cache miss per candidate per decision).
type applianceViews struct {
	apps []steer.Appliance
	byID map[string]*steer.Appliance
}

func (sm *Sim) newViews() *applianceViews {
	v := &applianceViews{apps: make([]steer.Appliance, len(sm.st.apps)), byID: make(map[string]*steer.Appliance, len(sm.st.apps))}
	for i, a := range sm.st.apps {
		v.apps[i] = *a.st
		v.apps[i].Holds = nil
		v.byID[a.id] = &v.apps[i]
	}
	return v
}

// sync copies health's view of every appliance (publishHealth).
func (v *applianceViews) sync(sm *Sim) {
	for i, a := range sm.st.apps {
		x := &v.apps[i]
		x.Serving, x.State, x.Weight = a.st.Serving, a.st.State, a.st.Weight
	}
}

// show sets Holds for file fi on appliances apps.
func (v *applianceViews) show(sm *Sim, fi int32, apps []int32) {
	holders, one := sm.holdersOf(fi), sm.holdsOne[fi]
	for _, ai := range apps {
		if holders.has(ai) {
			v.apps[ai].Holds = one
		} else {
			v.apps[ai].Holds = nil
		}
	}
}

// index is the appliance index of a view steering returned, one of the
// decision's candidates.
func (v *applianceViews) index(a *steer.Appliance, sets ...[]int32) int32 {
	for _, apps := range sets {
		for _, ai := range apps {
			if &v.apps[ai] == a {
				return ai
			}
		}
	}
	panic("sim: steering answered an appliance it was not offered: " + a.ID)
}

// appServe is what serving a session reads of an appliance, packed and
// refreshed each step (refreshServe), so that the served appliance costs
// no pointer chase to its appliance and site.
type appServe struct {
	site, metro, region int32
	tier                uint8
	down                bool // a failure is in force: it serves nothing
}

// refreshServe copies the appliances' failures into serve; the rest is
// fixed for the run.
func (sm *Sim) refreshServe() {
	if sm.serve == nil {
		sm.serve = make([]appServe, len(sm.st.apps))
		for i, a := range sm.st.apps {
			s := sm.st.sites[a.site]
			sm.serve[i] = appServe{site: int32(a.site), metro: int32(s.metro), region: int32(s.region), tier: uint8(s.kind.Tier())}
		}
	}
	for i, a := range sm.st.apps {
		sm.serve[i].down = a.down > 0
	}
}

// use has the shard decide over the worker's views.
func (sh *shard) use(v *applianceViews) {
	sh.views = v
	sh.snap.Appliances = v.byID
}

// fetch steers one file of a session with the real engine and serves it
// from the first appliance of the answer that is really up (failing over
// down the list), else the origin.
func (sm *Sim) fetch(sh *shard, r *fetchRec, k int) {
	pi, m, country, fi, watch := r.pi, int(r.metro), int(r.country), r.fi, r.watch
	f := &sm.cat.files[fi]
	sh.loc = sm.metroLoc[m]
	route, routed := pi, r.routed
	if !routed {
		route, routed = sm.rib.lookupIndex(r.addr.Unmap())
	}
	sh.route.pi, sh.route.ok = route, routed
	var cands []int32
	if routed {
		cands = sm.rib.candidateApps(route)
	}
	sh.views.show(sm, fi, cands)
	sh.views.show(sm, fi, sm.globalApps)
	sh.dst = sm.engine.AppendRanked(sh.dst[:0], &sh.snap, r.addr, f.Path, sm.sc.Steering.URLs)
	sh.c.decisions++
	bps := int64(f.BitrateKbps) * 1000
	bytes := int64(float64(bps) / 8 * watch.Seconds())
	served := int32(-1)
	for _, r := range sh.dst {
		ai := sh.views.index(r.Appliance, cands, sm.globalApps)
		if sm.serve[ai].down {
			sh.c.failovers++ // the client's request fails; it tries the next URL
			continue
		}
		served = ai
		break
	}
	src := srcOrigin
	servedSite := int32(-1)
	if served >= 0 {
		st := &sm.serve[served]
		servedSite = st.site
		src = int(st.tier)
		sh.c.appBps[served] += bps
		sh.c.appBytes[served] += bytes
		sh.c.siteBytes[st.site] += bytes
		steps := int32((watch + sm.sc.Step - 1) / sm.sc.Step)
		sh.ends = append(sh.ends, endRec{app: served, step: int32(k) + max(steps, 1), bps: bps})
		km := sm.st.metroKm(m, int(st.metro))
		rtt := sm.sc.Network.BaseRTTMs + sm.sc.Network.PathInflation*km/sm.sc.Network.KmPerMs
		sh.c.dist[histBucket(km)] += bytes
		sh.c.rtt[histBucket(rtt)] += bytes
		sh.c.distBytesKm += float64(bytes) * km
		sh.c.rttBytesMs += float64(bytes) * rtt
		atomic.AddUint64(&sm.obs[int(st.region)*len(sm.cat.files)+int(fi)], uint64(bytes))
	}
	sh.c.src[src] += bytes
	sh.c.country[country][src] += bytes
	if as := sm.rib.pfx[pi].as; as >= 0 {
		sh.asBytes[as][src] += bytes
	}
	best := sm.rib.bestSite(pi)
	if best < 0 {
		best = sm.globalSite
	}
	switch {
	case best < 0 || best == servedSite:
		sh.c.miss[missLocal] += bytes
	default:
		sh.c.miss[sm.classify(int(best), fi)] += bytes
	}
}

// classify says why a client was not served by its best site
// (docs/architecture.md, Misses): health when none of the site's
// appliances could take clients (down, or overloaded: the simulator also
// counts load shedding as a health miss), content when none of those
// that could holds the file, other otherwise (load spreading, failover,
// a route change).
func (sm *Sim) classify(site int, fi int32) int {
	serving, holding := false, false
	for _, ai := range sm.st.sites[site].apps {
		a := sm.st.apps[ai]
		if !a.st.Serving || a.down > 0 || a.st.State == "overloaded" {
			continue
		}
		serving = true
		if a.holds.has(fi) {
			holding = true
		}
	}
	switch {
	case !serving:
		return missHealth
	case !holding:
		return missContent
	}
	return missOther
}

// clientAddr is a random address of prefix pi whose longest match is pi
// (a more specific prefix of another network may cover part of it), and
// whether that match is checked (else steering looks it up).
func (sm *Sim) clientAddr(pi int32, rng *rand.Rand) (netip.Addr, bool) {
	p := &sm.rib.pfx[pi]
	a := p.randomIn(rng)
	if p.has(pfxMoreSpecific) {
		if got, ok := sm.rib.lookupIndex(a); !ok || got != pi {
			return sm.repAddr[pi], p.has(pfxRepRouted)
		}
		return a, true
	}
	return a, p.has(pfxOwn) && p.prefix().Contains(a)
}

// randomIn is a random address of the prefix: any host of an IPv4
// prefix; for IPv6 a random /64 inside it (clients are told apart by /48
// and /64).
func (p *ribPrefix) randomIn(rng *rand.Rand) netip.Addr {
	if p.has(pfx4) {
		base := binary.BigEndian.Uint32(p.addr[:4])
		host := uint32(0)
		if p.bits < 32 {
			host = uint32(rng.Uint64()) & (1<<(32-p.bits) - 1)
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], base|host)
		return netip.AddrFrom4(b)
	}
	b := p.addr
	hi := binary.BigEndian.Uint64(b[:8])
	if p.bits < 64 {
		hi |= rng.Uint64() & (1<<(64-p.bits) - 1)
	}
	binary.BigEndian.PutUint64(b[:8], hi)
	b[15] = 1
	return netip.AddrFrom16(b)
}
