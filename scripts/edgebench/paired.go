package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/ocdn/ocdn/internal/stats"
)

// paired summarises a paired comparison of two appliances (bench-edge.sh's
// sampling cost: the same appliance with transport sampling on and off,
// both loaded at the same time). Each input line is one pair, "CASE A B",
// A and B the CPU per request of the two arms in that pair's run. For each case (in order of first appearance) it prints the
// median of the pairs' ratios A/B as a change in percent, with a 95%
// distribution-free interval for the population median (the sign test's
// order statistics, stats.QuantileCI): pairing cancels what the two arms
// share (the neighbours' load, the page cache), which across rounds hid
// a 3% effect in 30%.
func paired(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("paired", flag.ExitOnError)
	name := fs.String("name", "A/B", "what the ratio measures, printed before each result")
	fs.Parse(args)
	ratios := map[string][]float64{}
	var order []string
	sc := bufio.NewScanner(in)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return fmt.Errorf("paired: line %d: want CASE A B, got %q", line, sc.Text())
		}
		a, errA := strconv.ParseFloat(f[1], 64)
		b, errB := strconv.ParseFloat(f[2], 64)
		if errA != nil || errB != nil || !(a > 0) || !(b > 0) {
			// A failed run (wrk error, no requests) measures nothing.
			return fmt.Errorf("paired: line %d: A and B must be positive numbers, got %q and %q", line, f[1], f[2])
		}
		if _, seen := ratios[f[0]]; !seen {
			order = append(order, f[0])
		}
		ratios[f[0]] = append(ratios[f[0]], a/b)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for _, c := range order {
		fmt.Fprintf(out, "%s %s\n", c, pairedLine(*name, ratios[c]))
	}
	return nil
}

// pairedLine is "NAME: +0.8% [-1.9%, +3.2%] (median of N pair ratios,
// 95% sign-test interval)"; with too few pairs for a 95% interval (6
// for the median) the interval is left out and says why.
func pairedLine(name string, ratios []float64) string {
	x := slices.Clone(ratios)
	slices.Sort(x)
	lo, est, hi, ok := stats.QuantileCI(x, 0.5, 0.95)
	pct := func(r float64) string { return fmt.Sprintf("%+.1f%%", (r-1)*100) }
	if !ok {
		return fmt.Sprintf("%s: %s (median of %d pair ratios; too few pairs for a 95%% interval, need %d)",
			name, pct(est), len(x), stats.MinSamples(0.5, 0.95))
	}
	return fmt.Sprintf("%s: %s [%s, %s] (median of %d pair ratios, 95%% sign-test interval)",
		name, pct(est), pct(lo), pct(hi), len(x))
}
