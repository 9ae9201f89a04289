package control

import (
	"math"
	"sync"
	"time"

	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/stats"
)

// window keeps the evidence of the last Window in buckets of one step, so
// that what clients measured an hour ago does not outvote what they
// measure now: a link that degrades shows in the medians within a window.
type window struct {
	step, span time.Duration

	mu      sync.Mutex
	buckets map[int64]*bucket // by start / step
}

type bucket struct {
	sites map[siteKey]*stats.Sketch
	qoe   map[qoeKey]*qoeAgg
}

type siteKey struct{ group, site, metric string }

type qoeKey struct{ group, arm, site string }

// qoeAgg sums the playback records of one (group, arm, site).
type qoeAgg struct {
	startup, bitrate *stats.Sketch
	rebufferMs       float64
	playMs           float64
	sessions         int
}

func newWindow(step, span time.Duration) *window {
	return &window{step: step, span: span, buckets: map[int64]*bucket{}}
}

func (w *window) bucketAt(t time.Time) *bucket {
	i := t.UnixNano() / int64(w.step)
	b := w.buckets[i]
	if b == nil {
		b = &bucket{sites: map[siteKey]*stats.Sketch{}, qoe: map[qoeKey]*qoeAgg{}}
		w.buckets[i] = b
	}
	return b
}

func observe(m map[siteKey]*stats.Sketch, k siteKey, v float64) {
	if !(v > 0) || math.IsInf(v, 0) {
		return
	}
	s := m[k]
	if s == nil {
		s = stats.NewSketch()
		m[k] = s
	}
	_ = s.Add(v) // finite and positive: cannot fail
}

// clone is a copy the snapshot's readers own: the window's own aggregate
// goes on taking reports under w.mu, which the readers do not hold.
func (a *qoeAgg) clone() *qoeAgg {
	c := *a
	c.startup, c.bitrate = stats.NewSketch(), stats.NewSketch()
	_ = c.startup.Merge(a.startup) // one mapping: cannot fail
	_ = c.bitrate.Merge(a.bitrate)
	return &c
}

// add takes a report's successful pulses by (group, site) and its playback
// record by (group, arm, site); a mismatched report's playback is left out.
func (w *window) add(o measure.Observed, arm string, mismatch bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.bucketAt(o.Received)
	g := o.PrefixGroup
	for i := range o.Report.Pulses {
		p := &o.Report.Pulses[i]
		if p.Status != measure.StatusOK || i >= len(o.Sites) {
			continue
		}
		site := o.Sites[i]
		observe(b.sites, siteKey{g, site, measure.MetricConnectMs}, p.ConnectMs)
		observe(b.sites, siteKey{g, site, measure.MetricTTFBMs}, p.TTFBMs)
		observe(b.sites, siteKey{g, site, measure.MetricThroughputBps}, p.ThroughputBps)
	}
	if q := o.Report.Player; q != nil && !mismatch && q.DurationMs > 0 {
		k := qoeKey{g, arm, o.QoESite}
		a := b.qoe[k]
		if a == nil {
			a = &qoeAgg{startup: stats.NewSketch(), bitrate: stats.NewSketch()}
			b.qoe[k] = a
		}
		if q.StartupMs > 0 {
			_ = a.startup.Add(q.StartupMs)
		}
		if q.AvgBitrateKbps > 0 {
			_ = a.bitrate.Add(q.AvgBitrateKbps)
		}
		a.rebufferMs += q.RebufferMs
		a.playMs += q.DurationMs
		a.sessions++
	}
}

// evidenceSnap is the window merged at one step.
type evidenceSnap struct {
	sites map[string]map[string]siteStat // group → site → the steering metric
	qoeBy []timedQoE
	step  time.Duration
}

type timedQoE struct {
	start time.Time
	key   qoeKey
	agg   *qoeAgg
}

// snapshot drops buckets older than the window and merges the rest.
func (w *window) snapshot(now time.Time, metric string) *evidenceSnap {
	w.mu.Lock()
	defer w.mu.Unlock()
	oldest := now.Add(-w.span).UnixNano() / int64(w.step)
	merged := map[siteKey]*stats.Sketch{}
	ev := &evidenceSnap{sites: map[string]map[string]siteStat{}, step: w.step}
	for i, b := range w.buckets {
		if i < oldest {
			delete(w.buckets, i)
			continue
		}
		for k, s := range b.sites {
			if k.metric != metric {
				continue
			}
			m := merged[k]
			if m == nil {
				m = stats.NewSketch()
				merged[k] = m
			}
			_ = m.Merge(s) // one mapping: cannot fail
		}
		start := time.Unix(0, i*int64(w.step))
		for k, a := range b.qoe {
			ev.qoeBy = append(ev.qoeBy, timedQoE{start: start, key: k, agg: a.clone()})
		}
	}
	for k, sk := range merged {
		st, ok := medianCI(sk)
		if !ok {
			continue
		}
		st.higherBetter = metric == measure.MetricThroughputBps
		if ev.sites[k.group] == nil {
			ev.sites[k.group] = map[string]siteStat{}
		}
		ev.sites[k.group][k.site] = st
	}
	return ev
}

// medianCI reads a median and its distribution-free 95% interval off a
// sketch, at the ranks the order-statistic interval would use (within
// the sketch's 1% accuracy).
func medianCI(sk *stats.Sketch) (siteStat, bool) {
	n := sk.Count()
	if n < 1 {
		return siteStat{}, false
	}
	half := 1.96 * math.Sqrt(n*0.25) / n
	lo, err1 := sk.Quantile(max(0, 0.5-half))
	p50, err2 := sk.Quantile(0.5)
	hi, err3 := sk.Quantile(min(1, 0.5+half))
	if err1 != nil || err2 != nil || err3 != nil {
		return siteStat{}, false
	}
	return siteStat{n: n, lo: lo, p50: p50, hi: hi}, true
}

// qoeStat is the playback of a set of sessions.
type qoeStat struct {
	sessions               int
	startupP50, bitrateP50 float64
	rebufferRatio          float64
}

// qoe merges the playback records of group in buckets from the one
// holding since, for arm (any when "") and site (any when "").
func (ev *evidenceSnap) qoe(group, arm, site string, since time.Time) qoeStat {
	startup, bitrate := stats.NewSketch(), stats.NewSketch()
	var out qoeStat
	var rebuf, play float64
	for _, t := range ev.qoeBy {
		k := t.key
		if k.group != group || (arm != "" && k.arm != arm) || (site != "" && k.site != site) {
			continue
		}
		if !since.IsZero() && !t.start.Add(ev.step).After(since) {
			continue // the bucket ended before since
		}
		_ = startup.Merge(t.agg.startup)
		_ = bitrate.Merge(t.agg.bitrate)
		rebuf += t.agg.rebufferMs
		play += t.agg.playMs
		out.sessions += t.agg.sessions
	}
	out.startupP50, _ = startup.Quantile(0.5)
	out.bitrateP50, _ = bitrate.Quantile(0.5)
	if play > 0 {
		out.rebufferRatio = rebuf / play
	}
	return out
}
