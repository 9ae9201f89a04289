package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestProportionCIReference(t *testing.T) {
	// Reference values from R: binom.test(k, n)$conf.int (Clopper–Pearson).
	for _, tc := range []struct {
		k, n   int
		lo, hi float64
	}{
		{0, 10, 0, 0.3084971},
		{10, 10, 0.6915029, 1},
		{3, 10, 0.06673951, 0.65245285},
		{50, 100, 0.3983211, 0.6016789},
	} {
		lo, est, hi, ok := ProportionCI(tc.k, tc.n, 0.95)
		if !ok || math.Abs(lo-tc.lo) > 1e-6 || math.Abs(hi-tc.hi) > 1e-6 || est != float64(tc.k)/float64(tc.n) {
			t.Errorf("ProportionCI(%d, %d) = [%.7f, %.7f] est %v ok %v, want [%.7f, %.7f]", tc.k, tc.n, lo, hi, est, ok, tc.lo, tc.hi)
		}
	}
	for _, bad := range [][2]int{{0, 0}, {-1, 5}, {6, 5}} {
		if _, _, _, ok := ProportionCI(bad[0], bad[1], 0.95); ok {
			t.Errorf("ProportionCI(%d, %d) ok", bad[0], bad[1])
		}
	}
}

// The interval covers the true proportion at least at its level.
func TestProportionCICoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, p := range []float64{0.02, 0.3, 0.5} {
		const trials, n = 2000, 40
		covered := 0
		for range trials {
			k := 0
			for range n {
				if rng.Float64() < p {
					k++
				}
			}
			lo, _, hi, _ := ProportionCI(k, n, 0.95)
			if lo <= p && p <= hi {
				covered++
			}
		}
		// Conservative by construction; allow sampling noise of the check
		// itself (3 standard errors of 2000 trials at 95%).
		if c := float64(covered) / trials; c < 0.95-3*math.Sqrt(0.95*0.05/trials) {
			t.Errorf("p=%v: coverage %.3f, want at least 0.95", p, c)
		}
	}
}
