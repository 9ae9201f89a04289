package stats

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/DataDog/sketches-go/ddsketch"
)

var testQuantiles = []float64{0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1}

func lognormalSample(rng *rand.Rand, n int, mu, sigma float64) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = math.Exp(mu + sigma*rng.NormFloat64())
	}
	return x
}

func mustSketch(t testing.TB, xs ...[]float64) *Sketch {
	t.Helper()
	s := NewSketch()
	for _, x := range xs {
		for _, v := range x {
			if err := s.Add(v); err != nil {
				t.Fatalf("Add(%g) = %v", v, err)
			}
		}
	}
	return s
}

func TestSketchQuantileRelativeAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, tc := range []struct {
		name string
		x    []float64
	}{
		{"lognormal connect ms", lognormalSample(rng, 20000, math.Log(40), 0.8)},
		{"uniform throughput bps", func() []float64 {
			x := make([]float64, 20000)
			for i := range x {
				x[i] = 1e6 + 1e9*rng.Float64()
			}
			return x
		}()},
		{"small n", lognormalSample(rng, 7, 0, 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSketch(t, tc.x)
			sorted := slices.Clone(tc.x)
			slices.Sort(sorted)
			worst := 0.0
			for _, q := range testQuantiles {
				got, err := s.Quantile(q)
				if err != nil {
					t.Fatalf("Quantile(%g) error %v", q, err)
				}
				// DDSketch's rank convention: the value of rank ⌊q(n−1)⌋.
				want := sorted[int(q*float64(len(sorted)-1))]
				rel := math.Abs(got-want) / want
				worst = max(worst, rel)
				if rel > SketchRelativeAccuracy+1e-9 {
					t.Errorf("Quantile(%g) = %g, want %g ±1%% (rel err %.4f)", q, got, want, rel)
				}
			}
			t.Logf("worst relative error over %d quantiles: %.4f", len(testQuantiles), worst)
			if got := s.Count(); got != float64(len(tc.x)) {
				t.Errorf("Count() = %g, want %d", got, len(tc.x))
			}
		})
	}
}

func TestSketchMergeEqualsUnion(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	a := lognormalSample(rng, 3000, 3, 0.5)
	b := lognormalSample(rng, 1000, 4, 0.3) // a different site: mixture
	c := append(lognormalSample(rng, 500, 1, 1), 0, 0)
	union := mustSketch(t, a, b, c)
	merged := mustSketch(t, a)
	for _, part := range [][]float64{b, c} {
		if err := merged.Merge(mustSketch(t, part)); err != nil {
			t.Fatalf("Merge = %v", err)
		}
	}
	if got, want := merged.Count(), union.Count(); got != want {
		t.Errorf("merged Count() = %g, want %g", got, want)
	}
	for _, q := range testQuantiles {
		got, _ := merged.Quantile(q)
		want, _ := union.Quantile(q)
		if got != want {
			t.Errorf("merged Quantile(%g) = %g, want %g (sketch of the union)", q, got, want)
		}
	}
}

func TestSketchAddWeighted(t *testing.T) {
	w := NewSketch()
	r := NewSketch()
	for i, v := range []float64{1, 2, 3, 10, 100} {
		k := i + 1
		if err := w.AddWeighted(v, float64(k)); err != nil {
			t.Fatal(err)
		}
		for range k {
			r.Add(v)
		}
	}
	if err := w.AddWeighted(5, 0); err != nil {
		t.Errorf("AddWeighted(5, 0) = %v, want nil (no-op)", err)
	}
	if w.Count() != r.Count() {
		t.Errorf("Count() = %g, want %g", w.Count(), r.Count())
	}
	for _, q := range testQuantiles {
		got, _ := w.Quantile(q)
		want, _ := r.Quantile(q)
		if got != want {
			t.Errorf("weighted Quantile(%g) = %g, want %g", q, got, want)
		}
	}
}

func TestSketchRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	s := mustSketch(t, lognormalSample(rng, 5000, 2, 1), []float64{0, 0, 0})
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary = %v", err)
	}
	var d Sketch
	if err := d.UnmarshalBinary(b); err != nil {
		t.Fatalf("UnmarshalBinary = %v", err)
	}
	if d.Count() != s.Count() {
		t.Errorf("decoded Count() = %g, want %g", d.Count(), s.Count())
	}
	for _, q := range testQuantiles {
		got, _ := d.Quantile(q)
		want, _ := s.Quantile(q)
		if got != want {
			t.Errorf("decoded Quantile(%g) = %g, want %g", q, got, want)
		}
	}
	// A decoded sketch must merge with a fresh one (same mapping).
	if err := d.Merge(mustSketch(t, []float64{1})); err != nil {
		t.Errorf("Merge after decode = %v", err)
	}
	t.Logf("encoded %g observations in %d bytes", s.Count(), len(b))
}

func TestSketchRejects(t *testing.T) {
	s := NewSketch()
	for _, tc := range []struct {
		v, w float64
		want error
	}{
		{-1, 1, ErrNegativeValue},
		{math.NaN(), 1, ErrInvalidValue},
		{math.Inf(1), 1, ErrInvalidValue},
		{1, -1, ErrInvalidWeight},
		{1, math.NaN(), ErrInvalidWeight},
	} {
		if err := s.AddWeighted(tc.v, tc.w); !errors.Is(err, tc.want) {
			t.Errorf("AddWeighted(%g, %g) = %v, want %v", tc.v, tc.w, err, tc.want)
		}
	}
	if _, err := s.Quantile(0.5); !errors.Is(err, ErrEmptySketch) {
		t.Errorf("empty Quantile(0.5) = %v, want %v", err, ErrEmptySketch)
	}
	s.Add(1)
	for _, q := range []float64{-0.1, 1.1, math.NaN()} {
		if _, err := s.Quantile(q); !errors.Is(err, ErrInvalidQuant) {
			t.Errorf("Quantile(%g) = %v, want %v", q, err, ErrInvalidQuant)
		}
	}

	// Encodings the project cannot use.
	other, _ := ddsketch.NewDefaultDDSketch(0.02)
	other.Add(3)
	var b2 []byte
	other.Encode(&b2, false)
	var d Sketch
	if err := d.UnmarshalBinary(b2); !errors.Is(err, ErrMappingMismatch) {
		t.Errorf("UnmarshalBinary(2%% sketch) = %v, want %v", err, ErrMappingMismatch)
	}
	neg, _ := ddsketch.NewDefaultDDSketch(SketchRelativeAccuracy)
	neg.Add(-3)
	var b3 []byte
	neg.Encode(&b3, false)
	if err := d.UnmarshalBinary(b3); !errors.Is(err, ErrNegativeValue) {
		t.Errorf("UnmarshalBinary(negative values) = %v, want %v", err, ErrNegativeValue)
	}
	var b4 []byte
	neg.Encode(&b4, true)
	if err := d.UnmarshalBinary(b4); err == nil {
		t.Errorf("UnmarshalBinary(no mapping) = nil, want error")
	}
	if err := d.UnmarshalBinary([]byte{0xff, 0x01, 0x02}); err == nil {
		t.Errorf("UnmarshalBinary(garbage) = nil, want error")
	}
}

func FuzzSketchUnmarshal(f *testing.F) {
	s := NewSketch()
	for _, v := range []float64{0, 1, 2.5, 1e6} {
		s.Add(v)
	}
	good, _ := s.MarshalBinary()
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0x02, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Sketch
		if err := d.UnmarshalBinary(b); err != nil {
			return
		}
		if d.Count() > 0 {
			if _, err := d.Quantile(0.5); err != nil {
				t.Errorf("decoded non-empty sketch: Quantile(0.5) = %v", err)
			}
		}
		if _, err := d.MarshalBinary(); err != nil {
			t.Errorf("re-encode = %v", err)
		}
	})
}

func BenchmarkSketchAdd(b *testing.B) {
	rng := rand.New(rand.NewPCG(4, 4))
	x := lognormalSample(rng, 4096, 3, 1)
	s := NewSketch()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Add(x[i&4095])
	}
}

func BenchmarkSketchMerge(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 5))
	// One hour of one site, merged into a running day sketch.
	hour := mustSketch(b, lognormalSample(rng, 10000, 3, 1))
	day := NewSketch()
	b.ReportAllocs()
	for b.Loop() {
		day.Merge(hour)
	}
}
