package console

import (
	"fmt"
	"math"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/ocdn/ocdn/internal/stats"
)

// The ingester's live sketches count everything since it started. A plot
// over time wants what clients measured in each interval, so the console
// keeps each site's bin counts from its previous sample and takes the
// quantiles of the difference: DDSketch bins are exact counts, so the
// window keeps the sketch's 1% relative accuracy (a test checks it
// against the exact quantiles of the window's values).

// bins are a sketch's counts by bin index, plus its count of zeros.
type bins struct {
	counts map[int]float64
	zeros  float64
}

// binsOf reads the bins of a sketch through its binary encoding, the
// only view stats.Sketch gives of them.
func binsOf(s *stats.Sketch) (bins, error) {
	b, err := s.MarshalBinary()
	if err != nil {
		return bins{}, err
	}
	d, err := ddsketch.DecodeDDSketch(b, store.SparseStoreConstructor, nil)
	if err != nil {
		return bins{}, fmt.Errorf("decoding a live sketch: %w", err)
	}
	out := bins{counts: map[int]float64{}, zeros: d.GetZeroCount()}
	d.GetPositiveValueStore().ForEach(func(i int, c float64) bool {
		out.counts[i] += c
		return false
	})
	return out, nil
}

// windowMapping is the index mapping every stats.Sketch uses.
var windowMapping = func() mapping.IndexMapping {
	m, err := mapping.NewDefaultMapping(stats.SketchRelativeAccuracy)
	if err != nil {
		panic(err) // a valid constant
	}
	return m
}()

// window is what cur holds beyond prev. A bin that shrank (the ingester
// restarted and its sketches began again) counts from zero.
func window(prev, cur bins) bins {
	out := bins{counts: map[int]float64{}, zeros: cur.zeros - prev.zeros}
	if out.zeros < 0 {
		out.zeros = cur.zeros
	}
	restarted := false
	for i, c := range prev.counts {
		if cur.counts[i] < c {
			restarted = true
		}
	}
	for i, c := range cur.counts {
		d := c
		if !restarted {
			d -= prev.counts[i]
		}
		if d > 0 {
			out.counts[i] = d
		}
	}
	return out
}

// count is the number of values in the window.
func (b bins) count() float64 {
	n := b.zeros
	for _, c := range b.counts {
		n += c
	}
	return n
}

// quantiles answers the qs-quantiles of the window (NaN when it is empty).
func (b bins) quantiles(qs ...float64) []float64 {
	out := make([]float64, len(qs))
	sk := ddsketch.NewDDSketch(windowMapping, store.NewSparseStore(), store.NewSparseStore())
	for i, c := range b.counts {
		sk.GetPositiveValueStore().AddWithCount(i, c)
	}
	if b.zeros > 0 {
		_ = sk.AddWithCount(0, b.zeros)
	}
	for i, q := range qs {
		out[i] = math.NaN()
		if v, err := sk.GetValueAtQuantile(q); err == nil && !sk.IsEmpty() {
			out[i] = v
		}
	}
	return out
}
