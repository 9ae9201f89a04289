// Package analyze turns stored probe measurements (the Parquet tables the
// measure ingester writes) into a report with error bars: per-cell
// quantiles with distribution-free confidence intervals, paired
// within-client comparisons of the steered site against alternatives,
// steering regret, hourly change points, miss bytes and steering
// experiment arms, written as CSV tables and one self-contained HTML page
// with inline SVG plots.
//
// It is built as a loader (Load: Parquet → []Row), analyses that are pure
// functions over rows (Quantiles, PairedComparisons, Regret, HourlySeries,
// DetectSeriesChanges, Arms), and a writer; Run composes them.
package analyze

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

// Options configures Run. Zero values take the documented defaults.
type Options struct {
	// DataDir is the ingest directory (DIR/pulses/date=…/hour=…/part-*.parquet).
	DataDir string
	// OutDir receives index.html and the CSV files; created if needed.
	OutDir string
	// Filter selects rows (time range on received_time, sites, ASNs).
	Filter Filter
	// Level is the confidence level of every interval (default 0.95).
	Level float64
	// Margin is the relative improvement an alternative site must exceed,
	// with confidence, to count as steering regret (default 0.10).
	Margin float64
	// BootstrapReps is the number of replicates for the arm differences
	// (default 1000); Seed makes them reproducible (default 1).
	BootstrapReps int
	Seed          uint64
	// Progress, if not nil, receives one-line status messages while files
	// are read and analyses computed (the CLI shows them on a terminal).
	Progress func(msg string)
	// Now stamps the report (default time.Now).
	Now func() time.Time
}

// Validate checks the options, naming the field and the fix.
func (o *Options) Validate() error {
	switch {
	case o.DataDir == "":
		return errors.New("analyze: DataDir (--data): name the ingest directory")
	case o.OutDir == "":
		return errors.New("analyze: OutDir (--out): name the report directory")
	case o.Level < 0 || o.Level >= 1:
		return fmt.Errorf("analyze: Level = %g: want a confidence level in (0, 1), e.g. 0.95", o.Level)
	case o.Margin < 0 || o.Margin >= 1:
		return fmt.Errorf("analyze: Margin (--margin) = %g: want a relative margin in [0, 1), e.g. 0.1", o.Margin)
	case o.BootstrapReps < 0:
		return fmt.Errorf("analyze: BootstrapReps = %d: must not be negative", o.BootstrapReps)
	case !o.Filter.Since.IsZero() && !o.Filter.Until.IsZero() && !o.Filter.Until.After(o.Filter.Since):
		return fmt.Errorf("analyze: --until %s is not after --since %s: the range is empty",
			o.Filter.Until.UTC().Format(time.RFC3339), o.Filter.Since.UTC().Format(time.RFC3339))
	}
	return nil
}

func (o *Options) setDefaults() {
	if o.Level == 0 {
		o.Level = 0.95
	}
	if o.Margin == 0 {
		o.Margin = 0.10
	}
	if o.BootstrapReps == 0 {
		o.BootstrapReps = 1000
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Config holds the parameters of the analyses themselves.
type Config struct {
	Level         float64
	Margin        float64
	BootstrapReps int
	Seed          uint64
}

// Results is everything the analyses computed.
type Results struct {
	Config        Config
	Rows          int
	Sites         []string
	First, Last   time.Time // received_time range of the rows
	Quantiles     []QuantileCell
	Pairs         []Pair
	GroupRegret   []GroupRegret
	RegretSummary []RegretSummary
	Series        []Series
	Changes       []Change
	// Experiments compare steering experiment arms (arms.go).
	Experiments []ExperimentResult
	// UnsteeredRows counts rows of reports that record no steering
	// decision; they enter quantiles but not paired comparisons.
	UnsteeredRows int
	// Misses are per-site miss bytes; HaveMisses is false when the data
	// directory has no miss table.
	Misses     []MissRow
	HaveMisses bool
	// CDF holds the sorted values per metric and site for the plots.
	CDF [numMetrics]map[string][]float64
	// Transport is the servers' TCP view (transport.go); nil when the
	// data directory has no transport table.
	Transport *TransportResults
	// Resolvers is the resolver and DNS-time analysis of dns pulses;
	// Families the IPv6-minus-IPv4 differences per ISP (dns.go).
	Resolvers ResolverResult
	Families  []FamilyDiff
}

// Analyze runs every analysis over rows. It is pure apart from the seeded
// random numbers of the bootstrap.
func Analyze(ctx context.Context, rows []Row, cfg Config, progress func(string)) (*Results, error) {
	return AnalyzeWithSessions(ctx, rows, nil, cfg, progress)
}

// AnalyzeWithSessions is Analyze with playback records, which enter the
// experiment comparison.
func AnalyzeWithSessions(ctx context.Context, rows []Row, sessions []Session, cfg Config, progress func(string)) (*Results, error) {
	if progress == nil {
		progress = func(string) {}
	}
	res := &Results{Config: cfg, Rows: len(rows)}
	sites := make(map[string]bool)
	for i := range rows {
		sites[rows[i].Site] = true
		t := rows[i].Time
		if res.First.IsZero() || t.Before(res.First) {
			res.First = t
		}
		if t.After(res.Last) {
			res.Last = t
		}
	}
	for s := range sites {
		res.Sites = append(res.Sites, s)
	}
	sortStrings(res.Sites)
	steps := []struct {
		name string
		fn   func() error
	}{
		{"quantiles", func() error { res.Quantiles = Quantiles(rows, cfg.Level); return nil }},
		{"paired comparisons and regret", func() error {
			d := collectPairs(rows)
			res.UnsteeredRows = d.unknown
			res.Pairs = pairedFrom(d, cfg.Level)
			res.GroupRegret, res.RegretSummary = regretFrom(res.Pairs, d, cfg.Margin)
			return nil
		}},
		{"hourly series and change points", func() error {
			res.Series = HourlySeries(rows, cfg.Level)
			var err error
			res.Changes, err = DetectSeriesChanges(res.Series)
			return err
		}},
		{"experiment arms", func() error {
			res.Experiments = Experiments(rows, sessions, cfg.Level, cfg.BootstrapReps, rand.New(rand.NewPCG(cfg.Seed, 0x0cd4)))
			return nil
		}},
		{"resolvers and address families", func() error {
			res.Resolvers = Resolvers(rows, cfg.Level)
			res.Families = Families(rows, cfg.Level)
			return nil
		}},
		{"distributions", func() error {
			for _, m := range Metrics {
				res.CDF[m] = SiteValues(rows, m)
			}
			return nil
		}},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		progress("computing " + s.name)
		if err := s.fn(); err != nil {
			return nil, fmt.Errorf("analyze: %s: %w", s.name, err)
		}
	}
	return res, nil
}

// Summary is what Run reports back.
type Summary struct {
	Files, FilesSkipped int
	RowsRead, Rows      int
	Sites               []string
	First, Last         time.Time
	// Cells counts quantile values; Insufficient those reported as
	// insufficient samples.
	Cells, Insufficient int
	Pairs               int
	RegretSummary       []RegretSummary
	Changes             int
	// Experiments are the experiments' results (arms with intervals,
	// differences against the control, the SRM check).
	Experiments []ExperimentResult
	HaveMisses  bool
	// Transport is the transport section (nil without a transport table).
	Transport *TransportResults
	// Resolvers and Families are the resolver and address-family
	// analyses (also in dns.json).
	Resolvers ResolverResult
	Families  []FamilyDiff
	// Files written, as paths.
	HTML string
	CSV  []string
	// DNSJSON is dns.json; TransportJSON is transport.json, when there
	// is a transport section.
	DNSJSON       string
	TransportJSON string
}

// Run loads the data directory, runs the analyses and writes the report
// into OutDir. Errors name the file or option that was wrong.
func Run(ctx context.Context, opts Options) (*Summary, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	progress := opts.Progress
	if progress == nil {
		progress = func(string) {}
	}
	rows, ls, err := Load(opts.DataDir, opts.Filter, func(done, total, n int) {
		progress(fmt.Sprintf("reading files %d/%d (%d rows)", done, total, n))
	})
	if err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	sessions, err := LoadQoE(opts.DataDir, opts.Filter)
	if err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	misses, haveMisses, err := LoadMisses(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	res, err := AnalyzeWithSessions(ctx, rows, sessions, Config{Level: opts.Level, Margin: opts.Margin,
		BootstrapReps: opts.BootstrapReps, Seed: opts.Seed}, progress)
	if err != nil {
		return nil, err
	}
	res.Misses, res.HaveMisses = misses, haveMisses
	trows, haveTransport, err := LoadTransport(opts.DataDir, opts.Filter)
	if err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	if haveTransport {
		progress("computing the transport section")
		res.Transport = Transport(trows, rows, sessions, opts.Level, opts.BootstrapReps, rand.New(rand.NewPCG(opts.Seed, 0x7c9)))
	}
	progress("writing report")
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("analyze: --out: %w", err)
	}
	csvs, err := WriteCSV(opts.OutDir, res)
	if err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	jsonPath := filepath.Join(opts.OutDir, "dns.json")
	if err := WriteDNSJSON(jsonPath, res); err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	html := filepath.Join(opts.OutDir, "index.html")
	if err := WriteHTMLFile(html, res, ReportMeta{DataDir: opts.DataDir, Filter: opts.Filter, Generated: opts.Now(), Load: ls}); err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	s := &Summary{Files: ls.Files, FilesSkipped: ls.FilesSkipped, RowsRead: ls.RowsRead, Rows: ls.RowsKept,
		Sites: res.Sites, First: res.First, Last: res.Last, Pairs: len(res.Pairs), RegretSummary: res.RegretSummary,
		Changes: len(res.Changes), HaveMisses: haveMisses, HTML: html, CSV: csvs}
	for _, c := range res.Quantiles {
		s.Cells++
		if !c.OK {
			s.Insufficient++
		}
	}
	s.Experiments = res.Experiments
	s.Transport = res.Transport
	if res.Transport != nil {
		js := filepath.Join(opts.OutDir, "transport.json")
		if err := WriteTransportJSON(js, res.Transport, opts.Level); err != nil {
			return nil, fmt.Errorf("analyze: %w", err)
		}
		s.TransportJSON = js
	}
	s.Resolvers, s.Families, s.DNSJSON = res.Resolvers, res.Families, jsonPath
	return s, nil
}
