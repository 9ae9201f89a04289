package console

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/measure"
)

// The control plane keeps current state; the console keeps how it moved:
// every SampleEvery it records what the plots need (serving appliances,
// bytes served per site, prefixes per appliance, bytes filled by source,
// each site's measured TTFB in the interval) and what changed (state
// transitions, route changes) in bounded memory. Replans join the same
// event list from the control plane's own records, not inferred here.

// sample is one look at the control plane.
type sample struct {
	at      time.Time
	serving int
	// prefixes per plotted line (appliance, or site in a large fleet);
	// served bytes per site in the interval.
	prefixes map[string]int
	served   map[string]float64 // site → bits per second
	// fill is bytes filled so far by source: peer, tier, origin.
	fill [3]int64
	// ttfb is each site's TTFB quantiles (p50, p90) over the trailing
	// window, from the live sketches; absent when nothing was measured.
	ttfb map[string][2]float64
}

// event is one change between samples, or one replan the control plane
// recorded (At is then the control plane's time of the replan).
type event struct {
	At     time.Time
	Kind   string // "state", "routes" or "replan"
	Target string
	From   string
	To     string
}

type history struct {
	mu      sync.Mutex
	max     int
	samples []sample
	events  []event
	// replanSeq is the sequence number of the newest replan in events:
	// the control plane lists its recent replans at every sample, and
	// each becomes one event.
	replanSeq int

	// What the previous sample saw, for differences.
	state    map[string]string
	prefixes map[string]int   // per appliance, for the change list
	served   map[string]int64 // appliance → heartbeat bytes_served
	// sketches are the last samples' cumulative TTFB bins per site,
	// oldest first: the trailing window is the newest minus the oldest.
	sketches []map[string]bins
	trail    int // samples the window spans
}

const maxEvents = 200

// maxApplianceLines is the largest fleet plotted per appliance.
const maxApplianceLines = 40

// newHistory keeps max samples; measurement quantiles span trail of them
// (a probe reports every few seconds per client, so one sample interval
// often holds too few pulses for a median).
func newHistory(keep, trail int) *history {
	return &history{max: keep, trail: max(trail, 1)}
}

// sample records one look; the first only sets the baselines.
func (c *Console) sample() {
	now := c.cfg.Now()
	p := c.cfg.Plane
	sts := p.Appliances()
	siteOf := map[string]string{}
	for _, a := range c.cfg.Inventory.Appliances {
		siteOf[a.ID] = a.Site
	}
	s := sample{at: now, prefixes: map[string]int{}, served: map[string]float64{}}
	// A plot line per appliance reads well for a lab; a fleet of
	// thousands gets one per site, which also bounds the history's
	// memory to samples × sites.
	bySite := len(c.cfg.Inventory.Appliances) > maxApplianceLines
	prefixes := map[string]int{}
	state := map[string]string{}
	served := map[string]int64{}
	for _, st := range sts {
		if st.Serving {
			s.serving++
		}
		prefixes[st.ID] = st.Prefixes
		if bySite {
			s.prefixes["site "+siteOf[st.ID]] += st.Prefixes
		} else {
			s.prefixes[st.ID] = st.Prefixes
		}
		state[st.ID] = stateLabel(st)
		if hb, ok := p.Latest(st.ID); ok {
			served[st.ID] = hb.BytesServed
		}
	}
	sum := p.FillSummary()
	for _, fp := range sum.Progress {
		s.fill[0] += fp.PeerBytes
		s.fill[1] += fp.TierBytes
		s.fill[2] += fp.OriginBytes
	}
	cur := c.measureBins()
	// Only the replans: the top files per site are read when the fill
	// page is rendered.
	replans := p.PlacementStatus(0).Recent

	h := c.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	// Replans first: each happened before this sample, after the last
	// one's events, so the event list stays in time order.
	h.recordReplans(replans)
	if h.state != nil {
		for id, st := range state {
			if old := h.state[id]; old != st {
				h.addEvent(event{At: now, Kind: "state", Target: id, From: old, To: st})
			}
			if old := h.prefixes[id]; old != prefixes[id] {
				h.addEvent(event{At: now, Kind: "routes", Target: id, From: itoa(old), To: itoa(prefixes[id])})
			}
		}
		dt := now.Sub(h.samples[len(h.samples)-1].at).Seconds()
		for id, b := range served {
			d := b - h.served[id]
			if d < 0 { // the appliance restarted and counts again from zero
				d = b
			}
			if dt > 0 {
				s.served[siteOf[id]] += float64(d) * 8 / dt
			}
		}
		s.ttfb = map[string][2]float64{}
		for site, b := range cur {
			w := window(h.sketches[0][site], b)
			if w.count() == 0 {
				continue
			}
			q := w.quantiles(0.5, 0.9)
			s.ttfb[site] = [2]float64{q[0], q[1]}
		}
	}
	h.state, h.prefixes, h.served = state, prefixes, served
	h.sketches = append(h.sketches, cur)
	if len(h.sketches) > h.trail {
		h.sketches = append(h.sketches[:0], h.sketches[len(h.sketches)-h.trail:]...)
	}
	h.samples = append(h.samples, s)
	if len(h.samples) > h.max {
		h.samples = append(h.samples[:0], h.samples[len(h.samples)-h.max:]...)
	}
}

// recordReplans adds the replans in recent (oldest first, as the control
// plane lists them) that are newer than the last one recorded. The
// control plane keeps its last 50; more replans than that between two
// samples would be missed here (its counter still says how many). Under
// h.mu.
func (h *history) recordReplans(recent []api.Replan) {
	if n := len(recent); n > 0 && recent[n-1].Seq < h.replanSeq {
		// Numbering went backwards: a control plane that restarted
		// without its console (one reading it from afar) numbers its
		// replans from the start again.
		h.replanSeq = 0
	}
	for _, r := range recent {
		if r.Seq <= h.replanSeq {
			continue
		}
		h.replanSeq = r.Seq
		h.addEvent(event{At: r.At, Kind: "replan", Target: "placement",
			From: fmt.Sprintf("replan %d (%s)", r.Seq, r.Reason), To: bytesLabel(r.AddedBytes) + " added"})
	}
}

// measureBins merges every prefix group's TTFB sketch per site.
func (c *Console) measureBins() map[string]bins {
	m := c.cfg.Measure
	if m == nil {
		return nil
	}
	out := map[string]bins{}
	for _, a := range m.Aggregates() {
		if a.Metric != measure.MetricTTFBMs {
			continue
		}
		sk := m.Sketch(a.Group, a.Site, a.Metric)
		if sk == nil {
			continue
		}
		b, err := binsOf(sk)
		if err != nil {
			c.log.Warn("reading a live sketch", "site", a.Site, "group", a.Group, "err", err)
			continue
		}
		acc, ok := out[a.Site]
		if !ok {
			acc = bins{counts: map[int]float64{}}
		}
		for i, n := range b.counts {
			acc.counts[i] += n
		}
		acc.zeros += b.zeros
		out[a.Site] = acc
	}
	return out
}

func (h *history) addEvent(e event) {
	h.events = append(h.events, e)
	if len(h.events) > maxEvents {
		h.events = append(h.events[:0], h.events[len(h.events)-maxEvents:]...)
	}
}

// recentEvents are the last n events of the kinds given, newest first.
func (h *history) recentEvents(n int, kinds ...string) []event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []event
	for i := len(h.events) - 1; i >= 0 && len(out) < n; i-- {
		e := h.events[i]
		for _, k := range kinds {
			if e.Kind == k {
				out = append(out, e)
				break
			}
		}
	}
	return out
}

// series is one plot's data in uPlot's layout: x (Unix seconds) first,
// then one column per line, null where a line has no value.
type series struct {
	Title  string       `json:"title"`
	Unit   string       `json:"unit"`
	Labels []string     `json:"labels"`
	Data   [][]*float64 `json:"data"`
}

// plot builds a series from the samples: one line per key that value
// reports for any sample.
func (h *history) plot(title, unit string, keys func(s *sample) []string, value func(s *sample, key string) (float64, bool)) series {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	for i := range h.samples {
		for _, k := range keys(&h.samples[i]) {
			seen[k] = true
		}
	}
	labels := make([]string, 0, len(seen))
	for k := range seen {
		labels = append(labels, k)
	}
	sort.Strings(labels)
	out := series{Title: title, Unit: unit, Labels: labels, Data: make([][]*float64, len(labels)+1)}
	for i := range h.samples {
		s := &h.samples[i]
		t := float64(s.at.UnixMilli()) / 1000
		out.Data[0] = append(out.Data[0], &t)
		for j, k := range labels {
			var p *float64
			if v, ok := value(s, k); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
				p = &v
			}
			out.Data[j+1] = append(out.Data[j+1], p)
		}
	}
	return out
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// seriesFor are the plots of a page.
func (c *Console) seriesFor(page string) map[string]series {
	h := c.hist
	out := map[string]series{}
	switch page {
	case "fleet":
		out["serving"] = h.plot("Appliances serving", "appliances", func(*sample) []string { return []string{"serving"} },
			func(s *sample, _ string) (float64, bool) { return float64(s.serving), true })
		out["served"] = h.plot("Bytes served per site", "Mbit/s", func(s *sample) []string { return mapKeys(s.served) },
			func(s *sample, k string) (float64, bool) { v, ok := s.served[k]; return v / 1e6, ok })
	case "routes":
		out["prefixes"] = h.plot("Prefixes heard per appliance (per site in a fleet of more than 40)", "prefixes", func(s *sample) []string { return mapKeys(s.prefixes) },
			func(s *sample, k string) (float64, bool) { v, ok := s.prefixes[k]; return float64(v), ok })
	case "fill":
		names := []string{"peer", "tier", "origin"}
		out["filled"] = h.plot("Bytes filled by source", "MB", func(*sample) []string { return names },
			func(s *sample, k string) (float64, bool) {
				for i, n := range names {
					if n == k {
						return float64(s.fill[i]) / 1e6, true
					}
				}
				return 0, false
			})
	case "measure":
		for i, q := range []string{"p50", "p90"} {
			out["ttfb_"+q] = h.plot("TTFB "+q+" per site (trailing window)", "ms", func(s *sample) []string { return mapKeys(s.ttfb) },
				func(s *sample, k string) (float64, bool) { v, ok := s.ttfb[k]; return v[i], ok })
		}
	}
	return out
}
