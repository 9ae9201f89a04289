package sim

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/ocdn/ocdn/internal/config"
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
	idx  int
	snap steer.Snapshot
	loc  config.Location
	dst  []steer.Ranked
	c    stepCounters
	ends []endRec
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
	sessions, decisions, failovers int64
	src                            [nSrc]int64
	miss                           [nMiss]int64
	country                        [][nSrc]int64
	countrySessions                []int64
	siteBytes                      []int64
	appBps, appBytes               []int64
	dist, rtt                      [nHist]int64 // bytes by bucket (appliance-served)
	distBytesKm, rttBytesMs        float64
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
	sh := &shard{idx: i, snap: sm.snap}
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

// session is one playback: a client of metro m picks a title by its
// country's popularity and a rung, is steered by the real engine for
// each file it streams, and is served by the first appliance of the
// answer that is really up (failing over down the list), else the
// origin.
func (sm *Sim) session(sh *shard, rng *rand.Rand, m, k int) {
	pi := sm.metroPrefix[m].draw(rng)
	country := sm.metroCountry[m]
	ti := sm.titleAlias[country].draw(rng)
	tt := &sm.cat.titles[ti]
	watch := min(expDraw(sm.sc.Demand.WatchMean, rng.Float64()), tt.duration)
	addr := sm.clientAddr(pi, rng)
	sh.loc = sm.metroLoc[m]
	sm.fetch(sh, pi, m, country, tt.files[sm.rungAlias.draw(rng)], watch, addr, k)
	if sm.fetchAudio && tt.audio >= 0 {
		sm.fetch(sh, pi, m, country, tt.audio, watch, addr, k)
	}
	sh.c.sessions++
	sh.c.countrySessions[country]++
	if as := sm.prefixAS[pi]; as >= 0 {
		sh.asSessions[as]++
	}
}

func (sm *Sim) fetch(sh *shard, pi int32, m, country int, fi int32, watch time.Duration, addr netip.Addr, k int) {
	f := &sm.cat.files[fi]
	sh.dst = sm.engine.AppendRanked(sh.dst[:0], &sh.snap, addr, f.Path, sm.sc.Steering.URLs)
	sh.c.decisions++
	bps := int64(f.BitrateKbps) * 1000
	bytes := int64(float64(bps) / 8 * watch.Seconds())
	served := int32(-1)
	for _, r := range sh.dst {
		ai := sm.st.byPtr[r.Appliance]
		if sm.st.apps[ai].down > 0 {
			sh.c.failovers++ // the client's request fails; it tries the next URL
			continue
		}
		served = ai
		break
	}
	src := srcOrigin
	servedSite := int32(-1)
	if served >= 0 {
		a := sm.st.apps[served]
		servedSite = int32(a.site)
		st := sm.st.sites[a.site]
		src = st.kind.Tier()
		sh.c.appBps[served] += bps
		sh.c.appBytes[served] += bytes
		sh.c.siteBytes[a.site] += bytes
		steps := int32((watch + sm.sc.Step - 1) / sm.sc.Step)
		sh.ends = append(sh.ends, endRec{app: served, step: int32(k) + max(steps, 1), bps: bps})
		km := sm.st.metroKm(m, st.metro)
		rtt := sm.sc.Network.BaseRTTMs + sm.sc.Network.PathInflation*km/sm.sc.Network.KmPerMs
		sh.c.dist[histBucket(km)] += bytes
		sh.c.rtt[histBucket(rtt)] += bytes
		sh.c.distBytesKm += float64(bytes) * km
		sh.c.rttBytesMs += float64(bytes) * rtt
		atomic.AddUint64(&sm.obs[st.region*len(sm.cat.files)+int(fi)], uint64(bytes))
	}
	sh.c.src[src] += bytes
	sh.c.country[country][src] += bytes
	if as := sm.prefixAS[pi]; as >= 0 {
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
// (a more specific prefix of another network may cover part of it).
func (sm *Sim) clientAddr(pi int32, rng *rand.Rand) netip.Addr {
	p := sm.w.Prefixes[pi].Prefix
	a := randomIn(p, rng)
	if sm.hasMoreSpecific[pi] {
		if got, ok := sm.rib.lookupIndex(a); !ok || got != pi {
			return sm.repAddr[pi]
		}
	}
	return a
}

// randomIn is a random address of p: any host of an IPv4 prefix; for
// IPv6 a random /64 inside it (clients are told apart by /48 and /64).
func randomIn(p netip.Prefix, rng *rand.Rand) netip.Addr {
	if p.Addr().Is4() {
		b := p.Addr().As4()
		base := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		host := uint32(0)
		if p.Bits() < 32 {
			host = uint32(rng.Uint64()) & (1<<(32-p.Bits()) - 1)
		}
		v := base | host
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	b := p.Addr().As16()
	hi := uint64(0)
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(b[i])
	}
	if p.Bits() < 64 {
		hi |= rng.Uint64() & (1<<(64-p.Bits()) - 1)
	}
	for i := 7; i >= 0; i-- {
		b[i] = byte(hi)
		hi >>= 8
	}
	b[15] = 1
	return netip.AddrFrom16(b)
}
