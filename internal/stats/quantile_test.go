package stats

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMinSamples(t *testing.T) {
	for _, tc := range []struct {
		q, level float64
		want     int
	}{
		{0.5, 0.95, 6},  // 1 − 2·0.5^6 = 0.969; n = 5 gives 0.9375
		{0.5, 0.99, 8},  // 0.5^7·2 = 0.0156 > 0.01
		{0.9, 0.95, 29}, // 0.9^29 + 0.1^29 = 0.0471; 0.9^28 = 0.0523
		{0.99, 0.95, 299},
		{0.1, 0.95, 29}, // symmetric in q ↔ 1−q
		{0, 0.95, 0},
		{1, 0.95, 0},
		{0.5, 1, 0},
	} {
		if got := MinSamples(tc.q, tc.level); got != tc.want {
			t.Errorf("MinSamples(%g, %g) = %d, want %d", tc.q, tc.level, got, tc.want)
		}
	}
}

// bruteRanks searches every pair of ranks with an independently computed
// binomial pmf (log-gamma), as a cross-check of orderStatRanks.
func bruteRanks(n int, q, level float64) (l, u int, ok bool) {
	pmf := make([]float64, n+1)
	for k := 0; k <= n; k++ {
		lg1, _ := math.Lgamma(float64(n + 1))
		lg2, _ := math.Lgamma(float64(k + 1))
		lg3, _ := math.Lgamma(float64(n - k + 1))
		pmf[k] = math.Exp(lg1 - lg2 - lg3 + float64(k)*math.Log(q) + float64(n-k)*math.Log1p(-q))
	}
	cdf := func(k int) float64 { // F(k)
		s := 0.0
		for i := 0; i <= k; i++ {
			s += pmf[i]
		}
		return s
	}
	bestW, bestBal := n+1, math.Inf(1)
	for a := 1; a < n; a++ {
		for b := a + 1; b <= n; b++ {
			cov := cdf(b-1) - cdf(a-1)
			if cov < level-1e-12 {
				continue
			}
			bal := math.Abs(cdf(a-1) - (1 - cdf(b-1)))
			if b-a < bestW || (b-a == bestW && bal < bestBal-1e-12) {
				bestW, bestBal, l, u, ok = b-a, bal, a, b, true
			}
			break // larger b is only wider
		}
	}
	return l, u, ok
}

func TestOrderStatRanksMatchBruteForce(t *testing.T) {
	for _, n := range []int{5, 6, 7, 10, 20, 37, 101, 150} {
		for _, q := range []float64{0.1, 0.25, 0.5, 0.9, 0.95} {
			for _, level := range []float64{0.9, 0.95, 0.99} {
				l, u, ok := orderStatRanks(n, q, level)
				bl, bu, bok := bruteRanks(n, q, level)
				if diff := cmp.Diff([3]any{bl, bu, bok}, [3]any{l, u, ok}); diff != "" && (ok || bok) {
					t.Errorf("orderStatRanks(%d, %g, %g) mismatch (-brute +got):\n%s", n, q, level, diff)
				}
			}
		}
	}
	// The textbook case: median of 101 at 95% is [X_(41), X_(61)].
	if l, u, _ := orderStatRanks(101, 0.5, 0.95); l != 41 || u != 61 {
		t.Errorf("orderStatRanks(101, 0.5, 0.95) = (%d, %d), want (41, 61)", l, u)
	}
}

func TestQuantileCIEdgeCases(t *testing.T) {
	x5 := []float64{1, 2, 3, 4, 5}
	if _, _, _, ok := QuantileCI(x5, 0.5, 0.95); ok {
		t.Errorf("QuantileCI(n=5, median, 95%%) ok = true, want false (needs n ≥ 6)")
	}
	lo, est, hi, ok := QuantileCI([]float64{1, 2, 3, 4, 5, 6}, 0.5, 0.95)
	if !ok || lo != 1 || est != 3.5 || hi != 6 {
		t.Errorf("QuantileCI(1..6, 0.5, 0.95) = %g, %g, %g, %v, want 1, 3.5, 6, true", lo, est, hi, ok)
	}
	same := slices.Repeat([]float64{7}, 50)
	lo, est, hi, ok = QuantileCI(same, 0.9, 0.95)
	if !ok || lo != 7 || est != 7 || hi != 7 {
		t.Errorf("QuantileCI(all 7, 0.9, 0.95) = %g, %g, %g, %v, want 7, 7, 7, true", lo, est, hi, ok)
	}
	// Unsorted input: same answer as sorted, input untouched.
	rng := rand.New(rand.NewPCG(7, 7))
	x := lognormalSample(rng, 60, 0, 1)
	orig := slices.Clone(x)
	s := slices.Sorted(slices.Values(x))
	l1, e1, h1, ok1 := QuantileCI(x, 0.5, 0.95)
	l2, e2, h2, ok2 := QuantileCI(s, 0.5, 0.95)
	if diff := cmp.Diff([]any{l2, e2, h2, ok2}, []any{l1, e1, h1, ok1}); diff != "" {
		t.Errorf("QuantileCI(unsorted) differs from sorted (-sorted +unsorted):\n%s", diff)
	}
	if !slices.Equal(x, orig) {
		t.Errorf("QuantileCI modified its input")
	}
	for _, tc := range []struct {
		name     string
		x        []float64
		q, level float64
	}{
		{"empty", nil, 0.5, 0.95},
		{"NaN", []float64{1, 2, math.NaN(), 4, 5, 6, 7}, 0.5, 0.95},
		{"q=0", s, 0, 0.95},
		{"q=1", s, 1, 0.95},
		{"level=1", s, 0.5, 1},
	} {
		if _, _, _, ok := QuantileCI(tc.x, tc.q, tc.level); ok {
			t.Errorf("QuantileCI(%s) ok = true, want false", tc.name)
		}
	}
}

// coverage runs trials of ci against the known truth and returns the
// fraction of intervals that contain it.
func coverage(trials int, ci func() (lo, hi float64, ok bool), truth float64) (float64, int) {
	hit, bad := 0, 0
	for range trials {
		lo, hi, ok := ci()
		if !ok {
			bad++
			continue
		}
		if lo <= truth && truth <= hi {
			hit++
		}
	}
	return float64(hit) / float64(trials), bad
}

// TestQuantileCICoverage is an acceptance target: the 95% interval for the
// median of lognormal data (n = 101, true median e^μ) covers in [0.93, 0.97]
// of 1,000 trials.
func TestQuantileCICoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	const mu, sigma = 3.5, 0.7 // connect times around 33 ms
	for _, tc := range []struct {
		q        float64
		n        int
		min, max float64
	}{
		{0.5, 101, 0.93, 0.97},
		// Higher quantiles: the discreteness of the ranks makes the
		// interval conservative, so only the lower bound is a target.
		{0.9, 200, 0.93, 1},
	} {
		truth := math.Exp(mu + sigma*normalQuantile(tc.q))
		got, bad := coverage(1000, func() (float64, float64, bool) {
			x := lognormalSample(rng, tc.n, mu, sigma)
			slices.Sort(x)
			lo, _, hi, ok := QuantileCI(x, tc.q, 0.95)
			return lo, hi, ok
		}, truth)
		t.Logf("QuantileCI q=%g n=%d level=0.95: coverage %.3f over 1000 trials", tc.q, tc.n, got)
		if bad > 0 || got < tc.min || got > tc.max {
			t.Errorf("QuantileCI(q=%g, n=%d) coverage = %.3f (%d not ok), want in [%g, %g]", tc.q, tc.n, got, bad, tc.min, tc.max)
		}
	}
}

func normalQuantile(p float64) float64 { return math.Sqrt2 * math.Erfinv(2*p-1) }

func TestWeightedQuantile(t *testing.T) {
	for _, tc := range []struct {
		name string
		x, w []float64
		q    float64
		want float64
	}{
		{"odd unit", []float64{3, 1, 2}, []float64{1, 1, 1}, 0.5, 2},
		{"even unit", []float64{4, 1, 3, 2}, []float64{1, 1, 1, 1}, 0.5, 2.5},
		{"heavy high", []float64{1, 2, 3}, []float64{1, 1, 5}, 0.5, 3},
		{"zero weights skipped", []float64{1, 2, 3, 4}, []float64{1, 0, 1, 0}, 0.5, 2},
		{"poisson-like", []float64{10, 20, 30, 40}, []float64{0, 2, 1, 1}, 0.5, 25},
		{"q=0", []float64{5, 1, 9}, []float64{1, 1, 1}, 0, 1},
		{"q=1", []float64{5, 1, 9}, []float64{1, 1, 1}, 1, 9},
		{"p90", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, slices.Repeat([]float64{1}, 10), 0.9, 9.5},
	} {
		if got := WeightedQuantile(tc.x, tc.w, tc.q); got != tc.want {
			t.Errorf("WeightedQuantile(%s: %v, %v, %g) = %g, want %g", tc.name, tc.x, tc.w, tc.q, got, tc.want)
		}
	}
	if got := WeightedQuantile([]float64{1, 2}, []float64{0, 0}, 0.5); !math.IsNaN(got) {
		t.Errorf("WeightedQuantile(zero total weight) = %g, want NaN", got)
	}
	if got := WeightedQuantile([]float64{1, 2}, []float64{1}, 0.5); !math.IsNaN(got) {
		t.Errorf("WeightedQuantile(length mismatch) = %g, want NaN", got)
	}
}
