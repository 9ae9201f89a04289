package cli

import (
	"fmt"
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
  arms.csv           steering experiment arms (reports with context "arm")

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
			if !sum.HaveMisses {
				fmt.Fprintln(out, "no miss data")
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
