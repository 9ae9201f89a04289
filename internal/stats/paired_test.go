package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

func closeTo(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

// diffs builds pairs (d_i, 0) so tests can state the differences directly.
func diffs(d ...float64) (a, b []float64) { return d, make([]float64, len(d)) }

func TestSignTestReference(t *testing.T) {
	for _, tc := range []struct {
		name  string
		d     []float64
		wantN int
		wantK float64
		wantP float64
	}{
		// binom.test(9, 10): 2·(1+10)/1024.
		{"9 of 10 positive", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, -1}, 10, 9, 22.0 / 1024},
		// binom.test(8, 10): 2·(1+10+45)/1024.
		{"8 of 10 positive", []float64{1, 2, 3, 4, 5, 6, 7, 8, -1, -2}, 10, 8, 112.0 / 1024},
		{"zeros dropped", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, -1, 0, 0, 0}, 10, 9, 22.0 / 1024},
		{"balanced", []float64{1, -1, 2, -2}, 4, 2, 1},
		{"all zero", []float64{0, 0}, 0, 0, 1},
		// 0 of 6 positive: 2·(1/64).
		{"all negative", []float64{-1, -2, -3, -4, -5, -6}, 6, 0, 2.0 / 64},
	} {
		r, ok := SignTest(diffs(tc.d...))
		if !ok || r.N != tc.wantN || r.Statistic != tc.wantK || !closeTo(r.P, tc.wantP, 1e-12) || !r.Exact {
			t.Errorf("SignTest(%s) = %+v, %v, want N=%d k=%g P=%.6f exact", tc.name, r, ok, tc.wantN, tc.wantK, tc.wantP)
		}
	}
	if _, ok := SignTest([]float64{1}, []float64{1, 2}); ok {
		t.Errorf("SignTest(length mismatch) ok = true, want false")
	}
}

func TestWilcoxonReference(t *testing.T) {
	// R: x <- c(1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30)
	//    y <- c(0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29)
	//    wilcox.test(x, y, paired = TRUE)  →  V = 40, p-value = 0.03906
	// (Hollander & Wolfe's depression data; P = 2·10/512.)
	x := []float64{1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30}
	y := []float64{0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29}
	r, ok := WilcoxonSignedRank(x, y)
	if !ok || r.N != 9 || r.Statistic != 40 || !r.Exact || !closeTo(r.P, 20.0/512, 1e-12) {
		t.Errorf("WilcoxonSignedRank(depression data) = %+v, want N=9 V=40 P=0.0390625 exact", r)
	}

	// Textbook critical value: n = 10, W+ = 8 → P(W ≤ 8) = 25/1024, two-sided 0.0488.
	a, b := diffs(1, 3, 4, -2, -5, -6, -7, -8, -9, -10)
	if r, _ := WilcoxonSignedRank(a, b); r.Statistic != 8 || !closeTo(r.P, 50.0/1024, 1e-12) {
		t.Errorf("WilcoxonSignedRank(n=10, W+=8) = %+v, want W+=8 P=0.048828125", r)
	}

	// Ties → normal approximation, hand-computed: |d| = 1,1,2,2,3 get ranks
	// 1.5,1.5,3.5,3.5,5; W+ = 13.5; mean 7.5; variance 5·6·11/24 − (6+6)/48
	// = 13.5; z = (6 − 0.5)/√13.5 = 1.496904; P = erfc(z/√2) = 0.134417.
	a, b = diffs(1, -1, 2, 2, 3)
	r, _ = WilcoxonSignedRank(a, b)
	if r.Exact || r.Statistic != 13.5 || !closeTo(r.P, math.Erfc(5.5/math.Sqrt(13.5)/math.Sqrt2), 1e-12) || !closeTo(r.P, 0.134417, 1e-6) {
		t.Errorf("WilcoxonSignedRank(ties) = %+v, want W+=13.5 P≈0.134417 normal", r)
	}

	// Zeros are dropped before ranking.
	a, b = diffs(0, 0, 1.83-0.878, 0.50-0.647, 1.62-0.598, 2.48-2.05, 1.68-1.06, 1.88-1.29, 1.55-1.06, 3.06-3.14, 1.30-1.29)
	if r, _ := WilcoxonSignedRank(a, b); r.N != 9 || r.Statistic != 40 {
		t.Errorf("WilcoxonSignedRank(with zeros) = %+v, want N=9 V=40", r)
	}
	if r, ok := WilcoxonSignedRank(diffs(0, 0)); !ok || r.P != 1 || r.N != 0 {
		t.Errorf("WilcoxonSignedRank(all zero) = %+v, %v, want P=1 N=0", r, ok)
	}
}

// TestWilcoxonExactDistributionN10 checks the exact null distribution for
// n = 10 against enumeration of all 1024 sign patterns.
func TestWilcoxonExactDistributionN10(t *testing.T) {
	const n = 10
	count := make([]float64, n*(n+1)/2+1)
	for mask := 0; mask < 1<<n; mask++ {
		s := 0
		for i := range n {
			if mask&(1<<i) != 0 {
				s += i + 1
			}
		}
		count[s]++
	}
	var cum float64
	for w := range count {
		cum += count[w]
		var upper float64
		for s := w; s < len(count); s++ {
			upper += count[s]
		}
		want := math.Min(1, 2*math.Min(cum, upper)/1024)
		if got := wilcoxonExactP(n, w); got != want {
			t.Errorf("wilcoxonExactP(10, %d) = %g, want %g", w, got, want)
		}
	}
}

// TestWilcoxonExactMatchesNormalAtBoundary checks that the two p-value
// paths agree where they meet, so results do not jump at n = 50.
func TestWilcoxonExactMatchesNormalAtBoundary(t *testing.T) {
	const n = WilcoxonExactMaxN
	mean := float64(n*(n+1)) / 4
	sd := math.Sqrt(float64(n*(n+1)*(2*n+1)) / 24)
	for _, w := range []int{400, 500, 550, 600} {
		z := math.Max(0, math.Abs(float64(w)-mean)-0.5) / sd
		approx := math.Erfc(z / math.Sqrt2)
		if exact := wilcoxonExactP(n, w); !closeTo(exact, approx, 0.005) {
			t.Errorf("n=50 W+=%d: exact P %.5f, normal P %.5f, want within 0.005", w, exact, approx)
		}
	}
}

// TestPairedTestsSizeUnderH0 is an acceptance target: under H0 the
// rejection rate at α = 0.05 is at most about 0.05.
func TestPairedTestsSizeUnderH0(t *testing.T) {
	const trials = 4000
	for _, tc := range []struct {
		name string
		n    int
		gen  func(rng *rand.Rand) float64
	}{
		// Exact paths: continuous symmetric differences.
		{"n=20 normal", 20, func(rng *rand.Rand) float64 { return rng.NormFloat64() }},
		// Normal-approximation path: n > 50, and ties from rounding to
		// whole milliseconds.
		{"n=80 rounded", 80, func(rng *rand.Rand) float64 { return math.Round(3 * rng.NormFloat64()) }},
	} {
		rng := rand.New(rand.NewPCG(14, uint64(tc.n)))
		var signRej, wilRej int
		for range trials {
			d := make([]float64, tc.n)
			for i := range d {
				d[i] = tc.gen(rng)
			}
			if r, _ := SignTest(diffs(d...)); r.P <= 0.05 {
				signRej++
			}
			if r, _ := WilcoxonSignedRank(diffs(d...)); r.P <= 0.05 {
				wilRej++
			}
		}
		s, w := float64(signRej)/trials, float64(wilRej)/trials
		t.Logf("%s: H0 rejection rate at α=0.05 over %d trials: sign %.4f, Wilcoxon %.4f", tc.name, trials, s, w)
		// Monte-Carlo sd at 0.05 is 0.0034; 0.06 is three of them.
		if s > 0.06 || w > 0.06 {
			t.Errorf("%s: rejection rates sign %.4f, Wilcoxon %.4f, want ≤ 0.06", tc.name, s, w)
		}
	}
}

func TestHodgesLehmann(t *testing.T) {
	for _, tc := range []struct {
		d    []float64
		want float64
	}{
		{[]float64{1, 2, 3}, 2},         // Walsh: 1 1.5 2 2 2.5 3
		{[]float64{0, 10}, 5},           // Walsh: 0 5 10
		{[]float64{1, 2, 3, 100}, 2.75}, // Walsh median (2.5+3)/2: the outlier barely moves it
	} {
		if got, ok := HodgesLehmann(diffs(tc.d...)); !ok || got != tc.want {
			t.Errorf("HodgesLehmann(%v) = %g, %v, want %g", tc.d, got, ok, tc.want)
		}
	}
	if _, ok := HodgesLehmann(nil, nil); ok {
		t.Errorf("HodgesLehmann(empty) ok = true, want false")
	}
}
