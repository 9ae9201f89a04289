package sim

import (
	"context"
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"
)

// fillStep lets every appliance that is up fill its manifest delta for
// the step [t, end): inside its site's window (internal/fill's Window in
// the site's zone) at the rate cap, outside it only urgent files under
// the out-of-cycle budget. Sources follow the control plane's fill plan:
// a peer of the site holding the file, else another site, else the
// origin; while no peer holds it only the site's designated fetcher goes
// farther, and while no site holds it only the CDN's designated fetcher
// uses the origin, until EscalateAfter of waiting. It returns the bytes
// moved by source.
func (sm *Sim) fillStep(t, end time.Time) [nFill]int64 {
	var out [nFill]int64
	budget0 := int64(sm.sc.Fill.RateGbps * 1e9 / 8 * end.Sub(t).Seconds())
	for _, a := range sm.st.apps {
		s := sm.st.sites[a.site]
		if a.down > 0 || s.down > 0 {
			continue
		}
		if len(a.missing) == 0 {
			if a.dirty {
				sm.dropUnlisted(a)
			}
			continue
		}
		open := sm.forceOpen || sm.windows[a.site].Open(t)
		budget := budget0
		keep := a.missing[:0]
		for _, fi := range a.missing {
			if a.holds.has(fi) || !a.listed.has(fi) {
				continue
			}
			size := sm.cat.files[fi].Size
			if budget <= 0 || (!open && !sm.urgent[fi]) {
				keep = append(keep, fi)
				continue
			}
			if !open {
				if c := sm.cycle(a.site, t); c != a.oocCycle {
					a.oocCycle, a.oocSpent = c, 0
				}
				if a.oocSpent+size > int64(sm.sc.Fill.OutOfCycle) {
					keep = append(keep, fi)
					continue
				}
			}
			src, ok := sm.fillSource(a, fi, t)
			if !ok {
				keep = append(keep, fi)
				continue
			}
			done := a.partial[fi]
			if done == 0 && !sm.makeRoom(a, size) {
				keep = append(keep, fi) // full: the store refuses until space frees
				continue
			}
			n := min(size-done, budget)
			budget -= n
			out[src] += n
			a.dayFill += n
			sm.results.siteFill[a.site][src] += n
			if !open {
				a.oocSpent += n
			}
			if done+n >= size {
				delete(a.partial, fi)
				delete(a.waitFrom, fi)
				sm.gain(a, fi)
			} else {
				a.partial[fi] = done + n
				keep = append(keep, fi)
			}
		}
		a.missing = keep
		if len(a.missing) == 0 && a.dirty {
			sm.dropUnlisted(a)
		}
	}
	return out
}

// cycle names the window occurrence t belongs to in a site's zone.
func (sm *Sim) cycle(site int, t time.Time) string {
	lt := t.In(sm.st.sites[site].loc)
	if lt.Hour() < sm.sc.Fill.StartHour {
		lt = lt.AddDate(0, 0, -1)
	}
	return lt.Format("2006-01-02")
}

// fillSource is where appliance a fetches file fi from at now, or false
// when it is to wait for a closer copy (control plane: handleFill).
func (sm *Sim) fillSource(a *app, fi int32, now time.Time) (int, bool) {
	s := sm.st.sites[a.site]
	inSite := 0
	for _, pi := range s.apps {
		p := sm.st.apps[pi]
		if p == a || !p.holds.has(fi) {
			continue
		}
		inSite++
		if p.down == 0 && (p.st.State == "up" || p.st.State == "degraded") {
			return fillPeer, true
		}
	}
	otherSites := sm.holders[fi] > int32(inSite)
	wait := false
	if sm.siteFetcher(a, fi) != a {
		wait = true // a peer will fetch it; take it from the peer
	} else if !otherSites && sm.fetcher[fi] >= 0 && sm.st.apps[sm.fetcher[fi]] != a && sm.st.apps[sm.fetcher[fi]].down == 0 {
		wait = true // another site will fetch it from the origin
	}
	if wait {
		since, ok := a.waitFrom[fi]
		if !ok {
			a.waitFrom[fi] = now
			since = now
		}
		if now.Sub(since) < sm.sc.Fill.EscalateAfter {
			return 0, false
		}
	}
	if otherSites {
		return fillTier, true
	}
	return fillOrigin, true
}

// rankKey orders appliances for a file as placement.Rank does with equal
// weights (the control plane ranks fill listers with Capacity 1): the
// highest hash of path "\x00" id comes first.
func rankKey(path, id string) uint64 {
	var d xxhash.Digest
	d.Reset()
	d.WriteString(path)
	d.WriteString("\x00")
	d.WriteString(id)
	return d.Sum64() >> 11
}

// siteFetcher is the site's designated fetcher of fi: the first in
// rendezvous order among a and the site's live appliances listing fi.
func (sm *Sim) siteFetcher(a *app, fi int32) *app {
	path := sm.cat.files[fi].Path
	best, bestKey := a, rankKey(path, a.id)
	for _, pi := range sm.st.sites[a.site].apps {
		p := sm.st.apps[pi]
		if p == a || p.down > 0 || !p.listed.has(fi) {
			continue
		}
		if k := rankKey(path, p.id); k > bestKey {
			best, bestKey = p, k
		}
	}
	return best
}

// designateFetchers picks, per file, the CDN's designated origin fetcher
// among the appliances listing it (control plane: FillFetcher).
func (sm *Sim) designateFetchers() {
	if sm.fetcher == nil {
		sm.fetcher = make([]int32, len(sm.cat.files))
	}
	keys := make([]uint64, len(sm.cat.files))
	for i := range sm.fetcher {
		sm.fetcher[i] = -1
	}
	for ai, a := range sm.st.apps {
		a.dirty = true
		if a.down > 0 {
			continue // the control plane ranks only live listers
		}
		for _, fi := range a.manifest {
			if k := rankKey(sm.cat.files[fi].Path, a.id); sm.fetcher[fi] < 0 || k > keys[fi] {
				sm.fetcher[fi], keys[fi] = int32(ai), k
			}
		}
	}
}

// makeRoom frees space for size bytes on a by removing files its manifest
// no longer lists (the store's eviction by manifest).
func (sm *Sim) makeRoom(a *app, size int64) bool {
	if a.held+size <= a.storage {
		return true
	}
	for w, word := range a.holds {
		for word != 0 {
			b := int32(w*64) + int32(trailingZeros(word))
			word &= word - 1
			if !a.listed.has(b) {
				sm.lose(a, b)
				if a.held+size <= a.storage {
					return true
				}
			}
		}
	}
	return a.held+size <= a.storage
}

// dropUnlisted removes files no longer listed once every listed file has
// landed (the fill agent's rule).
func (sm *Sim) dropUnlisted(a *app) {
	for w, word := range a.holds {
		for word != 0 {
			b := int32(w*64) + int32(trailingZeros(word))
			word &= word - 1
			if !a.listed.has(b) {
				sm.lose(a, b)
			}
		}
	}
	a.dirty = false
}

// prefill fills every manifest before t0 with the windows open (the lab
// waits for fill before its clients stream).
func (sm *Sim) prefill(ctx context.Context, t0 time.Time) error {
	sm.forceOpen = true
	defer func() { sm.forceOpen = false }()
	step := sm.sc.Step
	t := t0.Add(-10000 * step)
	for i := 0; i < 10000; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		pending := 0
		for _, a := range sm.st.apps {
			pending += len(a.missing)
		}
		if pending == 0 {
			return nil
		}
		b := sm.fillStep(t, t.Add(step))
		for i, v := range b {
			sm.results.prefill[i] += v
		}
		sm.results.prefillSeconds += step.Seconds()
		t = t.Add(step)
	}
	return fmt.Errorf("prefill: manifests not filled after 10000 steps")
}
