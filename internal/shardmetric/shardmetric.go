// Package shardmetric provides Prometheus metrics for request hot paths.
//
// A prometheus.Histogram's Observe updates a count, a bucket and a float
// sum (in a compare-and-swap loop) that every core shares; at a hundred
// thousand requests a second on two cores those cache lines move between
// the cores on almost every request, and one Observe cost about 200 ns
// in the steering handler's profile. Here every update goes to one of
// several shards picked at random, so concurrent requests rarely write
// the same line, and a scrape adds the shards up. Values are integers
// (durations in nanoseconds), so an update is one atomic add.
package shardmetric

import (
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// cells holds n int64 cells in several shards, each shard on cache lines
// of its own.
type cells struct {
	n, stride int
	mask      uint32
	v         []atomic.Int64 // shard s, cell i at s*stride+i
}

func newCells(n int) *cells {
	shards := 1 << bits.Len(uint(4*runtime.GOMAXPROCS(0)-1)) // a power of two ≥ 4 per core
	const line = 128 / 8                                     // cells per 128 bytes (two lines, for the adjacent-line prefetcher)
	stride := (n + line - 1) / line * line
	return &cells{n: n, stride: stride, mask: uint32(shards - 1), v: make([]atomic.Int64, shards*stride)}
}

// shard returns the cells of a shard picked at random.
func (c *cells) shard() []atomic.Int64 {
	s := int(rand.Uint32()&c.mask) * c.stride
	return c.v[s : s+c.n]
}

// sum adds cell i up over the shards.
func (c *cells) sum(i int) int64 {
	var t int64
	for s := i; s < len(c.v); s += c.stride {
		t += c.v[s].Load()
	}
	return t
}

// Histogram is a Prometheus histogram of durations, in seconds.
type Histogram struct {
	desc    *prometheus.Desc
	bounds  []time.Duration // bucket upper bounds, ascending
	seconds []float64       // the same, as Prometheus labels them
	c       *cells          // bucket counts (the last for +Inf), then the sum in ns
}

// NewHistogram returns a histogram with the given upper bounds in
// seconds (as prometheus.ExponentialBuckets returns them).
func NewHistogram(name, help string, buckets []float64) *Histogram {
	h := &Histogram{desc: prometheus.NewDesc(name, help, nil, nil), seconds: buckets, c: newCells(len(buckets) + 2)}
	for i, b := range buckets {
		if i > 0 && b <= buckets[i-1] {
			panic("shardmetric: histogram buckets must be ascending")
		}
		h.bounds = append(h.bounds, time.Duration(b*float64(time.Second)))
	}
	return h
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	i := 0
	for i < len(h.bounds) && d > h.bounds[i] {
		i++
	}
	s := h.c.shard()
	s[i].Add(1)
	s[len(s)-1].Add(int64(d))
}

// Describe implements prometheus.Collector.
func (h *Histogram) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

// Collect implements prometheus.Collector. The count is the sum of the
// buckets read, so a scrape is consistent even while requests update it.
func (h *Histogram) Collect(ch chan<- prometheus.Metric) {
	buckets := make(map[float64]uint64, len(h.seconds))
	var count uint64
	for i, b := range h.seconds {
		count += uint64(h.c.sum(i))
		buckets[b] = count
	}
	count += uint64(h.c.sum(len(h.seconds)))
	sum := time.Duration(h.c.sum(len(h.seconds) + 1)).Seconds()
	ch <- prometheus.MustNewConstHistogram(h.desc, count, sum, buckets)
}

// Gauge is a Prometheus gauge of a count that goes up and down, such as
// requests in flight.
type Gauge struct {
	desc *prometheus.Desc
	c    *cells
}

// NewGauge returns a gauge at zero.
func NewGauge(name, help string) *Gauge {
	return &Gauge{desc: prometheus.NewDesc(name, help, nil, nil), c: newCells(1)}
}

// Add adds n, which may be negative.
func (g *Gauge) Add(n int64) { g.c.shard()[0].Add(n) }

// Value is the gauge's current value.
func (g *Gauge) Value() int64 { return g.c.sum(0) }

// Describe implements prometheus.Collector.
func (g *Gauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect implements prometheus.Collector.
func (g *Gauge) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(g.Value()))
}
