package control

import (
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/steer"
)

// Demand is counted where the client lives. Placement decides what each
// site (manifest cluster) holds from the demand of the clients whose home
// site it is (steer.Home: their best site by BGP and tier), whether or not
// that site served them: counting demand where bytes were served would
// hide from a site every file it lacks, so it would never get them.
//
// Two signals feed it, each an EWMA (content.Popularity) per home site:
//
//   - steering answers: every file named in a /v1/steer answer counts as
//     one play of the file, its size in bytes, at the client's home site.
//     They are counted on the hot path in sharded atomic counters (no
//     lock, no allocation) and folded into the average at each placement
//     check;
//   - playback: the bytes appliances report serving to each client prefix
//     (POST /v1/demand), at that prefix's home site.
//
// A file's demand is the larger of the two (a play that was steered but
// never served still counts; bytes fetched with URLs from an earlier
// answer do too), or the release feed's prediction when that is larger.
type demandState struct {
	steered   *content.Popularity // carries the release feed
	served    *content.Popularity
	counts    *demandCounters
	servedAny atomic.Bool // playback bytes have been observed
}

func newDemandState(cfg FillConfig, sites []string, cat *content.Catalog) *demandState {
	return &demandState{
		steered: content.NewPopularity(cfg.HalfLife, cfg.Day),
		served:  content.NewPopularity(cfg.HalfLife, cfg.Day),
		counts:  newDemandCounters(sites, cat),
	}
}

// region is the predicted bytes per day of every file with demand at
// site.
func (d *demandState) region(site string, now time.Time) map[string]float64 {
	out := d.steered.Region(site, now)
	for p, v := range d.served.Region(site, now) {
		out[p] = max(out[p], v)
	}
	return out
}

// seen says whether any demand has been counted yet.
func (d *demandState) seen() bool {
	return d.counts.total.Load() > 0 || d.servedAny.Load()
}

// fold moves the steering answers counted since the last fold into the
// average.
func (d *demandState) fold(now time.Time) {
	d.counts.drain(func(site string, f content.File, plays int64) {
		d.steered.Observe(site, f.Path, plays*f.Size, now)
	})
}

// demandCounters count steering answers per (home site, file). Each
// request adds to one of several shards picked at random, so concurrent
// requests for one hot file rarely write the same cache line; counts only
// grow, and drain reports what each (site, file) gained since it last ran.
type demandCounters struct {
	cat    *content.Catalog
	sites  []string
	index  map[string]int // site → row; read-only
	stride int            // cells per shard, padded to whole cache lines
	mask   uint32
	v      []atomic.Int64 // shard s, site i, file j at s*stride + i*files + j

	mu    sync.Mutex
	seen  []int64      // what drain reported so far, per (site, file)
	total atomic.Int64 // plays drained so far
}

func newDemandCounters(sites []string, cat *content.Catalog) *demandCounters {
	shards := 1 << bits.Len(uint(2*runtime.GOMAXPROCS(0)-1)) // a power of two ≥ 2 per core
	const line = 128 / 8                                     // cells per 128 bytes (two lines, for the adjacent-line prefetcher)
	n := len(sites) * len(cat.Files)
	c := &demandCounters{cat: cat, sites: sites, index: make(map[string]int, len(sites)),
		stride: (n + line - 1) / line * line, mask: uint32(shards - 1), seen: make([]int64, n)}
	c.v = make([]atomic.Int64, shards*c.stride)
	for i, s := range sites {
		c.index[s] = i
	}
	return c
}

// add counts one play of each file (catalog indexes) at site.
func (c *demandCounters) add(site string, files []steerFile) {
	i, ok := c.index[site]
	if !ok {
		return
	}
	base := int(rand.Uint32()&c.mask)*c.stride + i*len(c.cat.Files)
	for k := range files {
		c.v[base+files[k].index].Add(1)
	}
}

// drain calls f for every (site, file) with plays since the last drain.
func (c *demandCounters) drain(f func(site string, file content.File, plays int64)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	files := len(c.cat.Files)
	for cell := range c.seen {
		var total int64
		for s := cell; s < len(c.v); s += c.stride {
			total += c.v[s].Load()
		}
		if d := total - c.seen[cell]; d > 0 {
			c.seen[cell] = total
			c.total.Add(d)
			f(c.sites[cell/files], c.cat.Files[cell%files], d)
		}
	}
}

// observeSteer attributes one steering answer to the client's home site.
func (s *Server) observeSteer(snap *steer.Snapshot, client netip.Addr, files []steerFile) {
	if home, ok := steer.Home(snap, client); ok {
		s.fill.demand.counts.add(home, files)
	}
}
