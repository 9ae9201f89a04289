package sim

import (
	"math"
	"math/rand/v2"
	"time"
)

// alias is Walker's alias table: O(1) draws from a discrete distribution.
// Each slot holds both of its outcomes, so a draw costs one cache miss on
// a large table (a big metro's prefixes).
type alias struct {
	slots []aliasSlot
}

type aliasSlot struct {
	prob        float32
	item, other int32 // what the slot stands for, and its alias's item
}

// len is the number of outcomes.
func (a *alias) len() int { return len(a.slots) }

func newAlias(items []int32, weight func(i int) float64) alias {
	n := len(items)
	prob, al := make([]float32, n), make([]int32, n)
	a := alias{slots: make([]aliasSlot, n)}
	if n == 0 {
		return a
	}
	total := 0.0
	p := make([]float64, n)
	for i := range p {
		p[i] = max(weight(i), 0)
		total += p[i]
	}
	if total <= 0 {
		for i := range p {
			p[i] = 1
		}
		total = float64(n)
	}
	small, large := make([]int32, 0, n), make([]int32, 0, n)
	for i := range p {
		p[i] = p[i] * float64(n) / total
		if p[i] < 1 {
			small = append(small, int32(i))
		} else {
			large = append(large, int32(i))
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		prob[s], al[s] = float32(p[s]), l
		p[l] -= 1 - p[s]
		if p[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, i := range large {
		prob[i], al[i] = 1, i
	}
	for _, i := range small {
		prob[i], al[i] = 1, i
	}
	for i := range a.slots {
		a.slots[i] = aliasSlot{prob: prob[i], item: items[i], other: items[al[i]]}
	}
	return a
}

func (a *alias) draw(rng *rand.Rand) int32 {
	u := rng.Float64() * float64(len(a.slots))
	i := int(u)
	s := &a.slots[i]
	if float32(u-float64(i)) < s.prob {
		return s.item
	}
	return s.other
}

// poisson draws a Poisson count with mean lambda (normal approximation
// above 64, which is what a step of a busy metro needs).
func poisson(rng *rand.Rand, lambda float64) int {
	switch {
	case lambda <= 0:
		return 0
	case lambda > 64:
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*rng.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// diurnal is the relative session-start rate at local time t: the hourly
// curve, normalised to mean 1, interpolated linearly.
type diurnal [24]float64

func newDiurnal(v []float64) diurnal {
	var d diurnal
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	for i := range d {
		d[i] = v[i] * 24 / sum
	}
	return d
}

func (d *diurnal) at(t time.Time) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60 + float64(t.Second())/3600 - 0.5
	if h < 0 {
		h += 24
	}
	i := int(h)
	f := h - float64(i)
	return d[i%24]*(1-f) + d[(i+1)%24]*f
}

// titleWeight is title ti's popularity in a region at t: Zipf by global
// rank, times a per-region log-normal factor (regional taste); a release
// starts at PeakRank's weight and halves every HalfLife, and is absent
// before it goes live.
func (sm *Sim) titleWeight(region, ti int, t time.Time) float64 {
	tt := &sm.cat.titles[ti]
	d := &sm.sc.Demand
	z := d.Zipf
	var w float64
	if tt.release.IsZero() {
		w = math.Pow(float64(tt.rank+1), -z)
	} else {
		if t.Before(tt.release) {
			return 0
		}
		age := t.Sub(tt.release)
		w = math.Pow(float64(d.Releases.PeakRank), -z) * math.Exp2(-age.Hours()/d.Releases.HalfLife.Hours())
	}
	if d.RegionalVariation > 0 {
		h := mix(sm.sc.Seed ^ mix(uint64(region)<<32|uint64(ti)) ^ 0x7e91)
		// Box–Muller from two hashed uniforms: a fixed taste per (region, title).
		u1, u2 := max(unit(h), 1e-12), unit(mix(h))
		n := math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
		w *= math.Exp(d.RegionalVariation*n - d.RegionalVariation*d.RegionalVariation/2)
	}
	return w
}

// buildTitleTables rebuilds every demand region's title table for time t.
func (sm *Sim) buildTitleTables(t time.Time) {
	items := make([]int32, len(sm.cat.titles))
	for i := range items {
		items[i] = int32(i)
	}
	for r := range sm.titleAlias {
		if sm.regionSubs[r] <= 0 {
			continue
		}
		sm.titleAlias[r] = newAlias(items, func(i int) float64 { return sm.titleWeight(r, i, t) })
	}
}

// meanWatch is the expected watch time of a title: an exponential with
// mean m, cut at the title's length.
func meanWatch(m, length time.Duration) time.Duration {
	return time.Duration(float64(m) * (1 - math.Exp(-float64(length)/float64(m))))
}
