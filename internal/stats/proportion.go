package stats

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// ProportionCI returns the Clopper–Pearson ("exact") confidence interval
// at level for a population proportion from k successes in n independent
// trials, and the point estimate k/n. It inverts the binomial test, so
// its coverage is at least level for every true proportion (conservative,
// never anti-conservative, which matters for the small per-ISP counts of
// resolver shares). ok is false when n < 1, k is outside [0, n] or level
// is not inside (0, 1).
func ProportionCI(k, n int, level float64) (lo, est, hi float64, ok bool) {
	if n < 1 || k < 0 || k > n || !(level > 0 && level < 1) {
		return math.NaN(), math.NaN(), math.NaN(), false
	}
	alpha := 1 - level
	est = float64(k) / float64(n)
	lo, hi = 0, 1
	if k > 0 {
		lo = distuv.Beta{Alpha: float64(k), Beta: float64(n - k + 1)}.Quantile(alpha / 2)
	}
	if k < n {
		hi = distuv.Beta{Alpha: float64(k + 1), Beta: float64(n - k)}.Quantile(1 - alpha/2)
	}
	return lo, est, hi, true
}
