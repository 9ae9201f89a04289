package stats

import (
	"math"
	"math/rand/v2"
	"slices"
)

// poisson1CDF is the CDF of Poisson(1) up to k = 19; the remaining mass
// (about 1e-18) is below float64 resolution of rng.Float64.
var poisson1CDF = func() [20]float64 {
	var c [20]float64
	p := math.Exp(-1)
	c[0] = p
	for k := 1; k < len(c); k++ {
		p /= float64(k)
		c[k] = c[k-1] + p
	}
	return c
}()

// poisson1 draws from Poisson(1) by inversion.
func poisson1(rng *rand.Rand) float64 {
	u := rng.Float64()
	for k, c := range poisson1CDF {
		if u < c {
			return float64(k)
		}
	}
	return float64(len(poisson1CDF))
}

// BootstrapCI returns a percentile bootstrap confidence interval at level
// for the statistic stat, using reps replicates with Poisson(1) weights:
// in each replicate observation i gets an independent Poisson(1) weight
// w_i and stat(x, w) is evaluated. This "Poisson bootstrap" approximates
// the multinomial resampling bootstrap for large n and, unlike it, needs no
// knowledge of n up front, so it also works on data that is streamed or
// merged from several sources (each source can draw its own weights).
//
// stat must treat w as observation weights, must not keep w (the slice is
// reused between replicates) and may return NaN for a degenerate replicate
// (for example all weights zero), which is then dropped.
//
// Assumptions: observations independent and identically distributed; the
// statistic smooth enough for the bootstrap to be consistent (means,
// quantiles of continuous data). The percentile interval is only
// approximately calibrated and under-covers at small n, especially for
// quantiles; for a single quantile prefer QuantileCI, which is exact. x is
// passed to stat as given and never modified. lo and hi are NaN when x is
// empty, reps < 1, level is outside (0, 1) or every replicate was NaN.
func BootstrapCI(x []float64, stat func(x, w []float64) float64, level float64, reps int, rng *rand.Rand) (lo, hi float64) {
	if len(x) == 0 || reps < 1 || !(level > 0 && level < 1) {
		return math.NaN(), math.NaN()
	}
	w := make([]float64, len(x))
	res := make([]float64, 0, reps)
	for range reps {
		for i := range w {
			w[i] = poisson1(rng)
		}
		if v := stat(x, w); !math.IsNaN(v) {
			res = append(res, v)
		}
	}
	if len(res) == 0 {
		return math.NaN(), math.NaN()
	}
	slices.Sort(res)
	alpha := 1 - level
	return quantileType7(res, alpha/2), quantileType7(res, 1-alpha/2)
}

// BootstrapMedianCI is BootstrapCI for the median: est is the sample
// median and [lo, hi] the Poisson-bootstrap percentile interval of the
// weighted median (see WeightedQuantile). x is not modified. The same
// caveats as BootstrapCI apply; QuantileCI(x, 0.5, level) is the exact
// alternative when the data is at hand rather than streamed.
func BootstrapMedianCI(x []float64, level float64, reps int, rng *rand.Rand) (lo, est, hi float64) {
	if len(x) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	s := slices.Clone(x)
	slices.Sort(s)
	// Sorting once here lets every replicate use the linear-time weighted
	// quantile instead of sorting again.
	lo, hi = BootstrapCI(s, func(x, w []float64) float64 {
		return weightedQuantileSorted(x, w, 0.5)
	}, level, reps, rng)
	return lo, quantileType7(s, 0.5), hi
}

// pairedDiffs returns a_i − b_i, or ok=false if the lengths differ or a
// difference is NaN.
func pairedDiffs(a, b []float64) ([]float64, bool) {
	if len(a) != len(b) {
		return nil, false
	}
	d := make([]float64, len(a))
	for i := range a {
		d[i] = a[i] - b[i]
		if math.IsNaN(d[i]) {
			return nil, false
		}
	}
	return d, true
}

// PairedMedianDiffCI returns a confidence interval at level for the
// population median of the paired differences d_i = a_i − b_i (a_i and b_i
// measured for the same client, e.g. connect time via site A and site B),
// with est the sample median of d. It is QuantileCI applied to d, so its
// coverage is exact (≥ level) for any distribution of differences, given
// independent pairs. This is the interval the project uses for "would
// steering client X to B be better"; BootstrapPairedMedianDiffCI is the
// approximate alternative for merged/streamed data. ok is false when the
// lengths differ, a difference is NaN, or there are fewer pairs than
// MinSamples(0.5, level).
func PairedMedianDiffCI(a, b []float64, level float64) (lo, est, hi float64, ok bool) {
	d, ok := pairedDiffs(a, b)
	if !ok {
		return math.NaN(), math.NaN(), math.NaN(), false
	}
	slices.Sort(d)
	return QuantileCI(d, 0.5, level)
}

// BootstrapPairedMedianDiffCI is the Poisson-bootstrap percentile interval
// for the median of d_i = a_i − b_i: each pair, not each value, gets the
// replicate weight, which keeps the within-client correlation. est is the
// sample median of d. Percentile intervals for medians under-cover at
// small n (see the package tests for measured coverage); prefer
// PairedMedianDiffCI when the pairs are at hand.
func BootstrapPairedMedianDiffCI(a, b []float64, level float64, reps int, rng *rand.Rand) (lo, est, hi float64, ok bool) {
	d, ok := pairedDiffs(a, b)
	if !ok || len(d) == 0 {
		return math.NaN(), math.NaN(), math.NaN(), false
	}
	lo, est, hi = BootstrapMedianCI(d, level, reps, rng)
	return lo, est, hi, !math.IsNaN(lo)
}
