package stats

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func TestPoisson1Moments(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	const n = 200000
	var s, ss float64
	for range n {
		k := poisson1(rng)
		s += k
		ss += k * k
	}
	mean := s / n
	variance := ss/n - mean*mean
	// Standard errors are about 0.0022 (mean) and 0.0045 (variance).
	if math.Abs(mean-1) > 0.01 || math.Abs(variance-1) > 0.02 {
		t.Errorf("poisson1: mean %.4f, variance %.4f, want 1, 1", mean, variance)
	}
}

func TestBootstrapCIDeterministicAndDegenerate(t *testing.T) {
	x := lognormalSample(rand.New(rand.NewPCG(10, 10)), 50, 0, 1)
	mean := func(x, w []float64) float64 {
		var s, sw float64
		for i := range x {
			s += w[i] * x[i]
			sw += w[i]
		}
		if sw == 0 {
			return math.NaN()
		}
		return s / sw
	}
	lo1, hi1 := BootstrapCI(x, mean, 0.95, 200, rand.New(rand.NewPCG(1, 2)))
	lo2, hi2 := BootstrapCI(x, mean, 0.95, 200, rand.New(rand.NewPCG(1, 2)))
	if lo1 != lo2 || hi1 != hi2 || !(lo1 < hi1) {
		t.Errorf("BootstrapCI with the same seed = [%g, %g] then [%g, %g], want equal and non-empty", lo1, hi1, lo2, hi2)
	}
	for _, tc := range []struct {
		name  string
		x     []float64
		level float64
		reps  int
	}{
		{"empty", nil, 0.95, 100},
		{"no reps", x, 0.95, 0},
		{"level 1", x, 1, 100},
	} {
		lo, hi := BootstrapCI(tc.x, mean, tc.level, tc.reps, rand.New(rand.NewPCG(1, 2)))
		if !math.IsNaN(lo) || !math.IsNaN(hi) {
			t.Errorf("BootstrapCI(%s) = [%g, %g], want NaN", tc.name, lo, hi)
		}
	}
	if _, _, _, ok := PairedMedianDiffCI([]float64{1, 2}, []float64{1}, 0.95); ok {
		t.Errorf("PairedMedianDiffCI(length mismatch) ok = true, want false")
	}
}

// pairedSample returns per-client pairs whose differences a−b have median
// exactly delta: a client's baseline c (lognormal, ~50 ms) is shared by both
// arms, and the difference is delta plus skewed noise with median 0.
func pairedSample(rng *rand.Rand, n int, delta float64) (a, b []float64) {
	a, b = make([]float64, n), make([]float64, n)
	for i := range n {
		c := math.Exp(math.Log(50) + 0.5*rng.NormFloat64())
		e := 10 * (math.Exp(0.6*rng.NormFloat64()) - 1) // lognormal − its median
		a[i], b[i] = c+delta+e, c
	}
	return a, b
}

// TestPairedMedianDiffCoverage is an acceptance target: 95% intervals for
// the median of paired differences cover the known median in [0.93, 0.97]
// of 1,000 trials. The exact order-statistic interval on the differences
// (PairedMedianDiffCI) is the one the project relies on; the Poisson
// bootstrap percentile interval is held to the same target at n = 25 and
// n = 101 (with this skewed noise it reached 0.945 and 0.942).
func TestPairedMedianDiffCoverage(t *testing.T) {
	const delta, trials = 5.0, 1000
	t.Run("order statistics n=101", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(11, 11))
		got, bad := coverage(trials, func() (float64, float64, bool) {
			a, b := pairedSample(rng, 101, delta)
			lo, _, hi, ok := PairedMedianDiffCI(a, b, 0.95)
			return lo, hi, ok
		}, delta)
		t.Logf("PairedMedianDiffCI n=101 level=0.95: coverage %.3f over %d trials", got, trials)
		if bad > 0 || got < 0.93 || got > 0.97 {
			t.Errorf("PairedMedianDiffCI coverage = %.3f (%d not ok), want in [0.93, 0.97]", got, bad)
		}
	})
	for _, n := range []int{25, 101} {
		t.Run(fmt.Sprintf("poisson bootstrap n=%d", n), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(12, uint64(n)))
			got, bad := coverage(trials, func() (float64, float64, bool) {
				a, b := pairedSample(rng, n, delta)
				lo, _, hi, ok := BootstrapPairedMedianDiffCI(a, b, 0.95, 400, rng)
				return lo, hi, ok
			}, delta)
			t.Logf("BootstrapPairedMedianDiffCI n=%d reps=400 level=0.95: coverage %.3f over %d trials", n, got, trials)
			if bad > 0 || got < 0.93 || got > 0.97 {
				t.Errorf("BootstrapPairedMedianDiffCI(n=%d) coverage = %.3f (%d not ok), want in [0.93, 0.97]", n, got, bad)
			}
		})
	}
}

func BenchmarkBootstrapMedianCI(b *testing.B) {
	rng := rand.New(rand.NewPCG(13, 13))
	x := lognormalSample(rng, 1000, 3, 1)
	b.ReportAllocs()
	for b.Loop() {
		BootstrapMedianCI(x, 0.95, 1000, rng)
	}
}
