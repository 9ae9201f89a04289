package sim

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/placement"
)

// initialPlacement seeds popularity and plans the first manifests. A warm
// start observes the demand model's expectation of the day before (as if
// the CDN had been running) and fills every manifest at once; a cold
// start begins empty, and with prefill fills everything before the clock
// starts, as the lab waits for fill before clients stream.
func (sm *Sim) initialPlacement(ctx context.Context, t0 time.Time) error {
	if sm.sc.WarmStart {
		exp := sm.expectedDemand(t0)
		day := t0.Add(-24 * time.Hour)
		for r, files := range exp {
			for fi, v := range files {
				if v > 0 {
					sm.pop.Observe(sm.popRegions[r], sm.cat.files[fi].Path, int64(v), day)
				}
			}
		}
	}
	if err := sm.replan(ctx, t0); err != nil {
		return err
	}
	if sm.sc.WarmStart {
		for _, a := range sm.st.apps {
			for _, fi := range a.manifest {
				sm.gain(a, fi)
			}
			a.missing = a.missing[:0]
		}
		sm.results.warmBytes = sm.placedBytes()
		return nil
	}
	if sm.sc.Prefill {
		err := sm.prefill(ctx, t0)
		clear(sm.results.siteFill) // prefill is before the first step's rows
		return err
	}
	return nil
}

// expectedDemand is the demand model's expected bytes per day per
// popularity region and file at t: each prefix's subscribers stream their
// country's titles, served (by assumption) from their best site.
func (sm *Sim) expectedDemand(t time.Time) [][]float64 {
	nr, nc := len(sm.popRegions), len(sm.w.Countries)
	rc := make([][]float64, nr) // region × client country: sessions per day
	for pi, p := range sm.w.Prefixes {
		if p.Subscribers <= 0 {
			continue
		}
		best := sm.rib.bestSite(int32(pi))
		if best < 0 {
			best = sm.globalSite
		}
		if best < 0 {
			continue
		}
		r := sm.st.sites[best].region
		if rc[r] == nil {
			rc[r] = make([]float64, nc)
		}
		rc[r][sm.metroCountry[p.Metro]] += float64(p.Subscribers) * sm.sc.Demand.SessionsPerSubscriberDay
	}
	probs := sm.titleProbs(t)
	out := make([][]float64, nr)
	for r := range rc {
		if rc[r] == nil {
			continue
		}
		out[r] = make([]float64, len(sm.cat.files))
		for c, sess := range rc[r] {
			if sess == 0 || probs[c] == nil {
				continue
			}
			for ti, pt := range probs[c] {
				if pt > 0 {
					sm.addTitleBytes(out[r], ti, sess*pt)
				}
			}
		}
	}
	return out
}

// titleProbs is each country's title distribution at t (nil for
// countries without subscribers).
func (sm *Sim) titleProbs(t time.Time) [][]float64 {
	out := make([][]float64, len(sm.w.Countries))
	for c := range out {
		if sm.regionSubs[c] <= 0 {
			continue
		}
		p := make([]float64, len(sm.cat.titles))
		total := 0.0
		for ti := range p {
			p[ti] = sm.titleWeight(c, ti, t)
			total += p[ti]
		}
		if total > 0 {
			for ti := range p {
				p[ti] /= total
			}
		}
		out[c] = p
	}
	return out
}

// addTitleBytes adds the expected bytes of sessions sessions of title ti
// to its files.
func (sm *Sim) addTitleBytes(dst []float64, ti int, sessions float64) {
	tt := &sm.cat.titles[ti]
	watch := meanWatch(sm.sc.Demand.WatchMean, tt.duration).Seconds()
	for ri, fi := range tt.files {
		share := 1.0
		if ri < len(sm.sc.Demand.RungShares) {
			share = sm.sc.Demand.RungShares[ri]
		}
		dst[fi] += sessions * share * float64(sm.cat.files[fi].BitrateKbps) * 125 * watch
	}
	if sm.fetchAudio && tt.audio >= 0 {
		dst[tt.audio] += sessions * float64(sm.cat.files[tt.audio].BitrateKbps) * 125 * watch
	}
}

// setFeed gives popularity the new-release feed at t: every release going
// live within a replanning period (or a day) or live for less than a
// week, at the demand the model expects at its peak in an average region,
// off by the scenario's prediction error.
func (sm *Sim) setFeed(t time.Time) {
	rel := sm.sc.Demand.Releases
	if !rel.Predicted || rel.PerDay == 0 {
		return
	}
	ahead := max(sm.sc.Placement.Every, 24*time.Hour)
	var feed content.Feed
	regions := 0
	for c := range sm.w.Countries {
		if sm.regionSubs[c] > 0 {
			regions++
		}
	}
	for ti := range sm.cat.titles {
		tt := &sm.cat.titles[ti]
		if tt.release.IsZero() || tt.release.After(t.Add(ahead)) || t.Sub(tt.release) > 7*24*time.Hour {
			continue
		}
		peak := sm.titleProbs(tt.release.Add(time.Second))
		bytes := make([]float64, len(sm.cat.files))
		for c, p := range peak {
			if p != nil {
				sm.addTitleBytes(bytes, ti, sm.regionSubs[c]*sm.sc.Demand.SessionsPerSubscriberDay*p[ti])
			}
		}
		h := mix(sm.sc.Seed ^ uint64(ti)*0x51ed27)
		u1, u2 := max(unit(h), 1e-12), unit(mix(h))
		errf := math.Exp(rel.PredictionError * math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2))
		for _, fi := range append(append([]int32{}, tt.files...), tt.audio) {
			if fi < 0 {
				continue
			}
			feed.Predictions = append(feed.Predictions, content.Prediction{Path: sm.cat.files[fi].Path,
				BytesPerDay: bytes[fi] / float64(max(regions, 1)) * errf, Urgent: rel.Urgent})
			if rel.Urgent {
				sm.urgent[fi] = true
			}
		}
	}
	sm.pop.SetFeed(feed)
}

// replan feeds popularity what the appliances served since the last plan
// and recomputes every site's manifests (placement.Plan per site, the
// control plane's planAll), keeping the previous plan's copies within
// placement's hysteresis.
func (sm *Sim) replan(ctx context.Context, t time.Time) error {
	nf := len(sm.cat.files)
	obsAt := t.Add(-time.Nanosecond)
	for r := range sm.popRegions {
		for fi := 0; fi < nf; fi++ {
			if v := atomic.SwapUint64(&sm.obs[r*nf+fi], 0); v > 0 {
				sm.pop.Observe(sm.popRegions[r], sm.cat.files[fi].Path, int64(v), obsAt)
			}
		}
	}
	sm.setFeed(t)
	bySite := make([][]int, len(sm.popRegions))
	for si, s := range sm.st.sites {
		bySite[s.region] = append(bySite[s.region], si)
	}
	// A site's plan is reduced to file indexes as soon as it is made:
	// thousands of sites' plans as placement returns them (maps of
	// content.File lists) would hold gigabytes at once.
	type planned struct {
		manifests [][]int32 // per appliance of the site, in site order
		copies    []uint8   // per file
	}
	results := make([]planned, len(sm.st.sites))
	for r, sites := range bySite {
		if len(sites) == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		pred := sm.pop.Region(sm.popRegions[r], t)
		items := make([]placement.Item, nf)
		for fi, f := range sm.cat.files {
			items[fi] = placement.Item{File: f, Demand: pred[f.Path]}
		}
		var next atomic.Int32
		var wg sync.WaitGroup
		// placement.Plan spreads each site's rendezvous work over the
		// cores itself; planning two sites at once keeps them busy.
		for range min(2, len(sites)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= len(sites) {
						return
					}
					si := sites[i]
					var nodes []placement.Node
					for _, ai := range sm.st.sites[si].apps {
						nodes = append(nodes, placement.Node{ID: sm.st.apps[ai].id, Capacity: sm.st.apps[ai].storage})
					}
					var prev map[string]int
					if pc := sm.prevCopies[si]; pc != nil {
						prev = make(map[string]int, len(pc))
						for fi, n := range pc {
							if n > 0 {
								prev[sm.cat.files[fi].Path] = int(n)
							}
						}
					}
					res := placement.Plan(items, nodes, placement.Options{MinReplicas: sm.sc.Placement.Replicas, Epsilon: sm.sc.Placement.Epsilon, Prev: prev})
					p := planned{copies: make([]uint8, nf)}
					for path, n := range res.Copies {
						p.copies[sm.cat.index[path]] = uint8(min(n, 255))
					}
					for _, ai := range sm.st.sites[si].apps {
						files := res.Nodes[sm.st.apps[ai].id]
						m := make([]int32, len(files))
						for j := range files {
							m[j] = sm.cat.index[files[j].Path]
						}
						p.manifests = append(p.manifests, m)
					}
					results[si] = p
				}
			}()
		}
		wg.Wait()
	}
	sm.planSeq++
	var added int64
	for si := range sm.st.sites {
		// Copies are kept per file index, not as the plan's map: thousands
		// of sites' maps would hold a gigabyte between plans.
		sm.prevCopies[si] = results[si].copies
		if sm.prevCopies[si] == nil {
			sm.prevCopies[si] = make([]uint8, nf)
		}
		for j, ai := range sm.st.sites[si].apps {
			a := sm.st.apps[ai]
			var files []int32
			if results[si].manifests != nil {
				files = results[si].manifests[j]
			}
			a.manifest = a.manifest[:0]
			a.listed.clear()
			a.missing = a.missing[:0]
			for _, fi := range files {
				a.manifest = append(a.manifest, fi)
				a.listed.set(fi)
				sm.listedEver.set(fi)
				if !a.holds.has(fi) {
					a.missing = append(a.missing, fi)
					added += sm.cat.files[fi].Size
				}
			}
			for fi := range a.partial {
				if !a.listed.has(fi) {
					delete(a.partial, fi)
				}
			}
		}
		results[si] = planned{}
	}
	sm.designateFetchers()
	if sm.planSeq > 1 { // the first plan is the starting state, not a change
		sm.results.replans++
		sm.results.replanAdded += added
	}
	return nil
}

// gain records that appliance a now holds file fi.
func (sm *Sim) gain(a *app, fi int32) {
	if a.holds.has(fi) {
		return
	}
	a.holds.set(fi)
	a.held += sm.cat.files[fi].Size
	sm.holdersOf(fi).set(a.idx)
	sm.holders[fi]++
}

// lose removes file fi from appliance a.
func (sm *Sim) lose(a *app, fi int32) {
	if !a.holds.has(fi) {
		return
	}
	a.holds.unset(fi)
	a.held -= sm.cat.files[fi].Size
	sm.holdersOf(fi).unset(a.idx)
	sm.holders[fi]--
}

// holdersOf is the set of appliances holding file fi.
func (sm *Sim) holdersOf(fi int32) bitset {
	return sm.fileHolders[int(fi)*sm.holderWords : int(fi+1)*sm.holderWords]
}

// placedBytes is the size of the distinct files placed anywhere.
func (sm *Sim) placedBytes() int64 {
	var n int64
	for fi, f := range sm.cat.files {
		if sm.listedEver.has(int32(fi)) {
			n += f.Size
		}
	}
	return n
}
