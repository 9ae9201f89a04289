package analyze

import (
	"cmp"
	"math"
	"slices"

	"github.com/ocdn/ocdn/internal/stats"
)

// Pair is a paired comparison, within clients, of the steered site and one
// alternative site for one prefix group and metric.
//
// The unit is the client (client_addr; the client prefix when the address
// is unknown) within a prefix group and steered site: each client
// contributes its median at the steered site and its median at the
// alternative, over the reports that carry that steering decision, so a
// client that probed many times counts once. Pairs are independent if
// clients are, which is what stats.PairedMedianDiffCI, SignTest and
// WilcoxonSignedRank assume.
type Pair struct {
	PrefixGroup string
	ASN         uint32
	SteeredSite string
	AltSite     string
	Metric      Metric
	Clients     int // pairs
	// SteeredMedian and AltMedian are the medians of the per-client medians.
	SteeredMedian, AltMedian float64
	// Diff is the median of per-client (steered − alternative), with its
	// exact order-statistic interval; DiffOK is false (Lo, Hi NaN) with
	// fewer than stats.MinSamples(0.5, level) clients.
	Diff, DiffLo, DiffHi float64
	DiffOK               bool
	// Rel is the median per-client relative improvement of the
	// alternative: 1 − alt/steered for latencies, alt/steered − 1 for
	// throughput, so positive always means the alternative is better.
	Rel, RelLo, RelHi float64
	RelOK             bool
	SignP, WilcoxonP  float64
	Note              string
}

// clientKey identifies a client within a prefix group and steering decision.
type pairGroupKey struct{ group, steered string }

type clientVals struct {
	asn   uint32
	sites map[string]*[numMetrics][]float64
}

// pairData collects per-client values by (group, steered site).
type pairData struct {
	groups  map[pairGroupKey]map[string]*clientVals
	pulses  map[pairGroupKey]int
	bytes   map[pairGroupKey]int64
	unknown int // rows of reports with no steering decision recorded
}

func collectPairs(rows []Row) *pairData {
	d := &pairData{groups: make(map[pairGroupKey]map[string]*clientVals),
		pulses: make(map[pairGroupKey]int), bytes: make(map[pairGroupKey]int64)}
	for i := range rows {
		r := &rows[i]
		if r.SteeredSite == "" {
			d.unknown++
			continue
		}
		gk := pairGroupKey{r.PrefixGroup, r.SteeredSite}
		d.pulses[gk]++
		d.bytes[gk] += r.Bytes
		cs := d.groups[gk]
		if cs == nil {
			cs = make(map[string]*clientVals)
			d.groups[gk] = cs
		}
		ck := r.Prefix
		if r.ClientAddr.IsValid() {
			ck = r.ClientAddr.String()
		}
		c := cs[ck]
		if c == nil {
			c = &clientVals{asn: r.ASN, sites: make(map[string]*[numMetrics][]float64)}
			cs[ck] = c
		}
		v := c.sites[r.Site]
		if v == nil {
			v = new([numMetrics][]float64)
			c.sites[r.Site] = v
		}
		for _, m := range Metrics {
			if x := r.Values[m]; x == x {
				v[m] = append(v[m], x)
			}
		}
	}
	return d
}

func medianOf(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	s := slices.Clone(x)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// relImprovement is how much better alt is than steered, relative to
// steered; positive means better.
func relImprovement(m Metric, steered, alt float64) float64 {
	if m.HigherIsBetter() {
		return alt/steered - 1
	}
	return 1 - alt/steered
}

// PairedComparisons compares, within clients, each prefix group's steered
// site with every alternative site its clients also probed, for every
// metric, at confidence level. Output is ordered by group, steered site,
// metric and alternative.
func PairedComparisons(rows []Row, level float64) []Pair {
	return pairedFrom(collectPairs(rows), level)
}

func pairedFrom(d *pairData, level float64) []Pair {
	var out []Pair
	for gk, clients := range d.groups {
		// Alternative sites probed by any client of the group.
		alts := make(map[string]bool)
		var asn uint32
		for _, c := range clients {
			asn = c.asn
			for s := range c.sites {
				if s != gk.steered {
					alts[s] = true
				}
			}
		}
		for _, m := range Metrics {
			for alt := range alts {
				var a, b, rel, zero []float64
				ckeys := make([]string, 0, len(clients))
				for k := range clients {
					ckeys = append(ckeys, k)
				}
				slices.Sort(ckeys) // deterministic order; the statistics do not depend on it
				for _, k := range ckeys {
					c := clients[k]
					sv, av := c.sites[gk.steered], c.sites[alt]
					if sv == nil || av == nil || len(sv[m]) == 0 || len(av[m]) == 0 {
						continue
					}
					ms, ma := medianOf(sv[m]), medianOf(av[m])
					a, b = append(a, ms), append(b, ma)
					if ms > 0 {
						rel = append(rel, relImprovement(m, ms, ma))
						zero = append(zero, 0)
					}
				}
				if len(a) == 0 {
					continue
				}
				p := Pair{PrefixGroup: gk.group, ASN: asn, SteeredSite: gk.steered, AltSite: alt, Metric: m,
					Clients: len(a), SteeredMedian: medianOf(a), AltMedian: medianOf(b)}
				var ok bool
				p.DiffLo, p.Diff, p.DiffHi, ok = stats.PairedMedianDiffCI(a, b, level)
				p.DiffOK = ok
				if !ok {
					p.DiffLo, p.DiffHi = math.NaN(), math.NaN()
					p.Diff = medianOf(diffs(a, b))
					p.Note = NoteInsufficient
				}
				p.RelLo, p.Rel, p.RelHi, p.RelOK = stats.PairedMedianDiffCI(rel, zero, level)
				if !p.RelOK {
					p.RelLo, p.RelHi = math.NaN(), math.NaN()
					p.Rel = medianOf(rel)
				}
				p.SignP, p.WilcoxonP = math.NaN(), math.NaN()
				if r, ok := stats.SignTest(a, b); ok {
					p.SignP = r.P
				}
				if r, ok := stats.WilcoxonSignedRank(a, b); ok {
					p.WilcoxonP = r.P
				}
				out = append(out, p)
			}
		}
	}
	slices.SortFunc(out, func(x, y Pair) int {
		return cmp.Or(cmp.Compare(x.PrefixGroup, y.PrefixGroup), cmp.Compare(x.SteeredSite, y.SteeredSite),
			cmp.Compare(x.Metric, y.Metric), cmp.Compare(x.AltSite, y.AltSite))
	})
	return out
}

func diffs(a, b []float64) []float64 {
	d := make([]float64, len(a))
	for i := range a {
		d[i] = a[i] - b[i]
	}
	return d
}

// GroupRegret is the steering verdict for one prefix group (and steering
// decision) on one metric.
type GroupRegret struct {
	PrefixGroup string
	ASN         uint32
	SteeredSite string
	Metric      Metric
	// BestAlt is the alternative with the largest confident improvement
	// when Regret, else the one with the largest estimated improvement.
	BestAlt           string
	Rel, RelLo, RelHi float64
	Clients           int
	Pulses            int   // pulses of the group under this decision (all sites, all metrics)
	Bytes             int64 // their bytes
	// Evaluated is true when at least one alternative had enough clients
	// for an interval; Regret when some alternative's interval for the
	// relative improvement lies entirely above the margin.
	Evaluated, Regret bool
}

// RegretSummary is the share of prefix groups, and of their traffic, that
// steering sends to a site when an alternative is better by at least the
// margin with confidence.
type RegretSummary struct {
	Metric                               Metric
	Margin                               float64
	Groups, Evaluated, Regretful         int
	Pulses, PulsesRegretful              int
	Bytes, BytesRegretful                int64
	ShareGroups, SharePulses, ShareBytes float64 // of the evaluated groups; NaN when none
}

// Regret decides, per prefix group, steering decision and metric, whether
// an alternative site is better than the steered one by more than margin
// (relative, e.g. 0.1) with confidence: the lower end of the interval
// for the median per-client relative improvement exceeds margin.
func Regret(pairs []Pair, rows []Row, margin float64) ([]GroupRegret, []RegretSummary) {
	d := collectPairs(rows)
	return regretFrom(pairs, d, margin)
}

func regretFrom(pairs []Pair, d *pairData, margin float64) ([]GroupRegret, []RegretSummary) {
	type key struct {
		group, steered string
		m              Metric
	}
	byKey := make(map[key]*GroupRegret)
	var order []key
	for _, p := range pairs {
		k := key{p.PrefixGroup, p.SteeredSite, p.Metric}
		g := byKey[k]
		if g == nil {
			gk := pairGroupKey{p.PrefixGroup, p.SteeredSite}
			g = &GroupRegret{PrefixGroup: p.PrefixGroup, ASN: p.ASN, SteeredSite: p.SteeredSite, Metric: p.Metric,
				Rel: math.NaN(), RelLo: math.NaN(), RelHi: math.NaN(), Pulses: d.pulses[gk], Bytes: d.bytes[gk]}
			byKey[k] = g
			order = append(order, k)
		}
		confident := p.RelOK && p.RelLo > margin
		better := false
		switch {
		case confident && !g.Regret:
			better = true
		case confident && g.Regret:
			better = p.RelLo > g.RelLo
		case !g.Regret:
			better = g.BestAlt == "" || (p.Rel > g.Rel) || math.IsNaN(g.Rel)
		}
		if p.RelOK {
			g.Evaluated = true
		}
		if better {
			g.BestAlt, g.Rel, g.RelLo, g.RelHi, g.Clients = p.AltSite, p.Rel, p.RelLo, p.RelHi, p.Clients
		}
		if confident {
			g.Regret = true
		}
	}
	out := make([]GroupRegret, 0, len(order))
	for _, k := range order {
		out = append(out, *byKey[k])
	}
	slices.SortFunc(out, func(x, y GroupRegret) int {
		return cmp.Or(cmp.Compare(x.Metric, y.Metric), cmp.Compare(x.PrefixGroup, y.PrefixGroup), cmp.Compare(x.SteeredSite, y.SteeredSite))
	})
	var sums []RegretSummary
	for _, m := range Metrics {
		s := RegretSummary{Metric: m, Margin: margin}
		for _, g := range out {
			if g.Metric != m {
				continue
			}
			s.Groups++
			if !g.Evaluated {
				continue
			}
			s.Evaluated++
			s.Pulses += g.Pulses
			s.Bytes += g.Bytes
			if g.Regret {
				s.Regretful++
				s.PulsesRegretful += g.Pulses
				s.BytesRegretful += g.Bytes
			}
		}
		s.ShareGroups = ratio(float64(s.Regretful), float64(s.Evaluated))
		s.SharePulses = ratio(float64(s.PulsesRegretful), float64(s.Pulses))
		s.ShareBytes = ratio(float64(s.BytesRegretful), float64(s.Bytes))
		sums = append(sums, s)
	}
	return out, sums
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}
