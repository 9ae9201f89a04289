package cli

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ocdn/ocdn/internal/analyze"
)

func newAnalyzeCmd(g *globals) *cobra.Command {
	var (
		opts         analyze.Options
		since, until string
		asns         []uint
		level        float64
	)
	cmd := &cobra.Command{
		Use:   "analyze",
		Short: "Report on stored measurements: quantiles with confidence intervals, paired site comparisons, steering regret, change points",
		Long: `analyze reads the pulse Parquet files of an ingest directory (--data, as written
by the control plane's measurement ingester) and writes a self-contained HTML
report (index.html, inline SVG plots) and CSV tables into --out:

  quantiles.csv      p50/p90/p99 of connect_ms, ttfb_ms, throughput_bps per
                     (site, ASN, prefix group, hour) and per site, with 95%
                     distribution-free intervals; too-small cells are marked
                     "insufficient samples" and carry no value
  paired.csv         steered site vs each alternative within clients
  regret.csv         share of prefix groups (and of their pulses and bytes)
                     with an alternative better by more than --margin with
                     confidence; regret_groups.csv has the per-group verdicts
  changes.csv        CUSUM change points in hourly p50 per site and metric
  series.csv         the hourly p50 series
  misses.csv         miss bytes per site and class (header only without data)
  arms.csv           steering experiments (reports with context "arm"): per
                     experiment, arm and metric the median with its
                     interval and the difference against the control arm
                     with a cluster bootstrap interval; probe metrics only
                     at the site each report was steered to, playback
                     metrics from the qoe table; reports whose arm is not
                     their client's assigned arm are left out
  experiments.csv    per experiment and arm: share, client /24s, the
                     sample-ratio-mismatch check, mismatched reports
  resolvers.csv      per ISP: clients by resolver distance (same_prefix,
                     same_as, other_as, unknown), the share using a distant
                     or public resolver and the share whose resolver sent
                     a client subnet, with Clopper–Pearson intervals
  dns_times.csv      dns_ms quantiles, all and per family and distance
  families.csv       IPv6 minus IPv4 per ISP and metric: unpaired medians
                     with a conservative interval, and paired within
                     clients that measured one appliance over both
  dns.json           resolvers, DNS times and families as JSON

With a transport table (the appliances' TCP_INFO samples), also:

  transport_sites.csv     per site and prefix group: the server's min RTT
                          against the client-measured connect time (and
                          their difference), retransmission-rate p50/p90/p99
  transport_prefixes.csv  client prefixes ranked by how far their loss
                          (retransmission rate, connection bootstrap
                          interval) or RTT inflation (smoothed − min RTT)
                          stands out from their site's
  transport_arms.csv      congestion control by experiment arm: goodput,
                          retransmission rate, RTT inflation and playback
                          QoE with intervals and differences to the control,
                          over every site and, when the experiment spans
                          several, at each site (transport metrics)
  transport.json          the same, as JSON

Times filter on the server's receive time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Filter.Since, err = parseWhen(since, "--since"); err != nil {
				return err
			}
			if opts.Filter.Until, err = parseWhen(until, "--until"); err != nil {
				return err
			}
			for _, a := range asns {
				if a == 0 || a > 1<<32-1 {
					return fmt.Errorf("--asn %d: want an AS number between 1 and 4294967295", a)
				}
				opts.Filter.ASNs = append(opts.Filter.ASNs, uint32(a))
			}
			opts.Level = level
			pl := newProgressLine(cmd.ErrOrStderr())
			if pl != nil {
				opts.Progress = pl.show
			}
			ctx, stop := signalContext(cmd.Context(), cmd.ErrOrStderr())
			defer stop()
			sum, err := analyze.Run(ctx, opts)
			pl.done()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%d pulses from %d files, %s – %s, sites %s\n", sum.Rows, sum.Files,
				sum.First.Format(time.RFC3339), sum.Last.Format(time.RFC3339), strings.Join(sum.Sites, ", "))
			fmt.Fprintf(out, "quantile values: %d (%d insufficient samples); paired comparisons: %d; change points: %d\n",
				sum.Cells, sum.Insufficient, sum.Pairs, sum.Changes)
			for _, r := range sum.RegretSummary {
				if r.Evaluated > 0 {
					fmt.Fprintf(out, "regret %s: %d of %d evaluated prefix groups (%.1f%% of their pulses)\n",
						r.Metric, r.Regretful, r.Evaluated, 100*r.SharePulses)
				}
			}
			for _, e := range sum.Experiments {
				printExperiment(out, e)
			}
			printDNS(out, sum)
			if !sum.HaveMisses {
				fmt.Fprintln(out, "no miss data")
			}
			printTransport(out, sum.Transport)
			if sum.TransportJSON != "" {
				fmt.Fprintf(out, "transport JSON: %s\n", sum.TransportJSON)
			}
			fmt.Fprintf(out, "report: %s\n", sum.HTML)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.DataDir, "data", "", "ingest directory holding pulses/date=…/hour=…/*.parquet, or a directory of them (one per control-plane replica: their union is read) (required)")
	f.StringVar(&opts.OutDir, "out", "", "directory for index.html and the CSV files (created if needed; required)")
	f.StringVar(&since, "since", "", "only pulses received at or after this time (RFC 3339, or a date YYYY-MM-DD, UTC)")
	f.StringVar(&until, "until", "", "only pulses received before this time (RFC 3339, or a date YYYY-MM-DD meaning its midnight UTC)")
	f.StringSliceVar(&opts.Filter.Sites, "site", nil, "only pulses to these sites (repeat or comma-separate); alternatives outside the list are not compared")
	f.UintSliceVar(&asns, "asn", nil, "only pulses from clients in these ASNs (repeat or comma-separate)")
	f.Float64Var(&opts.Margin, "margin", 0.10, "relative improvement an alternative site must exceed with confidence to count as steering regret")
	f.Float64Var(&level, "level", 0.95, "confidence level of every interval")
	f.Uint64Var(&opts.Seed, "seed", 1, "seed of the bootstrap, for reproducible intervals")
	return cmd
}

// parseWhen parses an RFC 3339 time or a YYYY-MM-DD date (UTC midnight).
func parseWhen(s, flag string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%s %q: want an RFC 3339 time (2026-11-26T10:00:00Z) or a date (2026-11-26)", flag, s)
}

// printExperiment writes an experiment's arms with their intervals, the
// differences against the control and the sample-ratio check.
func printExperiment(w io.Writer, e analyze.ExperimentResult) {
	name := e.Meta.Name
	if name == "" {
		name = "(unnamed)"
	}
	fmt.Fprintf(w, "experiment %s", name)
	if !e.Meta.Start.IsZero() {
		fmt.Fprintf(w, " (started %s)", e.Meta.Start.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, ", control %s:", e.Meta.Control)
	for _, a := range e.ArmNames {
		fmt.Fprintf(w, " %s %d client /24s (expected %.1f)", a, e.Units[a], e.Expected[a])
	}
	verdict := "ok"
	if e.SRM.Mismatch {
		verdict = "MISMATCH: the assignment or the data is broken, do not trust the differences"
	}
	fmt.Fprintf(w, "\n  sample ratio: chi2 %.2f, df %d, p %.3g: %s", e.SRM.ChiSquare, e.SRM.DF, e.SRM.P, verdict)
	if e.SRM.Note != "" {
		fmt.Fprintf(w, " (%s)", e.SRM.Note)
	}
	fmt.Fprintf(w, "; %d reports name an arm other than their client's (left out)\n", e.Mismatched)
	for _, r := range e.Results {
		printArm(w, "  ", r)
	}
}

// printArm writes one arm's metric: its median with the interval and its
// difference against the control.
func printArm(w io.Writer, indent string, r analyze.ArmResult) {
	fmt.Fprintf(w, "%s%-10s %-17s n=%-5d clients=%-4d p50 %s", indent, r.Arm, r.Metric, r.N, r.Clients, ciText(r.P50, r.Lo, r.Hi, r.OK))
	switch {
	case r.Arm == r.Control:
		fmt.Fprint(w, "  (control)")
	case r.DiffOK:
		sig := "not significant"
		if r.Significant {
			sig = "significant"
		}
		fmt.Fprintf(w, "  diff %s [%s, %s] %s", g4(r.Diff), g4(r.DiffLo), g4(r.DiffHi), sig)
	default:
		fmt.Fprintf(w, "  diff: %s", r.Note)
	}
	fmt.Fprintln(w)
}

// printTransport writes the transport section: sites, the prefixes that
// stand out, and the congestion-control comparison.
func printTransport(w io.Writer, t *analyze.TransportResults) {
	if t == nil {
		fmt.Fprintln(w, "no transport data")
		return
	}
	fmt.Fprintf(w, "transport: %d TCP_INFO samples of %d connections\n", t.Samples, t.Connections)
	// A (site, prefix) with a few connections and no pulses to set beside
	// them has no figure to show, only lines: they are counted, and
	// transport.json has them.
	few := 0
	for _, s := range t.Sites {
		if s.ConnectN == 0 && !s.MinRTTOK {
			few++
			continue
		}
		fmt.Fprintf(w, "  %s %s: %d connections, server min RTT p50 %s", s.Site, s.PrefixGroup, s.Connections, ciText(s.MinRTTMs, s.MinRTTLo, s.MinRTTHi, s.MinRTTOK)+unit(s.MinRTTOK, " ms"))
		if s.ConnectN == 0 {
			fmt.Fprint(w, ", no client pulses to compare")
		} else {
			fmt.Fprintf(w, ", client connect p50 %s (n=%d)", ciText(s.ConnectMs, s.ConnectLo, s.ConnectHi, s.ConnectOK)+unit(s.ConnectOK, " ms"), s.ConnectN)
			if !math.IsNaN(s.DiffMs) {
				fmt.Fprintf(w, ", connect − min RTT %s ms", g4(s.DiffMs))
			}
		}
		fmt.Fprint(w, "; retransmission rate")
		for _, q := range s.Retrans {
			fmt.Fprintf(w, " p%g %s", q.Q*100, ciText(q.Est, q.Lo, q.Hi, q.OK))
		}
		fmt.Fprintln(w)
	}
	if few > 0 {
		fmt.Fprintf(w, "  and %d (site, prefix) pairs with too few connections for a min RTT interval and no client pulses (in transport.json)\n", few)
	}
	shown := 0
	for _, p := range t.Prefixes {
		if !p.LossStandsOut && !p.InflationStandsOut || shown == 10 {
			continue
		}
		shown++
		fmt.Fprintf(w, "  stands out: %s at %s, %d connections: retransmitted %s [%s, %s] (site %s); RTT inflation p50 %s ms (site %s)\n",
			p.Prefix, p.Site, p.Connections, g4(p.RetransRate), g4(p.RetransLo), g4(p.RetransHi), g4(p.SiteRetransRate),
			ciText(p.InflationMs, p.InflationLo, p.InflationHi, p.InflationOK), g4(p.SiteInflationMs))
	}
	if shown == 0 {
		fmt.Fprintln(w, "  no prefix stands out from its site by loss or RTT inflation")
	}
	for _, e := range t.Arms {
		where := "every site"
		if e.Site != "" {
			where = "at " + e.Site
		}
		fmt.Fprintf(w, "  congestion control, experiment %s, %s (control %s):", e.Experiment, where, e.Control)
		for _, a := range e.ArmNames {
			r := e.Retrans[a]
			fmt.Fprintf(w, " %s runs %s, pooled retransmission rate %s [%s, %s] over %d connections;", a, e.CongestionControl[a], g4(r.Rate), g4(r.Lo), g4(r.Hi), r.Connections)
		}
		fmt.Fprintln(w)
		for _, r := range e.Results {
			printArm(w, "    ", r)
		}
	}
}

func ciText(est, lo, hi float64, ok bool) string {
	if !ok {
		return "insufficient samples"
	}
	return fmt.Sprintf("%s [%s, %s]", g4(est), g4(lo), g4(hi))
}

// unit is u after a figure, nothing after "insufficient samples".
func unit(ok bool, u string) string {
	if !ok {
		return ""
	}
	return u
}

func g4(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// printDNS writes the resolver and address-family lines: the share of
// clients using a distant resolver, DNS time and IPv6 − IPv4 per ISP.
func printDNS(w io.Writer, sum *analyze.Summary) {
	r := sum.Resolvers
	if r.DNSPulses > 0 {
		fmt.Fprintf(w, "dns pulses: %d ok, %d joined with the server's log\n", r.DNSPulses, r.Joined)
	}
	for _, isp := range r.ISPs {
		name := isp.ISP
		if name == "" {
			name = "unknown"
		}
		fmt.Fprintf(w, "resolvers %s: %d clients, distant/public %s [%s, %s], with ECS %s\n", name, isp.Clients,
			pct(isp.Distant.Est), pct(isp.Distant.Lo), pct(isp.Distant.Hi), pct(isp.ECS.Est))
	}
	for _, t := range r.Times {
		if t.Family == "*" && t.Distance == "*" {
			fmt.Fprintf(w, "dns time p%g: %s ms (n=%d)\n", t.Q*100, ciText(t.Est, t.Lo, t.Hi, t.OK), t.N)
		}
	}
	for _, f := range sum.Families {
		name := f.ISP
		if name == "" {
			name = "unknown"
		}
		line := fmt.Sprintf("ipv6-ipv4 %s %s: %s", name, f.Metric, ciText(f.Diff, f.DiffLo, f.DiffHi, f.DiffOK))
		if f.Pairs > 0 {
			line += fmt.Sprintf(", paired (%d clients) %s", f.Pairs, ciText(f.PairedDiff, f.PairedLo, f.PairedHi, f.PairedOK))
		}
		fmt.Fprintln(w, line)
	}
}

func pct(v float64) string { return strconv.FormatFloat(100*v, 'f', 1, 64) + "%" }
