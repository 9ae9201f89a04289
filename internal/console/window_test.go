package console

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ocdn/ocdn/internal/stats"
)

// TestWindowQuantiles: the quantiles of what a cumulative sketch gained
// between two samples are within the sketch's 1% of the exact quantiles
// of the values added in between, although the window's values come from
// another distribution than the history before it.
func TestWindowQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	sk := stats.NewSketch()
	for range 5000 { // history: fast
		sk.Add(5 + rng.ExpFloat64()*10)
	}
	prev, err := binsOf(sk)
	if err != nil {
		t.Fatal(err)
	}
	var win []float64
	for range 2000 { // the window: slow
		v := 80 + rng.ExpFloat64()*40
		win = append(win, v)
		sk.Add(v)
	}
	cur, err := binsOf(sk)
	if err != nil {
		t.Fatal(err)
	}
	w := window(prev, cur)
	if w.count() != 2000 {
		t.Fatalf("window count = %v, want 2000", w.count())
	}
	slices.Sort(win)
	qs := []float64{0.1, 0.5, 0.9, 0.99}
	got := w.quantiles(qs...)
	for i, q := range qs {
		// The sketch answers the value of rank floor(q*(n-1)).
		want := win[int(q*float64(len(win)-1))]
		if math.Abs(got[i]-want) > 0.01*want+1e-9 {
			t.Errorf("window quantile %v = %.3f, want %.3f within 1%%", q, got[i], want)
		}
	}
	// Nothing new: an empty window, NaN quantiles.
	if e := window(cur, cur); e.count() != 0 || !math.IsNaN(e.quantiles(0.5)[0]) {
		t.Errorf("empty window: count %v, median %v; want 0 and NaN", e.count(), e.quantiles(0.5)[0])
	}
}

// TestWindowAfterRestart: when the ingester restarts its sketches start
// from zero; the window is then everything the new sketch holds, never
// negative counts.
func TestWindowAfterRestart(t *testing.T) {
	old := stats.NewSketch()
	for i := range 100 {
		old.Add(float64(10 + i))
	}
	fresh := stats.NewSketch()
	for range 10 {
		fresh.Add(50)
	}
	prev, _ := binsOf(old)
	cur, _ := binsOf(fresh)
	w := window(prev, cur)
	if w.count() != 10 {
		t.Fatalf("window after restart counts %v, want the new sketch's 10", w.count())
	}
	if m := w.quantiles(0.5)[0]; math.Abs(m-50) > 0.5 {
		t.Errorf("median after restart = %v, want 50", m)
	}
}
