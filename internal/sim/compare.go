package sim

import (
	"context"
	"fmt"
	"io"
	"math"
	"text/tabwriter"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/ocdn/ocdn/internal/sim/world"
	"github.com/ocdn/ocdn/internal/stats"
)

// Metric is one figure of a run that compare reports.
type Metric struct {
	Name string
	Unit string
	Get  func(*Summary) float64
}

// Metrics are the figures compare reports, in order.
var Metrics = []Metric{
	{"offload", "share", func(s *Summary) float64 { return s.Offload }},
	{"cdn_share", "share", func(s *Summary) float64 { return s.CDNShare }},
	{"origin_egress", "TB", func(s *Summary) float64 { return float64(s.OriginEgressBytes) / 1e12 }},
	{"client_origin", "TB", func(s *Summary) float64 { return float64(s.ClientBytes["origin"]) / 1e12 }},
	{"fill_origin", "TB", func(s *Summary) float64 { return float64(s.FillBytes["origin"]) / 1e12 }},
	{"fill_peer", "TB", func(s *Summary) float64 { return float64(s.FillBytes["peer"]) / 1e12 }},
	{"fill_tier", "TB", func(s *Summary) float64 { return float64(s.FillBytes["tier"]) / 1e12 }},
	{"content_miss_share", "share", func(s *Summary) float64 { return s.ContentMissShare }},
	{"health_miss_share", "share", func(s *Summary) float64 { return s.HealthMissShare }},
	{"distance_mean", "km", func(s *Summary) float64 { return s.DistanceKm.Mean }},
	{"rtt_mean", "ms", func(s *Summary) float64 { return s.RTTMs.Mean }},
	{"utilization_p99", "share", func(s *Summary) float64 { return s.Utilization.P99 }},
	{"failovers_per_session", "", func(s *Summary) float64 { return float64(s.Failovers) / math.Max(float64(s.Sessions), 1) }},
	{"sessions", "M", func(s *Summary) float64 { return float64(s.Sessions) / 1e6 }},
}

// Difference is one metric of a comparison: B − A over paired runs (the
// same seeds), with a Student-t confidence interval of the mean
// difference and the Wilcoxon signed-rank p-value (internal/stats).
type Difference struct {
	Metric   string    `json:"metric"`
	Unit     string    `json:"unit"`
	MeanA    float64   `json:"mean_a"`
	MeanB    float64   `json:"mean_b"`
	Diff     float64   `json:"diff"`
	CILow    float64   `json:"ci_low"`
	CIHigh   float64   `json:"ci_high"`
	P        float64   `json:"wilcoxon_p"`
	A        []float64 `json:"a"`
	B        []float64 `json:"b"`
	Relative float64   `json:"relative"`
}

// Comparison is what compare found.
type Comparison struct {
	A, B  string
	Runs  int
	Level float64
	Diffs []Difference
}

// Compare runs scenarios a and b over the world for seeds seed0,
// seed0+1, … (runs of each) and reports every metric's paired difference
// with a confidence interval at level (e.g. 0.95).
func Compare(ctx context.Context, w *world.World, a, b *Scenario, runs int, seed0 uint64, level float64, opt Options, progress func(string)) (*Comparison, error) {
	if runs < 2 {
		return nil, fmt.Errorf("--runs %d: at least 2 runs are needed for an interval", runs)
	}
	sa, sb := make([]*Summary, runs), make([]*Summary, runs)
	for i := 0; i < runs; i++ {
		for j, sc := range []*Scenario{a, b} {
			c := *sc
			c.Seed = seed0 + uint64(i)
			sm, err := New(w, &c, opt)
			if err != nil {
				return nil, err
			}
			s, err := sm.Run(ctx)
			if err != nil {
				return nil, err
			}
			if j == 0 {
				sa[i] = s
			} else {
				sb[i] = s
			}
			if progress != nil {
				progress(fmt.Sprintf("run %d/%d of %s (seed %d): offload %.4f", i+1, runs, c.Name, c.Seed, s.Offload))
			}
		}
	}
	return compareSummaries(a.Name, b.Name, sa, sb, level), nil
}

func compareSummaries(an, bn string, sa, sb []*Summary, level float64) *Comparison {
	c := &Comparison{A: an, B: bn, Runs: len(sa), Level: level}
	n := float64(len(sa))
	tq := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: n - 1}.Quantile(1 - (1-level)/2)
	for _, m := range Metrics {
		d := Difference{Metric: m.Name, Unit: m.Unit}
		var diffs []float64
		for i := range sa {
			x, y := m.Get(sa[i]), m.Get(sb[i])
			d.A, d.B = append(d.A, x), append(d.B, y)
			d.MeanA += x / n
			d.MeanB += y / n
			diffs = append(diffs, y-x)
		}
		var mean, ss float64
		for _, v := range diffs {
			mean += v / n
		}
		for _, v := range diffs {
			ss += (v - mean) * (v - mean)
		}
		se := math.Sqrt(ss/(n-1)) / math.Sqrt(n)
		d.Diff, d.CILow, d.CIHigh = mean, mean-tq*se, mean+tq*se
		if r, ok := stats.WilcoxonSignedRank(d.B, d.A); ok {
			d.P = r.P
		}
		if d.MeanA != 0 {
			d.Relative = d.Diff / math.Abs(d.MeanA)
		}
		c.Diffs = append(c.Diffs, d)
	}
	return c
}

// Print writes the comparison as a table.
func (c *Comparison) Print(w io.Writer) {
	fmt.Fprintf(w, "B = %s vs A = %s over %d paired runs (same seeds); %.0f%% confidence intervals of the mean difference (Student t), Wilcoxon signed-rank p\n\n", c.B, c.A, c.Runs, 100*c.Level)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\tunit\tA\tB\tB − A\tCI low\tCI high\tp\t")
	for _, d := range c.Diffs {
		fmt.Fprintf(tw, "%s\t%s\t%.5g\t%.5g\t%+.4g\t%+.4g\t%+.4g\t%.3g\t\n", d.Metric, d.Unit, d.MeanA, d.MeanB, d.Diff, d.CILow, d.CIHigh, d.P)
	}
	tw.Flush()
}

// PrintSummary writes a run's main figures.
func PrintSummary(w io.Writer, s *Summary) {
	fmt.Fprintf(w, "ocdn sim: %s, seed %d, world %s (%d prefixes, %d sites, %d appliances), %s in %d steps\n",
		s.Scenario, s.Seed, s.World, s.Prefixes, s.Sites, s.Appliances, s.Duration, s.Steps)
	fmt.Fprintf(w, "sessions %d (%d steering decisions, %d failovers) in %.1f s (%.1f s of set-up): %.0f sessions/s on %d workers\n",
		s.Sessions, s.Decisions, s.Failovers, s.Run.WallSeconds, s.Run.SetupSeconds, s.Run.SessionsPerSecond, s.Run.Workers)
	all := 0.0
	for _, v := range s.ClientBytes {
		all += float64(v)
	}
	fmt.Fprintf(w, "client bytes %.2f TB: embedded %.2f%%, ixp %.2f%%, private %.2f%%, fallback %.2f%%, origin %.2f%%\n", all/1e12,
		pct(s.ClientBytes["embedded"], all), pct(s.ClientBytes["ixp"], all), pct(s.ClientBytes["private"], all), pct(s.ClientBytes["fallback"], all), pct(s.ClientBytes["origin"], all))
	fmt.Fprintf(w, "offload %.2f%%; misses: content %.2f%%, health %.2f%%, other %.2f%% of client bytes\n", 100*s.Offload,
		pct(s.Misses["content"], all), pct(s.Misses["health"], all), pct(s.Misses["other"], all))
	fmt.Fprintf(w, "fill: peer %.2f TB, tier %.2f TB, origin %.2f TB (prefill: origin %.2f TB); origin bytes per unique byte %.3f; origin egress %.2f TB\n",
		tb(s.FillBytes["peer"]), tb(s.FillBytes["tier"]), tb(s.FillBytes["origin"]), tb(s.PrefillBytes["origin"]), s.OriginPerUnique, tb(s.OriginEgressBytes))
	fmt.Fprintf(w, "client to site: mean %.0f km (p50 %.0f, p90 %.0f); estimated RTT mean %.1f ms (p90 %.1f)\n",
		s.DistanceKm.Mean, s.DistanceKm.P50, s.DistanceKm.P90, s.RTTMs.Mean, s.RTTMs.P90)
	fmt.Fprintf(w, "appliance utilisation p50 %.0f%%, p99 %.0f%%; %d appliance and %d site failures; %d route changes (%d replayed updates); %d replans adding %.2f TB\n",
		100*s.Utilization.P50, 100*s.Utilization.P99, s.ApplianceFailures, s.SiteFailures, s.RouteChanges, s.ChurnUpdates, s.Replans, tb(s.ReplanAddedBytes))
}

func pct(v int64, all float64) float64 {
	if all == 0 {
		return 0
	}
	return 100 * float64(v) / all
}

func tb(v int64) float64 { return float64(v) / 1e12 }
