package analyze

import (
	"context"
	"encoding/csv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// plantedRegretRows builds 40 prefix groups of 30 clients, each probing the
// steered site s0 and the alternative s1 five times. Groups 0–9 see s1 30%
// faster, 10–19 5% faster, the rest equal.
func plantedRegretRows(rng *rand.Rand) []Row {
	var rows []Row
	for g := range 40 {
		factor := 1.0
		switch {
		case g < 10:
			factor = 0.70
		case g < 20:
			factor = 0.95
		}
		for c := range 30 {
			addr := clientAddr(g, c)
			base := lognormal(rng, 50, 0.3) // clients differ a lot; pairing removes it
			for k := range 5 {
				rep := groupName(g) + "/" + addr.String() + "/" + string(rune('a'+k))
				at := t0.Add(time.Duration(k) * time.Minute)
				rows = append(rows,
					ttfbRow(rep, addr, groupName(g), "s0", "s0", at, lognormal(rng, base, 0.1)),
					ttfbRow(rep, addr, groupName(g), "s1", "s0", at, lognormal(rng, base*factor, 0.1)))
			}
		}
	}
	return rows
}

func TestRegretFindsPlantedGroups(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	rows := plantedRegretRows(rng)
	pairs := PairedComparisons(rows, 0.95)
	groups, sums := Regret(pairs, rows, 0.10)
	var got, want []string
	for g := range 10 {
		want = append(want, groupName(g))
	}
	evaluated := 0
	for _, gr := range groups {
		if gr.Metric != TTFB {
			continue
		}
		if gr.Evaluated {
			evaluated++
		}
		if gr.Regret {
			got = append(got, gr.PrefixGroup)
			if gr.BestAlt != "s1" || gr.RelLo <= 0.10 {
				t.Errorf("group %s: regret with alt %s, rel CI lo %.3f; want s1 above 0.10", gr.PrefixGroup, gr.BestAlt, gr.RelLo)
			}
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Regret groups = %v, want %v", got, want)
	}
	if evaluated != 40 {
		t.Errorf("evaluated groups = %d, want 40", evaluated)
	}
	for _, s := range sums {
		if s.Metric != TTFB {
			if s.Groups != 0 {
				t.Errorf("summary %s has %d groups, want 0 (no values)", s.Metric, s.Groups)
			}
			continue
		}
		if s.Regretful != 10 || s.Evaluated != 40 || math.Abs(s.ShareGroups-0.25) > 1e-9 || math.Abs(s.SharePulses-0.25) > 1e-9 {
			t.Errorf("TTFB summary = %+v, want 10 of 40 groups, 25%% of groups and pulses", s)
		}
	}
	// The 5% groups are real but below the margin: their interval must
	// still show an improvement is plausible, just not one above 10%.
	for _, p := range pairs {
		if p.Metric == TTFB && p.PrefixGroup == groupName(15) {
			if !(p.RelLo < 0.10 && p.RelHi > 0) {
				t.Errorf("5%% group rel CI = [%.3f, %.3f], want below the margin and around 0.05", p.RelLo, p.RelHi)
			}
			t.Logf("5%% group: rel %.3f CI [%.3f, %.3f], sign p %.2g, Wilcoxon p %.2g", p.Rel, p.RelLo, p.RelHi, p.SignP, p.WilcoxonP)
		}
	}
}

// pairedRows builds n clients whose steered-site TTFB exceeds the
// alternative's by exactly shift plus symmetric noise, so the median
// per-client difference is shift.
func pairedRows(rng *rand.Rand, n int, shift float64) []Row {
	var rows []Row
	for c := range n {
		addr := clientAddr(0, c%250)
		if c >= 250 {
			addr = clientAddr(1, c-250)
		}
		base := lognormal(rng, 40, 0.5)
		rep := addr.String()
		rows = append(rows,
			ttfbRow(rep, addr, "g", "s0", "s0", t0, base+shift+5*rng.NormFloat64()),
			ttfbRow(rep, addr, "g", "s1", "s0", t0, base+5*rng.NormFloat64()))
	}
	return rows
}

func TestPairedCICoversKnownDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const shift = 12.0
	pairs := PairedComparisons(pairedRows(rng, 200, shift), 0.95)
	if len(pairs) != 1 {
		t.Fatalf("PairedComparisons = %d pairs, want 1 (g, s0 vs s1, ttfb)", len(pairs))
	}
	p := pairs[0]
	if !p.DiffOK || p.Clients != 200 || !(p.DiffLo <= shift && shift <= p.DiffHi) {
		t.Errorf("diff = %.2f CI [%.2f, %.2f] ok=%v clients=%d, want a CI covering %.0f over 200 clients",
			p.Diff, p.DiffLo, p.DiffHi, p.DiffOK, p.Clients, shift)
	}
	if !(p.SignP < 1e-6 && p.WilcoxonP < 1e-6) {
		t.Errorf("sign p = %g, Wilcoxon p = %g; want both tiny for a 12 ms shift with 5 ms noise", p.SignP, p.WilcoxonP)
	}
	// Small coverage check (the stats package checks 1000 trials).
	const trials = 200
	covered := 0
	for range trials {
		p := PairedComparisons(pairedRows(rng, 30, shift), 0.95)[0]
		if p.DiffOK && p.DiffLo <= shift && shift <= p.DiffHi {
			covered++
		}
	}
	// Exact intervals cover ≥ 95%; 200 trials have sd 1.5%.
	if cov := float64(covered) / trials; cov < 0.91 {
		t.Errorf("coverage = %.3f over %d trials, want ≥ 0.91 (nominal 0.95)", cov, trials)
	} else {
		t.Logf("coverage of the paired 95%% CI: %.3f over %d trials of 30 clients", cov, trials)
	}
	// With no alternative difference the test must not claim one.
	p0 := PairedComparisons(pairedRows(rng, 200, 0), 0.95)[0]
	if !(p0.DiffLo <= 0 && 0 <= p0.DiffHi) {
		t.Logf("null case CI [%.2f, %.2f] excludes 0 (a 5%% event)", p0.DiffLo, p0.DiffHi)
	}
}

func TestQuantileCellsInsufficient(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var rows []Row
	for i := range 5 { // 5 < MinSamples(0.5, 0.95) = 6
		rows = append(rows, ttfbRow("r", clientAddr(0, i), "small", "s0", "", t0, lognormal(rng, 30, 0.2)))
	}
	for i := range 40 { // enough for p50 and p90, not p99
		rows = append(rows, ttfbRow("r", clientAddr(1, i), "mid", "s0", "", t0, lognormal(rng, 30, 0.2)))
	}
	cells := Quantiles(rows, 0.95)
	want := map[[2]string]bool{ // (group, q) → ok
		{"small", "0.5"}: false, {"small", "0.9"}: false, {"small", "0.99"}: false,
		{"mid", "0.5"}: true, {"mid", "0.9"}: true, {"mid", "0.99"}: false,
	}
	seen := 0
	for _, c := range cells {
		if c.SiteWide() {
			continue
		}
		k := [2]string{c.PrefixGroup, num(c.Q)}
		w, ok := want[k]
		if !ok {
			t.Fatalf("unexpected cell %+v", c)
		}
		seen++
		if c.OK != w {
			t.Errorf("cell %v: OK = %v, want %v (n=%d, min %d)", k, c.OK, w, c.N, c.MinN)
		}
		if !c.OK && (c.Note != NoteInsufficient || c.Est != 0 || c.Lo != 0 || c.Hi != 0) {
			t.Errorf("cell %v insufficient but note %q est %g [%g, %g]; want the note and no numbers", k, c.Note, c.Est, c.Lo, c.Hi)
		}
		if c.OK && !(c.Lo <= c.Est && c.Est <= c.Hi) {
			t.Errorf("cell %v: est %g outside [%g, %g]", k, c.Est, c.Lo, c.Hi)
		}
	}
	if seen != len(want) {
		t.Errorf("saw %d fine cells, want %d", seen, len(want))
	}
	// In the CSV, an insufficient cell has empty value columns and the note.
	dir := t.TempDir()
	res, err := Analyze(context.Background(), rows, Config{Level: 0.95, Margin: 0.1, BootstrapReps: 10, Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteCSV(dir, res); err != nil {
		t.Fatal(err)
	}
	recs := readCSV(t, filepath.Join(dir, "quantiles.csv"))
	col := func(name string) int { return slices.Index(recs[0], name) }
	found := false
	for _, r := range recs[1:] {
		if r[col("prefix_group")] == "small" && r[col("metric")] == "ttfb_ms" && r[col("quantile")] == "0.5" {
			found = true
			if r[col("value")] != "" || r[col("ci_lo")] != "" || r[col("ci_hi")] != "" || r[col("note")] != NoteInsufficient || r[col("n")] != "5" {
				t.Errorf("quantiles.csv small p50 row = %v; want empty value/ci, n 5, note %q", r, NoteInsufficient)
			}
		}
	}
	if !found {
		t.Error("quantiles.csv has no row for the small cell")
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return recs
}

func TestChangeDetectedThroughPipeline(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const hours, shiftAt = 100, 60
	var rows []Row
	for h := range hours {
		at := t0.Add(time.Duration(h)*time.Hour + 30*time.Minute)
		for i := range 200 {
			m := 50.0
			if h >= shiftAt {
				m = 60 // +20%
			}
			rows = append(rows,
				ttfbRow("r", clientAddr(0, i), "g", "s0", "", at, lognormal(rng, m, 0.5)),
				ttfbRow("r", clientAddr(0, i), "g", "s1", "", at, lognormal(rng, 50, 0.5)))
		}
	}
	res, err := Analyze(context.Background(), rows, Config{Level: 0.95, Margin: 0.1, BootstrapReps: 10, Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := t0.Add(shiftAt * time.Hour)
	var hit bool
	for _, c := range res.Changes {
		t.Logf("change: %s %s at %s (detected %s) %+.1f%%", c.Site, c.Metric, hourStr(c.At), hourStr(c.DetectedAt), 100*c.RelShift)
		if c.Site == "s0" && c.Metric == TTFB {
			d := c.At.Sub(want).Hours()
			if math.Abs(d) <= 3 && c.Direction == "up" && math.Abs(c.RelShift-0.2) < 0.1 {
				hit = true
			}
		}
		if c.Site == "s1" {
			t.Errorf("change reported on the stationary site s1: %+v", c)
		}
	}
	if !hit {
		t.Errorf("no upward ~20%% change on s0 ttfb within 3 h of %s; changes = %+v", hourStr(want), res.Changes)
	}
	dir := t.TempDir()
	if d := os.Getenv("OCDN_ANALYZE_KEEP"); d != "" {
		dir = filepath.Join(d, "changes")
		os.MkdirAll(dir, 0o755)
		if err := WriteHTMLFile(filepath.Join(dir, "index.html"), res, ReportMeta{DataDir: "synthetic", Generated: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := WriteCSV(dir, res); err != nil {
		t.Fatal(err)
	}
	recs := readCSV(t, filepath.Join(dir, "changes.csv"))
	if len(recs) < 2 || recs[1][0] != "s0" || recs[1][1] != "ttfb_ms" {
		t.Errorf("changes.csv = %v, want the s0 ttfb_ms change", recs)
	}
}
