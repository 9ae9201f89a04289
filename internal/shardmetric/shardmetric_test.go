package shardmetric

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func collect(t *testing.T, c prometheus.Collector) *dto.Metric {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// The same observations give the same buckets, count and sum as
// Prometheus's own histogram, including values on a bucket's bound.
func TestHistogramMatchesPrometheus(t *testing.T) {
	buckets := prometheus.ExponentialBuckets(0.00005, 4, 10)
	ours := NewHistogram("x_seconds", "x", buckets)
	ref := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x_seconds", Help: "x", Buckets: buckets})
	var ds []time.Duration
	for i := range 2000 {
		ds = append(ds, time.Duration(math.Pow(1.013, float64(i)))*time.Microsecond/7)
	}
	ds = append(ds, 0, 50*time.Microsecond, 200*time.Microsecond, time.Hour)
	for _, d := range ds {
		ours.Observe(d)
		ref.Observe(d.Seconds())
	}
	got, want := collect(t, ours).GetHistogram(), collect(t, ref).GetHistogram()
	if got.GetSampleCount() != want.GetSampleCount() || math.Abs(got.GetSampleSum()-want.GetSampleSum()) > 1e-6*want.GetSampleSum() {
		t.Errorf("count %d sum %g, Prometheus says %d and %g", got.GetSampleCount(), got.GetSampleSum(), want.GetSampleCount(), want.GetSampleSum())
	}
	for i, b := range want.GetBucket() {
		g := got.GetBucket()[i]
		if g.GetUpperBound() != b.GetUpperBound() || g.GetCumulativeCount() != b.GetCumulativeCount() {
			t.Errorf("bucket le=%g: %d, Prometheus says le=%g: %d", g.GetUpperBound(), g.GetCumulativeCount(), b.GetUpperBound(), b.GetCumulativeCount())
		}
	}
}

// Concurrent updates from many goroutines lose nothing.
func TestConcurrentUpdatesAddUp(t *testing.T) {
	h := NewHistogram("y_seconds", "y", []float64{0.001, 0.01})
	g := NewGauge("inflight", "z")
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				g.Add(1)
				h.Observe(time.Duration(w*i) * time.Microsecond / 10)
				g.Add(-1)
			}
		})
	}
	g.Add(3)
	wg.Wait()
	if c := collect(t, h).GetHistogram().GetSampleCount(); c != 8*5000 {
		t.Errorf("count = %d, want %d", c, 8*5000)
	}
	if v := collect(t, g).GetGauge().GetValue(); v != 3 {
		t.Errorf("gauge = %g, want 3", v)
	}
}

func TestHistogramRejectsUnsortedBuckets(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewHistogram accepted descending buckets")
		}
	}()
	NewHistogram("z", "z", []float64{0.1, 0.01})
}

// Observe from every core at once, against Prometheus's histogram.
func BenchmarkObserveParallel(b *testing.B) {
	buckets := prometheus.ExponentialBuckets(0.00005, 4, 10)
	b.Run("shardmetric", func(b *testing.B) {
		h := NewHistogram("x", "x", buckets)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h.Observe(80 * time.Microsecond)
			}
		})
	})
	b.Run("prometheus", func(b *testing.B) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Help: "x", Buckets: buckets})
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h.Observe((80 * time.Microsecond).Seconds())
			}
		})
	})
}
