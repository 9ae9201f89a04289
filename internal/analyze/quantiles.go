package analyze

import (
	"cmp"
	"slices"
	"time"

	"github.com/ocdn/ocdn/internal/stats"
)

// Quantiles reported per cell.
var reportQuantiles = []float64{0.5, 0.9, 0.99}

// NoteInsufficient marks a quantile that has no confidence interval at the
// requested level because the cell has fewer than stats.MinSamples values.
const NoteInsufficient = "insufficient samples"

// QuantileCell is one quantile of one metric in one cell. Cells are
// (site, ASN, prefix group, hour); AllHours cells aggregate a site over
// every group and hour (ASN 0, PrefixGroup "*"), for the site overview.
type QuantileCell struct {
	Site        string
	ASN         uint32
	PrefixGroup string
	Hour        time.Time // zero for a site-wide cell
	Metric      Metric
	Q           float64
	N           int
	MinN        int // stats.MinSamples(Q, level)
	// Est, Lo and Hi are set only when OK: a number is never reported
	// without its interval.
	Est, Lo, Hi float64
	OK          bool
	Note        string
}

// SiteWide reports whether the cell aggregates a whole site.
func (c *QuantileCell) SiteWide() bool { return c.Hour.IsZero() }

type cellKey struct {
	site  string
	asn   uint32
	group string
	hour  int64 // Unix hour; -1 for site-wide
}

// Quantiles computes p50, p90 and p99 of every metric per cell with
// distribution-free confidence intervals at level (stats.QuantileCI). The
// site-wide cells come first (by site), then the fine cells ordered by
// site, ASN, prefix group and hour.
func Quantiles(rows []Row, level float64) []QuantileCell {
	vals := make(map[cellKey]*[numMetrics][]float64)
	add := func(k cellKey, r *Row) {
		v := vals[k]
		if v == nil {
			v = new([numMetrics][]float64)
			vals[k] = v
		}
		for _, m := range Metrics {
			if x := r.Values[m]; x == x {
				v[m] = append(v[m], x)
			}
		}
	}
	for i := range rows {
		r := &rows[i]
		h := Hour(r.Time).Unix() / 3600
		add(cellKey{r.Site, r.ASN, r.PrefixGroup, h}, r)
		add(cellKey{r.Site, 0, "*", -1}, r)
	}
	keys := make([]cellKey, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b cellKey) int {
		if (a.hour < 0) != (b.hour < 0) {
			if a.hour < 0 {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.site, b.site), cmp.Compare(a.asn, b.asn),
			cmp.Compare(a.group, b.group), cmp.Compare(a.hour, b.hour))
	})
	var out []QuantileCell
	for _, k := range keys {
		v := vals[k]
		var hour time.Time
		if k.hour >= 0 {
			hour = time.Unix(k.hour*3600, 0).UTC()
		}
		for _, m := range Metrics {
			x := v[m]
			if len(x) == 0 {
				continue
			}
			slices.Sort(x)
			for _, q := range reportQuantiles {
				c := QuantileCell{Site: k.site, ASN: k.asn, PrefixGroup: k.group, Hour: hour, Metric: m, Q: q,
					N: len(x), MinN: stats.MinSamples(q, level)}
				lo, est, hi, ok := stats.QuantileCI(x, q, level)
				if ok {
					c.Est, c.Lo, c.Hi, c.OK = est, lo, hi, true
				} else {
					c.Note = NoteInsufficient
				}
				out = append(out, c)
			}
		}
	}
	return out
}

// SiteValues returns every value of m per site, sorted, for CDF plots.
func SiteValues(rows []Row, m Metric) map[string][]float64 {
	out := make(map[string][]float64)
	for i := range rows {
		if x := rows[i].Values[m]; x == x {
			out[rows[i].Site] = append(out[rows[i].Site], x)
		}
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out
}
