package sim

import (
	"math"
	"math/bits"
	"time"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/rendezvous"
	"github.com/ocdn/ocdn/internal/rib"
	"github.com/ocdn/ocdn/internal/sim/world"
	"github.com/ocdn/ocdn/internal/steer"
)

// Where client bytes come from: the site tiers of config.SiteKind.Tier,
// then the origin.
const (
	srcEmbedded = 0
	srcPrivate  = 1
	srcIXP      = 2
	srcFallback = 3
	srcOrigin   = 4
	nSrc        = 5
)

var srcNames = [nSrc]string{"embedded", "private", "ixp", "fallback", "origin"}

// Miss classes (docs/architecture.md, Misses).
const (
	missLocal   = 0
	missContent = 1
	missHealth  = 2
	missOther   = 3
	nMiss       = 4
)

var missNames = [nMiss]string{"local", "content", "health", "other"}

// Fill sources.
const (
	fillPeer   = 0
	fillTier   = 1
	fillOrigin = 2
	nFill      = 3
)

var fillNames = [nFill]string{"peer", "tier", "origin"}

// site is one site of the world during a run.
type site struct {
	id      string
	kind    config.SiteKind
	asn     uint32
	metro   int
	country int
	region  int // popularity region
	apps    []int
	loc     *time.Location
	down    int // failures in force
}

// app is one appliance during a run.
type app struct {
	idx     int32 // in state.apps
	id      string
	site    int
	class   string
	storage int64
	bps     float64 // throughput, bits/s
	// st is the appliance's health as steering sees it (Serving, State,
	// Weight); what it holds is holds, shown to steering file by file
	// (applianceViews).
	st       *steer.Appliance
	holds    bitset
	held     int64 // bytes held
	manifest []int32
	listed   bitset
	missing  []int32         // manifest files not held, in manifest order
	partial  map[int32]int64 // bytes of files being filled
	waitFrom map[int32]time.Time
	down     int   // failures in force (it serves nothing; the control plane notices at the next heartbeat)
	active   int64 // bits/s of sessions in progress
	dirty    bool  // the manifest changed: unlisted files go once it is filled
	oocCycle string
	oocSpent int64

	// per-day counters
	dayBytes, dayFill       int64
	dayPeak                 float64
	dayOverSteps, dayDownSt int
}

func trailingZeros(x uint64) int { return bits.TrailingZeros64(x) }
func popcount(x uint64) int      { return bits.OnesCount64(x) }

// bitset is a fixed-size set of file indexes.
type bitset []uint64

func newBitset(n int) bitset      { return make(bitset, (n+63)/64) }
func (b bitset) has(i int32) bool { return b[i>>6]&(1<<(uint(i)&63)) != 0 }
func (b bitset) set(i int32)      { b[i>>6] |= 1 << (uint(i) & 63) }
func (b bitset) unset(i int32)    { b[i>>6] &^= 1 << (uint(i) & 63) }
func (b bitset) clear()           { clear(b) }

// state is everything the run's steps share.
type state struct {
	w      *world.World
	sites  []*site
	apps   []*app
	appIdx map[string]int32
	metroD [][]float32 // metro × metro distance, km
}

func (s *state) metroKm(a, b int) float64 { return float64(s.metroD[a][b]) }

// candApps is the appliance indexes of a candidate list.
func (s *state) candApps(c []rib.Candidate) []int32 {
	out := make([]int32, len(c))
	for i := range c {
		out[i] = s.appIdx[c[i].Appliance]
	}
	return out
}

// siteOfCand is the site of a candidate list's first appliance, or -1.
func (s *state) siteOfCand(c []rib.Candidate) int32 {
	if len(c) == 0 {
		return -1
	}
	if i, ok := s.appIdx[c[0].Appliance]; ok {
		return int32(s.apps[i].site)
	}
	return -1
}

// newState makes the sites and appliances of a world, scaled by the
// scenario.
func newState(w *world.World, sc *Scenario, regionOf func(si int) int) *state {
	s := &state{w: w, appIdx: map[string]int32{}}
	s.metroD = make([][]float32, len(w.Metros))
	for i, a := range w.Metros {
		s.metroD[i] = make([]float32, len(w.Metros))
		for j, b := range w.Metros {
			s.metroD[i][j] = float32(world.DistanceKm(a.Lat, a.Lon, b.Lat, b.Lon))
		}
	}
	for _, ws := range w.Sites {
		m, _ := w.MetroIndex(ws.Metro)
		c, _ := w.CountryIndex(w.Metros[m].Country)
		s.sites = append(s.sites, &site{id: ws.ID, kind: ws.Kind, asn: ws.ASN, metro: m, country: c, loc: w.Metros[m].Loc})
	}
	for i := range s.sites {
		s.sites[i].region = regionOf(i)
	}
	for _, wa := range w.Appliances {
		si, _ := w.SiteIndex(wa.Site)
		st := s.sites[si]
		m := w.Metros[st.metro]
		a := &app{idx: int32(len(s.apps)), id: wa.ID, site: si, class: wa.Class,
			storage: int64(float64(wa.Storage) * sc.StorageScale),
			bps:     wa.ThroughputGbps * 1e9 * sc.ThroughputScale,
			partial: map[int32]int64{}, waitFrom: map[int32]time.Time{}}
		a.st = &steer.Appliance{ID: wa.ID, Site: st.id, Kind: st.kind, BaseURL: "sim://" + wa.ID,
			Location: config.Location{Lat: m.Lat, Lon: m.Lon}, Serving: true, State: "up"}
		s.appIdx[a.id] = int32(len(s.apps))
		st.apps = append(st.apps, len(s.apps))
		s.apps = append(s.apps, a)
	}
	return s
}

// mix is the shared 64-bit mixer.
func mix(x uint64) uint64 { return rendezvous.Mix(x) }

// unit returns a uniform float in [0,1) from a hash.
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// expDraw draws an exponential time with mean m from a uniform u.
func expDraw(m time.Duration, u float64) time.Duration {
	return time.Duration(-math.Log(1-u) * float64(m))
}
