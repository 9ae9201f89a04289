package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// accounted prints sampling's own work during bench-edge.sh's pairs of
// one size, accounted: what the sampling appliance did (the difference
// of its /metrics before and after the pairs) times what each kind of
// work costs (internal/transport's benchmarks, run in the same bench),
// against the CPU the appliance used over the pairs. Where the paired
// comparison measures sampling's whole cost, indirect ones included, and
// at 2 MiB drowns in the kernel's run-to-run variation, this bounds its
// direct cost at any size.
func accounted(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("accounted", flag.ExitOnError)
	before := fs.String("before", "", "the sampling appliance's /metrics before the pairs (Prometheus text)")
	after := fs.String("after", "", "its /metrics after them")
	bench := fs.String("bench", "", "output of go test -bench of internal/transport (UnsampledConnection, SampledConnection, PeriodicSample, OnGrant, SpoolBatch)")
	cpuNs := fs.Float64("cpu-ns", 0, "the CPU ns the appliance used over the pairs")
	conns := fs.Float64("conns", 0, "the connections it accepted over the pairs (64 per wrk run)")
	fs.Parse(args)
	if *before == "" || *after == "" || *bench == "" || !(*cpuNs > 0) {
		return errors.New("accounted needs -before, -after, -bench and a positive -cpu-ns")
	}
	m0, err := readMetrics(*before)
	if err != nil {
		return err
	}
	m1, err := readMetrics(*after)
	if err != nil {
		return err
	}
	f, err := os.Open(*bench)
	if err != nil {
		return err
	}
	defer f.Close()
	costs, err := parseBench(f)
	if err != nil {
		return fmt.Errorf("%s: %w", *bench, err)
	}
	w := work{conns: *conns}
	for _, c := range []struct {
		dst         *float64
		name, label string
	}{
		{&w.connsSampled, "ocdn_transport_connections_sampled_total", ""},
		{&w.periodic, "ocdn_transport_records_sampled_total", "periodic"},
		{&w.final, "ocdn_transport_records_sampled_total", "final"},
		{&w.sampledRequests, "ocdn_transport_sampled_connection_requests_total", ""},
		{&w.batches, "ocdn_transport_batches_spooled_total", ""},
		{&w.requests, "ocdn_edge_requests_total", ""},
	} {
		v0, ok0 := sumCounter(m0, c.name, c.label)
		v1, ok1 := sumCounter(m1, c.name, c.label)
		if !ok0 || !ok1 {
			return fmt.Errorf("accounted: %s is missing from the metrics (is the appliance sampling?)", c.name)
		}
		*c.dst = v1 - v0
	}
	line, err := w.line(costs, *cpuNs)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, line)
	return nil
}

// work is what the sampling appliance did over the pairs.
type work struct {
	conns, connsSampled       float64
	requests, sampledRequests float64
	final, periodic           float64
	batches                   float64
}

// Benchmarks of internal/transport (bench_test.go) that cost each kind
// of work.
const (
	benchUnsampledConn = "UnsampledConnection"
	benchSampledConn   = "SampledConnection"
	benchPeriodic      = "PeriodicSample"
	benchGrant         = "OnGrant/unsampled"
	benchSampledGrant  = "OnGrant/sampled"
	benchBatch1        = "SpoolBatch/records=1"
	benchBatch100      = "SpoolBatch/records=100"
)

// line is "sampling's own work: N connections sampled x 8.0 us, … =
// 1.4 ms of ocdnS's 3.1 s CPU (0.05%)". A sampled connection's cost
// includes its final sample; the connections and requests not sampled
// are what the appliance accepted and served less the sampled ones; a
// batch costs its records=1 benchmark and each further record the
// difference per record between the 100- and the 1-record batch.
func (w work) line(costs map[string]float64, cpuNs float64) (string, error) {
	for _, n := range []string{benchUnsampledConn, benchSampledConn, benchPeriodic, benchGrant, benchSampledGrant, benchBatch1, benchBatch100} {
		if _, ok := costs[n]; !ok {
			return "", fmt.Errorf("accounted: no result for Benchmark%s in the benchmark output", n)
		}
	}
	records := w.final + w.periodic
	perRecord := max(costs[benchBatch100]-costs[benchBatch1], 0) / 99
	terms := []struct {
		n    float64
		what string
		cost float64
	}{
		{w.connsSampled, "connections sampled", costs[benchSampledConn]},
		{w.periodic, "periodic samples", costs[benchPeriodic]},
		{w.sampledRequests, "requests on them", costs[benchSampledGrant]},
		{max(w.conns-w.connsSampled, 0), "other connections", costs[benchUnsampledConn]},
		{max(w.requests-w.sampledRequests, 0), "other requests", costs[benchGrant]},
		{w.batches, "batches spooled", costs[benchBatch1]},
		{max(records-w.batches, 0), "further records in them", perRecord},
	}
	var b strings.Builder
	b.WriteString("sampling's own work: ")
	var total float64
	for i, t := range terms {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%.0f %s x %s", t.n, t.what, duration(t.cost))
		total += t.n * t.cost
	}
	fmt.Fprintf(&b, " = %s of ocdnS's %s CPU (%.3f%%)", duration(total), duration(cpuNs), 100*total/cpuNs)
	return b.String(), nil
}

// duration prints ns in the unit that suits it.
func duration(ns float64) string {
	switch {
	case ns >= 1e9:
		return fmt.Sprintf("%.1f s", ns/1e9)
	case ns >= 1e6:
		return fmt.Sprintf("%.1f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.1f us", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

// parseBench reads go test -bench output: for each benchmark (its name
// without "Benchmark" and the -GOMAXPROCS suffix) the median over its
// result lines (-count) of cpu-ns/op when reported, else of ns/op. Lines
// that are not results (goos:, PASS, ok …) are skipped; a result line
// with neither unit, or a value that is not a non-negative number, is
// an error naming the line.
func parseBench(r io.Reader) (map[string]float64, error) {
	vals := map[string][]float64{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.ParseUint(f[1], 10, 64); err != nil {
			continue // "BenchmarkX" alone on a line, then its result: not a result line
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		v, unit := -1.0, ""
		for i := 2; i+1 < len(f); i += 2 {
			if f[i+1] != "cpu-ns/op" && (f[i+1] != "ns/op" || unit == "cpu-ns/op") {
				continue
			}
			x, err := strconv.ParseFloat(f[i], 64)
			if err != nil || !(x >= 0) || x > 1e15 {
				return nil, fmt.Errorf("line %d: %s %q is not a duration in ns", line, f[i+1], f[i])
			}
			v, unit = x, f[i+1]
		}
		if unit == "" {
			return nil, fmt.Errorf("line %d: benchmark %s reports neither cpu-ns/op nor ns/op", line, name)
		}
		vals[name] = append(vals[name], v)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(vals))
	for name, v := range vals {
		slices.Sort(v)
		out[name] = v[(len(v)-1)/2]
	}
	return out, nil
}

// readMetrics parses a Prometheus text exposition file.
func readMetrics(path string) (map[string]*dto.MetricFamily, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fams, nil
}

// sumCounter sums counter name over its series whose "reason" label is
// reason ("" for all), and reports whether the family exists.
func sumCounter(fams map[string]*dto.MetricFamily, name, reason string) (float64, bool) {
	fam, ok := fams[name]
	if !ok {
		return 0, false
	}
	var sum float64
	for _, m := range fam.GetMetric() {
		if reason != "" && !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
			return l.GetName() == "reason" && l.GetValue() == reason
		}) {
			continue
		}
		sum += m.GetCounter().GetValue()
	}
	return sum, true
}
