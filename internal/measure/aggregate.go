package measure

import (
	"sort"
	"sync"

	"github.com/ocdn/ocdn/internal/stats"
)

// Metrics of the live aggregates.
const (
	MetricConnectMs     = "connect_ms"
	MetricTTFBMs        = "ttfb_ms"
	MetricThroughputBps = "throughput_bps"
)

// Aggregate summarises one live sketch.
type Aggregate struct {
	Group  string  `json:"group"` // client prefix group (Annotation.PrefixGroup)
	Site   string  `json:"site"`
	Metric string  `json:"metric"` // MetricConnectMs, MetricTTFBMs or MetricThroughputBps
	Count  float64 `json:"count"`
	P50    float64 `json:"p50"`
	P90    float64 `json:"p90"`
	P99    float64 `json:"p99"`
}

type aggKey struct{ group, site, metric string }

type aggSketch = stats.Sketch

// aggregates holds one sketch per (group, site, metric), fed by every
// accepted pulse whose status is ok, since the ingester was opened (they
// are not rebuilt from stored data: a restart starts them empty).
type aggregates struct {
	mu sync.Mutex
	m  map[aggKey]*aggSketch
}

func (a *aggregates) add(rec *walRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range rec.Report.Pulses {
		p := &rec.Report.Pulses[i]
		if p.Status != StatusOK {
			continue
		}
		site := rec.Sites[i]
		a.observe(aggKey{rec.PrefixGroup, site, MetricConnectMs}, p.ConnectMs)
		a.observe(aggKey{rec.PrefixGroup, site, MetricTTFBMs}, p.TTFBMs)
		a.observe(aggKey{rec.PrefixGroup, site, MetricThroughputBps}, p.ThroughputBps)
	}
}

func (a *aggregates) observe(k aggKey, v float64) {
	if v <= 0 { // absent (validated values are finite and non-negative)
		return
	}
	s := a.m[k]
	if s == nil {
		s = stats.NewSketch()
		a.m[k] = s
	}
	_ = s.Add(v) // cannot fail: v is finite and positive
}

// Aggregates returns the live aggregates, sorted by group, site and metric.
func (in *Ingester) Aggregates() []Aggregate {
	a := &in.aggs
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Aggregate, 0, len(a.m))
	for k, s := range a.m {
		ag := Aggregate{Group: k.group, Site: k.site, Metric: k.metric, Count: s.Count()}
		ag.P50, _ = s.Quantile(0.5)
		ag.P90, _ = s.Quantile(0.9)
		ag.P99, _ = s.Quantile(0.99)
		out = append(out, ag)
	}
	sort.Slice(out, func(i, j int) bool {
		x, y := out[i], out[j]
		if x.Group != y.Group {
			return x.Group < y.Group
		}
		if x.Site != y.Site {
			return x.Site < y.Site
		}
		return x.Metric < y.Metric
	})
	return out
}

// Sketch returns a copy of the live sketch of (group, site, metric), or nil
// if nothing was observed for it. The copy is the caller's: merge it,
// marshal it, query it without locking.
func (in *Ingester) Sketch(group, site, metric string) *stats.Sketch {
	a := &in.aggs
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.m[aggKey{group, site, metric}]
	if s == nil {
		return nil
	}
	c := stats.NewSketch()
	_ = c.Merge(s) // same mapping: cannot fail
	return c
}
