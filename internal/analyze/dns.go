package analyze

import (
	"cmp"
	"math"
	"slices"

	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/stats"
)

// Resolver distances in report order (measure.Distance*).
var distances = []string{measure.DistanceSamePrefix, measure.DistanceSameAS, measure.DistanceOtherAS, measure.DistanceUnknown}

// distant reports whether a resolver distance counts as distant: outside
// the client's own AS (another AS's resolver, or one in no network the
// control plane routes, such as a public resolver).
func distant(d string) bool { return d == measure.DistanceOtherAS || d == measure.DistanceUnknown }

// Share is a proportion with its Clopper–Pearson interval
// (stats.ProportionCI).
type Share struct {
	K, N        int
	Est, Lo, Hi float64
	OK          bool
}

func share(k, n int, level float64) Share {
	s := Share{K: k, N: n}
	s.Lo, s.Est, s.Hi, s.OK = stats.ProportionCI(k, n, level)
	return s
}

// ResolverISP is the resolver picture of one ISP's clients (ISP "*": all).
//
// The unit is the client (its address; the /24 or /48 when unknown): each
// client counts once, in the distance class of most of its joined dns
// pulses (ties to the nearer class), so a client that probed often does
// not weigh more.
type ResolverISP struct {
	ISP     string
	Clients int // clients with at least one dns pulse joined to the server's log
	// Distance counts clients per class (distances order).
	Distance map[string]int
	// Distant is the share of clients whose resolver is distant
	// (other_as or unknown).
	Distant Share
	// ECS is the share of joined dns pulses whose resolver passed a
	// client subnet on.
	ECS Share
	// Resolvers is how many distinct resolver addresses asked.
	Resolvers int
}

// DNSTime is a quantile of dns_ms in one cell (Family "*" or Distance
// "*" for all), with its distribution-free interval.
type DNSTime struct {
	Family, Distance string
	Q                float64
	N, MinN          int
	Est, Lo, Hi      float64
	OK               bool
	Note             string
}

// ResolverResult is the resolver and DNS analysis.
type ResolverResult struct {
	// DNSPulses are the successful dns pulses; Joined those the
	// authoritative server's log matched by nonce.
	DNSPulses, Joined int
	ISPs              []ResolverISP
	Times             []DNSTime
}

// Resolvers summarises where clients' resolvers are and how long
// resolution takes, at confidence level.
func Resolvers(rows []Row, level float64) ResolverResult {
	var res ResolverResult
	type client struct {
		isp  string
		dist map[string]int
	}
	type ispAcc struct {
		ecs, joined int
		resolvers   map[string]bool
	}
	clients := map[string]*client{}
	isps := map[string]*ispAcc{}
	acc := func(isp string) *ispAcc {
		a := isps[isp]
		if a == nil {
			a = &ispAcc{resolvers: map[string]bool{}}
			isps[isp] = a
		}
		return a
	}
	times := map[[2]string][]float64{}
	for i := range rows {
		r := &rows[i]
		if r.Type != measure.TypeDNS || r.Status != measure.StatusOK {
			continue
		}
		res.DNSPulses++
		if v := r.DNSMs; v == v {
			for _, fam := range []string{"*", r.Family} {
				for _, d := range []string{"*", r.Distance} {
					if fam == "" || d == "" || (fam != "*" && d != "*") {
						continue // cells: all, per family, per distance
					}
					times[[2]string{fam, d}] = append(times[[2]string{fam, d}], v)
				}
			}
		}
		if r.Resolver == "" {
			continue
		}
		res.Joined++
		key := r.Prefix
		if r.ClientAddr.IsValid() {
			key = r.ClientAddr.String()
		}
		c := clients[key]
		if c == nil {
			c = &client{isp: r.ISP, dist: map[string]int{}}
			clients[key] = c
		}
		c.dist[r.Distance]++
		for _, isp := range []string{"*", r.ISP} {
			a := acc(isp)
			a.joined++
			a.resolvers[r.Resolver] = true
			if r.ECS != "" {
				a.ecs++
			}
		}
	}
	per := map[string]*ResolverISP{}
	get := func(isp string) *ResolverISP {
		p := per[isp]
		if p == nil {
			p = &ResolverISP{ISP: isp, Distance: map[string]int{}}
			per[isp] = p
		}
		return p
	}
	for _, c := range clients {
		best := ""
		for _, d := range distances {
			if c.dist[d] > c.dist[best] || best == "" && c.dist[d] > 0 {
				best = d
			}
		}
		for _, isp := range []string{"*", c.isp} {
			p := get(isp)
			p.Clients++
			p.Distance[best]++
		}
	}
	for isp, p := range per {
		k := 0
		for d, n := range p.Distance {
			if distant(d) {
				k += n
			}
		}
		p.Distant = share(k, p.Clients, level)
		a := acc(isp)
		p.ECS = share(a.ecs, a.joined, level)
		p.Resolvers = len(a.resolvers)
		res.ISPs = append(res.ISPs, *p)
	}
	slices.SortFunc(res.ISPs, func(a, b ResolverISP) int {
		return ispOrder(a.ISP, b.ISP)
	})
	keys := make([][2]string, 0, len(times))
	for k := range times {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	for _, k := range keys {
		v := times[k]
		slices.Sort(v)
		for _, q := range reportQuantiles {
			t := DNSTime{Family: k[0], Distance: k[1], Q: q, N: len(v), MinN: stats.MinSamples(q, level)}
			lo, est, hi, ok := stats.QuantileCI(v, q, level)
			if ok {
				t.Est, t.Lo, t.Hi, t.OK = est, lo, hi, true
			} else {
				t.Note = NoteInsufficient
			}
			res.Times = append(res.Times, t)
		}
	}
	return res
}

// FamilyDiff is IPv6 minus IPv4 for one ISP (ISP "*": all) and metric:
// positive means IPv6 is slower (connect, TTFB) or, for throughput,
// faster.
//
// Paired: clients (the report's uploader) that measured the same
// appliance over both families in the same reports each contribute the
// difference of their IPv6 and IPv4 medians over those appliances; the
// interval is the exact one for the median of the differences
// (stats.PairedMedianDiffCI), with sign and Wilcoxon p-values.
// Unpaired (every pulse of the family, whoever measured it): each
// family's median has a distribution-free interval at level 1−(1−level)/2
// and the difference's interval is [lo6 − hi4, hi6 − lo4], which covers
// the difference of medians with probability at least level (Bonferroni).
type FamilyDiff struct {
	ISP    string
	Metric Metric
	// N6, N4 are the pulses with a value per family.
	N6, N4 int
	// Median6 and Median4 are the families' medians (unpaired).
	Median6, Median4 float64
	// Unpaired difference of the medians and its conservative interval.
	Diff, DiffLo, DiffHi float64
	DiffOK               bool
	// Paired: clients with both families, the median of their
	// differences with its interval, and the tests' p-values.
	Pairs                          int
	PairedDiff, PairedLo, PairedHi float64
	PairedOK                       bool
	SignP, WilcoxonP               float64
	Note                           string
}

// Families compares IPv6 with IPv4 per ISP and metric at confidence level.
func Families(rows []Row, level float64) []FamilyDiff {
	type key struct {
		isp string
		m   Metric
	}
	// Per ISP and metric, every value per family; per client and
	// appliance, values per family for the pairing.
	vals := map[key]*[2][]float64{}
	type ck struct{ isp, client, appliance string }
	byClient := map[ck]*[numMetrics][2][]float64{}
	for i := range rows {
		r := &rows[i]
		f := -1
		switch r.Family {
		case measure.FamilyIPv6:
			f = 0
		case measure.FamilyIPv4:
			f = 1
		}
		if f < 0 {
			continue
		}
		client := r.Prefix
		if r.ClientAddr.IsValid() {
			client = r.ClientAddr.String()
		}
		for _, isp := range []string{"*", r.ISP} {
			var cv *[numMetrics][2][]float64
			for _, m := range Metrics {
				v := r.Values[m]
				if v != v {
					continue
				}
				k := key{isp, m}
				if vals[k] == nil {
					vals[k] = new([2][]float64)
				}
				vals[k][f] = append(vals[k][f], v)
				if cv == nil {
					c := ck{isp, client, r.Appliance}
					if cv = byClient[c]; cv == nil {
						cv = new([numMetrics][2][]float64)
						byClient[c] = cv
					}
				}
				cv[m][f] = append(cv[m][f], v)
			}
		}
	}
	// Per (ISP, client): the medians of each family over the appliances
	// the client measured over both.
	type pairKey struct {
		isp, client string
		m           Metric
	}
	paired := map[pairKey]*[2][]float64{}
	for c, cv := range byClient {
		for _, m := range Metrics {
			if len(cv[m][0]) == 0 || len(cv[m][1]) == 0 {
				continue
			}
			k := pairKey{c.isp, c.client, m}
			if paired[k] == nil {
				paired[k] = new([2][]float64)
			}
			paired[k][0] = append(paired[k][0], cv[m][0]...)
			paired[k][1] = append(paired[k][1], cv[m][1]...)
		}
	}
	pairs := map[key][2][]float64{}
	pkeys := make([]pairKey, 0, len(paired))
	for k := range paired {
		pkeys = append(pkeys, k)
	}
	slices.SortFunc(pkeys, func(a, b pairKey) int {
		return cmp.Or(cmp.Compare(a.isp, b.isp), cmp.Compare(a.m, b.m), cmp.Compare(a.client, b.client))
	})
	for _, k := range pkeys {
		p := paired[k]
		kk := key{k.isp, k.m}
		ab := pairs[kk]
		ab[0], ab[1] = append(ab[0], medianOf(p[0])), append(ab[1], medianOf(p[1]))
		pairs[kk] = ab
	}
	half := 1 - (1-level)/2
	var out []FamilyDiff
	for k, v := range vals {
		d := FamilyDiff{ISP: k.isp, Metric: k.m, N6: len(v[0]), N4: len(v[1]),
			Diff: math.NaN(), DiffLo: math.NaN(), DiffHi: math.NaN(), PairedDiff: math.NaN(), PairedLo: math.NaN(), PairedHi: math.NaN(),
			SignP: math.NaN(), WilcoxonP: math.NaN(), Median6: math.NaN(), Median4: math.NaN()}
		if d.N6 == 0 || d.N4 == 0 {
			continue // one family only: nothing to compare
		}
		slices.Sort(v[0])
		slices.Sort(v[1])
		lo6, m6, hi6, ok6 := stats.QuantileCI(v[0], 0.5, half)
		lo4, m4, hi4, ok4 := stats.QuantileCI(v[1], 0.5, half)
		d.Median6, d.Median4, d.Diff = m6, m4, m6-m4
		if ok6 && ok4 {
			d.DiffLo, d.DiffHi, d.DiffOK = lo6-hi4, hi6-lo4, true
		}
		if ab, ok := pairs[k]; ok {
			d.Pairs = len(ab[0])
			if lo, est, hi, ok := stats.PairedMedianDiffCI(ab[0], ab[1], level); ok {
				d.PairedLo, d.PairedDiff, d.PairedHi, d.PairedOK = lo, est, hi, true
			} else {
				d.PairedDiff = medianOf(diffs(ab[0], ab[1]))
			}
			if r, ok := stats.SignTest(ab[0], ab[1]); ok {
				d.SignP = r.P
			}
			if r, ok := stats.WilcoxonSignedRank(ab[0], ab[1]); ok {
				d.WilcoxonP = r.P
			}
		}
		if !d.DiffOK && !d.PairedOK {
			d.Note = NoteInsufficient
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b FamilyDiff) int {
		return cmp.Or(ispOrder(a.ISP, b.ISP), cmp.Compare(a.Metric, b.Metric))
	})
	return out
}

// ispOrder sorts the all-ISPs cell "*" first, then ISPs by name.
func ispOrder(a, b string) int {
	switch {
	case a == b:
		return 0
	case a == "*":
		return -1
	case b == "*":
		return 1
	}
	return cmp.Compare(a, b)
}
