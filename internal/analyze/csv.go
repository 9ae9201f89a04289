package analyze

import (
	"bufio"
	"cmp"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// num formats v for CSV: empty for NaN, up to 4 decimals, no exponent.
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	s := strconv.FormatFloat(v, 'f', 4, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}

func pval(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

func hourStr(t time.Time) string {
	if t.IsZero() {
		return "*"
	}
	return t.UTC().Format(time.RFC3339)
}

func asnStr(a uint32) string {
	if a == 0 {
		return "*"
	}
	return strconv.FormatUint(uint64(a), 10)
}

func sortStrings(s []string) { slices.Sort(s) }

// ispStr names an ISP cell: "*" for all, "unknown" for clients outside
// every ISP the control plane knows.
func ispStr(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// CSV headers, in file order. They are part of the tool's interface.
var (
	QuantilesHeader         = []string{"site", "asn", "prefix_group", "hour", "metric", "quantile", "n", "min_n", "value", "ci_lo", "ci_hi", "level", "note"}
	PairedHeader            = []string{"prefix_group", "asn", "steered_site", "alt_site", "metric", "clients", "steered_median", "alt_median", "diff_median", "diff_ci_lo", "diff_ci_hi", "rel_improvement", "rel_ci_lo", "rel_ci_hi", "sign_p", "wilcoxon_p", "level", "note"}
	RegretHeader            = []string{"metric", "margin", "groups", "groups_evaluated", "groups_regret", "share_groups", "pulses", "pulses_regret", "share_pulses", "bytes", "bytes_regret", "share_bytes"}
	RegretGroupsHeader      = []string{"metric", "prefix_group", "asn", "steered_site", "best_alt_site", "rel_improvement", "rel_ci_lo", "rel_ci_hi", "clients", "pulses", "bytes", "evaluated", "regret"}
	ChangesHeader           = []string{"site", "metric", "at", "detected_at", "before_p50", "after_p50", "rel_shift", "direction"}
	SeriesHeader            = []string{"site", "metric", "hour", "n", "p50", "ci_lo", "ci_hi"}
	MissesHeader            = []string{"site", "class", "bytes"}
	ArmsHeader              = []string{"experiment", "arm", "metric", "reports", "clients", "n", "p50", "ci_lo", "ci_hi", "control", "diff_vs_control", "diff_ci_lo", "diff_ci_hi", "significant", "level", "note"}
	TransportSitesHeader    = []string{"site", "prefix_group", "connections", "min_rtt_ms_p50", "min_rtt_ci_lo", "min_rtt_ci_hi", "connect_ms_p50", "connect_ci_lo", "connect_ci_hi", "connect_n", "connect_minus_min_rtt_ms", "retrans_p50", "retrans_p90", "retrans_p99", "level"}
	TransportPrefixesHeader = []string{"site", "client_prefix", "connections", "retrans_rate", "retrans_ci_lo", "retrans_ci_hi", "site_retrans_rate", "loss_stands_out", "rtt_inflation_ms_p50", "inflation_ci_lo", "inflation_ci_hi", "site_rtt_inflation_ms", "inflation_stands_out", "level"}
	TransportArmsHeader     = []string{"experiment", "site", "arm", "congestion_control", "metric", "n", "clients", "p50", "ci_lo", "ci_hi", "control", "diff_vs_control", "diff_ci_lo", "diff_ci_hi", "significant", "pooled_retrans_rate", "pooled_ci_lo", "pooled_ci_hi", "level", "note"}
	ResolversHeader         = []string{"isp", "clients", "same_prefix", "same_as", "other_as", "unknown", "share_distant", "distant_ci_lo", "distant_ci_hi", "resolvers", "share_ecs", "ecs_ci_lo", "ecs_ci_hi", "level"}
	DNSTimesHeader          = []string{"family", "distance", "quantile", "n", "min_n", "dns_ms", "ci_lo", "ci_hi", "level", "note"}
	FamiliesHeader          = []string{"isp", "metric", "n_ipv6", "n_ipv4", "median_ipv6", "median_ipv4", "diff", "diff_ci_lo", "diff_ci_hi", "pairs", "paired_diff", "paired_ci_lo", "paired_ci_hi", "sign_p", "wilcoxon_p", "level", "note"}
	ExperimentsHeader       = []string{"experiment", "start", "control", "arm", "share", "units", "expected_units", "srm_chi2", "srm_df", "srm_p", "srm_mismatch", "mismatched_reports", "note"}
)

type csvTable struct {
	name   string
	header []string
	rows   func(emit func(...string))
}

// transportTables are transport_sites.csv, transport_prefixes.csv and
// transport_arms.csv, written only when there is a transport table.
func transportTables(res *Results, lvl string) []csvTable {
	t := res.Transport
	if t == nil {
		return nil
	}
	qv := func(v []QuantileValue, i int) string {
		if i < len(v) && v[i].OK {
			return num(v[i].Est)
		}
		return ""
	}
	return []csvTable{
		{"transport_sites.csv", TransportSitesHeader, func(emit func(...string)) {
			for _, s := range t.Sites {
				emit(s.Site, s.PrefixGroup, strconv.Itoa(s.Connections), num(s.MinRTTMs), num(s.MinRTTLo), num(s.MinRTTHi),
					num(s.ConnectMs), num(s.ConnectLo), num(s.ConnectHi), strconv.Itoa(s.ConnectN), num(s.DiffMs),
					qv(s.Retrans, 0), qv(s.Retrans, 1), qv(s.Retrans, 2), lvl)
			}
		}},
		{"transport_prefixes.csv", TransportPrefixesHeader, func(emit func(...string)) {
			for _, p := range t.Prefixes {
				emit(p.Site, p.Prefix, strconv.Itoa(p.Connections), num(p.RetransRate), num(p.RetransLo), num(p.RetransHi),
					num(p.SiteRetransRate), strconv.FormatBool(p.LossStandsOut), num(p.InflationMs), num(p.InflationLo), num(p.InflationHi),
					num(p.SiteInflationMs), strconv.FormatBool(p.InflationStandsOut), lvl)
			}
		}},
		{"transport_arms.csv", TransportArmsHeader, func(emit func(...string)) {
			for _, e := range t.Arms {
				for _, a := range e.Results {
					pr := e.Retrans[a.Arm]
					pooled := []string{"", "", ""}
					if a.Metric == MetricRetransRate {
						pooled = []string{num(pr.Rate), num(pr.Lo), num(pr.Hi)}
					}
					emit(e.Experiment, cmp.Or(e.Site, "*"), a.Arm, e.CongestionControl[a.Arm], a.Metric, strconv.Itoa(a.N), strconv.Itoa(a.Clients),
						num(a.P50), num(a.Lo), num(a.Hi), a.Control, num(a.Diff), num(a.DiffLo), num(a.DiffHi), strconv.FormatBool(a.Significant),
						pooled[0], pooled[1], pooled[2], lvl, a.Note)
				}
			}
		}},
	}
}

// WriteCSV writes the CSV tables into dir and returns their paths.
func WriteCSV(dir string, res *Results) ([]string, error) {
	lvl := num(res.Config.Level)
	tables := []csvTable{
		{"quantiles.csv", QuantilesHeader, func(emit func(...string)) {
			for _, c := range res.Quantiles {
				v, lo, hi := "", "", ""
				if c.OK {
					v, lo, hi = num(c.Est), num(c.Lo), num(c.Hi)
				}
				emit(c.Site, asnStr(c.ASN), c.PrefixGroup, hourStr(c.Hour), c.Metric.String(), num(c.Q),
					strconv.Itoa(c.N), strconv.Itoa(c.MinN), v, lo, hi, lvl, c.Note)
			}
		}},
		{"paired.csv", PairedHeader, func(emit func(...string)) {
			for _, p := range res.Pairs {
				emit(p.PrefixGroup, asnStr(p.ASN), p.SteeredSite, p.AltSite, p.Metric.String(), strconv.Itoa(p.Clients),
					num(p.SteeredMedian), num(p.AltMedian), num(p.Diff), num(p.DiffLo), num(p.DiffHi),
					num(p.Rel), num(p.RelLo), num(p.RelHi), pval(p.SignP), pval(p.WilcoxonP), lvl, p.Note)
			}
		}},
		{"regret.csv", RegretHeader, func(emit func(...string)) {
			for _, s := range res.RegretSummary {
				emit(s.Metric.String(), num(s.Margin), strconv.Itoa(s.Groups), strconv.Itoa(s.Evaluated), strconv.Itoa(s.Regretful),
					num(s.ShareGroups), strconv.Itoa(s.Pulses), strconv.Itoa(s.PulsesRegretful), num(s.SharePulses),
					strconv.FormatInt(s.Bytes, 10), strconv.FormatInt(s.BytesRegretful, 10), num(s.ShareBytes))
			}
		}},
		{"regret_groups.csv", RegretGroupsHeader, func(emit func(...string)) {
			for _, g := range res.GroupRegret {
				emit(g.Metric.String(), g.PrefixGroup, asnStr(g.ASN), g.SteeredSite, g.BestAlt, num(g.Rel), num(g.RelLo), num(g.RelHi),
					strconv.Itoa(g.Clients), strconv.Itoa(g.Pulses), strconv.FormatInt(g.Bytes, 10),
					strconv.FormatBool(g.Evaluated), strconv.FormatBool(g.Regret))
			}
		}},
		{"changes.csv", ChangesHeader, func(emit func(...string)) {
			for _, c := range res.Changes {
				emit(c.Site, c.Metric.String(), hourStr(c.At), hourStr(c.DetectedAt), num(c.Before), num(c.After), num(c.RelShift), c.Direction)
			}
		}},
		{"series.csv", SeriesHeader, func(emit func(...string)) {
			for _, s := range res.Series {
				for _, p := range s.Points {
					emit(s.Site, s.Metric.String(), hourStr(p.Hour), strconv.Itoa(p.N), num(p.P50), num(p.Lo), num(p.Hi))
				}
			}
		}},
		{"misses.csv", MissesHeader, func(emit func(...string)) {
			for _, m := range res.Misses {
				emit(m.Site, m.Class, strconv.FormatInt(m.Bytes, 10))
			}
		}},
		{"arms.csv", ArmsHeader, func(emit func(...string)) {
			for _, e := range res.Experiments {
				for _, a := range e.Results {
					emit(a.Experiment, a.Arm, a.Metric, strconv.Itoa(a.Reports), strconv.Itoa(a.Clients), strconv.Itoa(a.N),
						num(a.P50), num(a.Lo), num(a.Hi), a.Control, num(a.Diff), num(a.DiffLo), num(a.DiffHi), strconv.FormatBool(a.Significant), lvl, a.Note)
				}
			}
		}},
		{"resolvers.csv", ResolversHeader, func(emit func(...string)) {
			for _, r := range res.Resolvers.ISPs {
				emit(ispStr(r.ISP), strconv.Itoa(r.Clients), strconv.Itoa(r.Distance[distances[0]]), strconv.Itoa(r.Distance[distances[1]]),
					strconv.Itoa(r.Distance[distances[2]]), strconv.Itoa(r.Distance[distances[3]]),
					num(r.Distant.Est), num(r.Distant.Lo), num(r.Distant.Hi), strconv.Itoa(r.Resolvers),
					num(r.ECS.Est), num(r.ECS.Lo), num(r.ECS.Hi), lvl)
			}
		}},
		{"dns_times.csv", DNSTimesHeader, func(emit func(...string)) {
			for _, t := range res.Resolvers.Times {
				v, lo, hi := "", "", ""
				if t.OK {
					v, lo, hi = num(t.Est), num(t.Lo), num(t.Hi)
				}
				emit(t.Family, t.Distance, num(t.Q), strconv.Itoa(t.N), strconv.Itoa(t.MinN), v, lo, hi, lvl, t.Note)
			}
		}},
		{"families.csv", FamiliesHeader, func(emit func(...string)) {
			for _, f := range res.Families {
				emit(ispStr(f.ISP), f.Metric.String(), strconv.Itoa(f.N6), strconv.Itoa(f.N4), num(f.Median6), num(f.Median4),
					num(f.Diff), num(f.DiffLo), num(f.DiffHi), strconv.Itoa(f.Pairs), num(f.PairedDiff), num(f.PairedLo), num(f.PairedHi),
					pval(f.SignP), pval(f.WilcoxonP), lvl, f.Note)
			}
		}},
		{"experiments.csv", ExperimentsHeader, func(emit func(...string)) {
			for _, e := range res.Experiments {
				start := ""
				if !e.Meta.Start.IsZero() {
					start = e.Meta.Start.UTC().Format(time.RFC3339)
				}
				for _, arm := range e.ArmNames {
					share := ""
					if e.Meta.Shares != nil {
						share = num(e.Meta.Shares[arm])
					}
					emit(e.Meta.Name, start, e.Meta.Control, arm, share, strconv.Itoa(e.Units[arm]), num(e.Expected[arm]),
						num(e.SRM.ChiSquare), strconv.Itoa(e.SRM.DF), pval(e.SRM.P), strconv.FormatBool(e.SRM.Mismatch), strconv.Itoa(e.Mismatched), e.SRM.Note)
				}
			}
		}},
	}
	tables = append(tables, transportTables(res, lvl)...)
	var paths []string
	for _, t := range tables {
		p := filepath.Join(dir, t.name)
		if err := writeCSVFile(p, t.header, t.rows); err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func writeCSVFile(path string, header []string, rows func(emit func(...string))) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	w := csv.NewWriter(bw)
	werr := w.Write(header)
	rows(func(rec ...string) {
		if werr == nil {
			werr = w.Write(rec)
		}
	})
	w.Flush()
	if werr == nil {
		werr = w.Error()
	}
	if werr == nil {
		werr = bw.Flush()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("writing %s: %w", path, werr)
	}
	return nil
}
