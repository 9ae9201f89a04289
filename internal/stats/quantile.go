package stats

import (
	"math"
	"slices"
	"sort"

	"gonum.org/v1/gonum/stat/distuv"
)

// QuantileCI returns a distribution-free confidence interval [lo, hi] for
// the population q-quantile ξ_q, and the point estimate est (the sample
// quantile with linear interpolation, R's type 7).
//
// Method: with n observations, the number B of observations ≤ ξ_q is
// Binomial(n, q), so for order statistics X_(l) and X_(u)
//
//	P(X_(l) ≤ ξ_q < X_(u)) = P(l ≤ B ≤ u−1) = F(u−1) − F(l−1),
//
// computed exactly from the binomial CDF. Among rank pairs l < u meeting
// level, QuantileCI picks the narrowest in ranks and, among those, the one
// whose two tail probabilities are closest to equal. For the median that is
// the symmetric pair (l + u = n + 1) when one of the narrowest width exists,
// otherwise a pair one rank off it (ties go to the lower pair); e.g. the
// 95% interval for the median of 101 values is [X_(41), X_(61)]. The coverage is exact for continuous data and
// conservative (≥ level) for data with ties; nothing is assumed about the
// shape of the distribution, only that the observations are independent
// and identically distributed.
//
// sorted should be in ascending order; if it is not, a sorted copy is used
// (the input is never modified). ok is false when the data contains NaN,
// when q is not strictly inside (0, 1), when level is not inside (0, 1), or
// when n is too small for any pair of order statistics to reach level (see
// MinSamples; the median at 95% needs n ≥ 6). In that last case est is
// still returned, since the point estimate needs only one observation.
func QuantileCI(sorted []float64, q, level float64) (lo, est, hi float64, ok bool) {
	nan := math.NaN()
	if !(q > 0 && q < 1) || !(level > 0 && level < 1) {
		return nan, nan, nan, false
	}
	for _, v := range sorted {
		if math.IsNaN(v) {
			return nan, nan, nan, false
		}
	}
	x := sorted
	if !slices.IsSorted(x) {
		x = slices.Clone(sorted)
		slices.Sort(x)
	}
	n := len(x)
	if n == 0 {
		return nan, nan, nan, false
	}
	est = quantileType7(x, q)
	l, u, ok := orderStatRanks(n, q, level)
	if !ok {
		return nan, est, nan, false
	}
	return x[l-1], est, x[u-1], true
}

// orderStatRanks returns 1-based ranks l < u for QuantileCI.
func orderStatRanks(n int, q, level float64) (l, u int, ok bool) {
	if 1-math.Pow(q, float64(n))-math.Pow(1-q, float64(n)) < level {
		return 0, 0, false
	}
	b := distuv.Binomial{N: float64(n), P: q}
	// Only ranks near nq can be part of the narrowest interval; restricting
	// the search to ±(10 sd + 50) keeps large n cheap. Every probability
	// used is still the exact CDF, so this changes speed, not coverage.
	mean, sd := float64(n)*q, math.Sqrt(float64(n)*q*(1-q))
	half := 10*sd + 50
	kmin := max(0, int(math.Floor(mean-half)))
	kmax := min(n, int(math.Ceil(mean+half)))
	// cdf[k-kmin+1] = F(k) for k in [kmin-1, kmax].
	cdf := make([]float64, kmax-kmin+2)
	for k := kmin - 1; k <= kmax; k++ {
		if k < 0 {
			cdf[k-kmin+1] = 0
			continue
		}
		cdf[k-kmin+1] = b.CDF(float64(k))
	}
	F := func(k int) float64 { return cdf[k-kmin+1] }

	bestW, bestBal := math.MaxInt, math.Inf(1)
	uu := 2
	for ll := max(kmin, 1); ll < n && ll <= kmax; ll++ {
		if uu <= ll {
			uu = ll + 1
		}
		// Smallest uu with F(uu−1) − F(ll−1) ≥ level; it never decreases
		// as ll grows, so one pass suffices.
		for uu < n && (uu-1 < kmax && F(uu-1)-F(ll-1) < level) {
			uu++
		}
		if uu-1 > kmax || F(uu-1)-F(ll-1) < level {
			break
		}
		w := uu - ll
		bal := math.Abs(F(ll-1) - (1 - F(uu-1)))
		// Mirror-image pairs have equal balance up to rounding; the
		// tolerance makes the lower one win on every platform.
		if w < bestW || (w == bestW && bal < bestBal-1e-12) {
			bestW, bestBal, l, u, ok = w, bal, ll, uu, true
		}
	}
	if !ok {
		// Unreachable: [X_(1), X_(n)] meets level by the check above and
		// lies inside the window whenever it is the only choice.
		return 1, n, true
	}
	return l, u, true
}

// MinSamples returns the smallest n for which QuantileCI can reach level for
// the q-quantile, that is the smallest n with 1 − q^n − (1−q)^n ≥ level (the
// coverage of [X_(1), X_(n)]). It returns 0 when no n suffices (q or level
// outside (0, 1)).
func MinSamples(q, level float64) int {
	if !(q > 0 && q < 1) || !(level > 0 && level < 1) {
		return 0
	}
	m := math.Max(q, 1-q)
	// q^n + (1−q)^n ≤ 2 m^n gives an upper bound; m^n alone a lower one.
	lower := int(math.Floor(math.Log(1-level) / math.Log(m)))
	upper := int(math.Ceil(math.Log((1-level)/2)/math.Log(m))) + 1
	for n := max(lower, 1); n <= upper; n++ {
		if 1-math.Pow(q, float64(n))-math.Pow(1-q, float64(n)) >= level {
			return n
		}
	}
	return upper
}

// quantileType7 is the linearly interpolated sample quantile of sorted x.
func quantileType7(x []float64, q float64) float64 {
	h := float64(len(x)-1) * q
	i := int(math.Floor(h))
	if i >= len(x)-1 {
		return x[len(x)-1]
	}
	return x[i] + (h-float64(i))*(x[i+1]-x[i])
}

// WeightedQuantile returns the q-quantile of x under non-negative weights w
// (len(w) == len(x); x need not be sorted and is not modified): the
// smallest x whose cumulative weight reaches q·Σw, averaged with the next
// value when the cumulative weight hits q·Σw exactly. With unit weights this
// is the usual sample median for q = 0.5 (mean of the two middle values for
// even n). It returns NaN when the total weight is zero, q is outside
// [0, 1] or the lengths differ.
func WeightedQuantile(x, w []float64, q float64) float64 {
	if len(x) != len(w) || !(q >= 0 && q <= 1) {
		return math.NaN()
	}
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return x[idx[a]] < x[idx[b]] })
	xs := make([]float64, len(x))
	ws := make([]float64, len(x))
	for i, j := range idx {
		xs[i], ws[i] = x[j], w[j]
	}
	return weightedQuantileSorted(xs, ws, q)
}

// weightedQuantileSorted is WeightedQuantile for x already in ascending
// order; the bootstrap calls it once per replicate, so it does not sort.
func weightedQuantileSorted(x, w []float64, q float64) float64 {
	var total float64
	for _, v := range w {
		total += v
	}
	if !(total > 0) {
		return math.NaN()
	}
	target := q * total
	// Relative tolerance so that, e.g., 0.5·(1+1+1+1) is hit exactly after
	// summing integer weights.
	eps := 1e-12 * total
	var cum float64
	for i, wi := range w {
		if wi <= 0 {
			continue
		}
		cum += wi
		if cum >= target-eps {
			if math.Abs(cum-target) <= eps && q < 1 {
				for j := i + 1; j < len(x); j++ {
					if w[j] > 0 {
						return (x[i] + x[j]) / 2
					}
				}
			}
			return x[i]
		}
	}
	// Only reachable through rounding when q = 1.
	for i := len(x) - 1; i >= 0; i-- {
		if w[i] > 0 {
			return x[i]
		}
	}
	return math.NaN()
}
