package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// benchOut is go test -bench output as bench-edge.sh gets it (-count 3):
// medians are the middle values.
const benchOut = `goos: linux
goarch: amd64
pkg: github.com/ocdn/ocdn/internal/transport
cpu: Some CPU
BenchmarkUnsampledConnection-2   	 7842745	        63.95 ns/op	        80 cpu-ns/op	      48 B/op	       1 allocs/op
BenchmarkUnsampledConnection-2   	 7842745	        63.95 ns/op	        70 cpu-ns/op	      48 B/op	       1 allocs/op
BenchmarkUnsampledConnection-2   	 7842745	        63.95 ns/op	        90 cpu-ns/op	      48 B/op	       1 allocs/op
BenchmarkSampledConnection-2     	   70762	      7411 ns/op	      8000 cpu-ns/op	    1080 B/op	      15 allocs/op
BenchmarkPeriodicSample-2        	  112573	      5124 ns/op	      5000 cpu-ns/op	       0 B/op	       0 allocs/op
BenchmarkOnGrant/unsampled-2     	70213362	         8.126 ns/op	         8 cpu-ns/op	       0 B/op	       0 allocs/op
BenchmarkOnGrant/sampled-2       	23801239	        24.87 ns/op	        25 cpu-ns/op	       0 B/op	       0 allocs/op
BenchmarkSpoolBatch/records=1-2  	     619	    912934 ns/op	    300000 cpu-ns/op	    2628 B/op	      28 allocs/op
BenchmarkSpoolBatch/records=100-2         	     592	   1221896 ns/op	    597000 cpu-ns/op	   92402 B/op	     127 allocs/op
PASS
ok  	github.com/ocdn/ocdn/internal/transport	4.129s
`

// metricsAt is an appliance's /metrics with the counters accounted has
// to read, at the given values.
func metricsAt(conns, final, periodic, sampledReqs, batches, req206, req404 int) string {
	r := strings.NewReplacer("CONNS", strconv.Itoa(conns), "FINAL", strconv.Itoa(final), "PERIODIC", strconv.Itoa(periodic),
		"SREQ", strconv.Itoa(sampledReqs), "BATCHES", strconv.Itoa(batches), "R206", strconv.Itoa(req206), "R404", strconv.Itoa(req404))
	return r.Replace(`# HELP ocdn_edge_requests_total Content requests by HTTP status code.
# TYPE ocdn_edge_requests_total counter
ocdn_edge_requests_total{code="206"} R206
ocdn_edge_requests_total{code="404"} R404
# TYPE ocdn_transport_batches_spooled_total counter
ocdn_transport_batches_spooled_total BATCHES
# TYPE ocdn_transport_connections_sampled_total counter
ocdn_transport_connections_sampled_total CONNS
# TYPE ocdn_transport_records_sampled_total counter
ocdn_transport_records_sampled_total{reason="final"} FINAL
ocdn_transport_records_sampled_total{reason="periodic"} PERIODIC
# TYPE ocdn_transport_sampled_connection_requests_total counter
ocdn_transport_sampled_connection_requests_total SREQ
`)
}

// TestAccounted: the counters' differences over the pairs times the
// benchmarks' medians (cpu-ns/op), summed and set against the CPU given.
func TestAccounted(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := write("before", metricsAt(10, 9, 1, 100, 5, 1000, 3))
	// Over the pairs: 20 connections sampled (20 final samples, 2
	// periodic), 2000 requests on them, 10 batches; 20000 requests in all.
	after := write("after", metricsAt(30, 29, 3, 2100, 15, 20998, 5))
	bench := write("bench", benchOut)
	var out strings.Builder
	if err := accounted([]string{"-before", before, "-after", after, "-bench", bench, "-cpu-ns", "2e9", "-conns", "640"}, &out); err != nil {
		t.Fatal(err)
	}
	// 20 x 8000 + 2 x 5000 + 2000 x 25 + 620 x 80 + 18000 x 8 + 10 x 300000
	// + (22 - 10) x 3000 = 160000 + 10000 + 50000 + 49600 + 144000 +
	// 3000000 + 36000 = 3449600 ns.
	want := "sampling's own work: 20 connections sampled x 8.0 us, 2 periodic samples x 5.0 us, 2000 requests on them x 25 ns, " +
		"620 other connections x 80 ns, 18000 other requests x 8 ns, 10 batches spooled x 300.0 us, " +
		"12 further records in them x 3.0 us = 3.4 ms of ocdnS's 2.0 s CPU (0.172%)\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("accounted output (-want +got):\n%s", diff)
	}

	// Metrics without the sampling counters (an appliance not sampling)
	// and benchmark output without one benchmark are refused by name.
	noSampling := write("nosampling", "# TYPE ocdn_edge_requests_total counter\nocdn_edge_requests_total{code=\"206\"} 5\n")
	err := accounted([]string{"-before", noSampling, "-after", after, "-bench", bench, "-cpu-ns", "1"}, &out)
	if err == nil || !strings.Contains(err.Error(), "ocdn_transport_") {
		t.Errorf("metrics without the transport counters: error %v, want one naming the missing counter", err)
	}
	partial := write("partial", strings.ReplaceAll(benchOut, "BenchmarkPeriodicSample", "BenchmarkOther"))
	err = accounted([]string{"-before", before, "-after", after, "-bench", partial, "-cpu-ns", "1"}, &out)
	if err == nil || !strings.Contains(err.Error(), "PeriodicSample") {
		t.Errorf("benchmark output without PeriodicSample: error %v, want one naming it", err)
	}
}

// TestParseBench: the median per benchmark, cpu-ns/op preferred to ns/op
// whichever comes first, the -GOMAXPROCS suffix dropped (and only it);
// a result line without a time, or with a bad one, is refused naming
// its line.
func TestParseBench(t *testing.T) {
	got, err := parseBench(strings.NewReader(benchOut + "BenchmarkPlain-2  10  123 ns/op\nBenchmarkSub/x-y  10  7 ns/op\n" +
		"BenchmarkFirst-8 10 9 cpu-ns/op 11 ns/op\nBenchmarkLong\nBenchmarkLong 10 4 ns/op\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"UnsampledConnection": 80, "SampledConnection": 8000, "PeriodicSample": 5000,
		"OnGrant/unsampled": 8, "OnGrant/sampled": 25, "SpoolBatch/records=1": 300000, "SpoolBatch/records=100": 597000,
		"Plain": 123, "Sub/x-y": 7, "First": 9, "Long": 4}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseBench (-want +got):\n%s", diff)
	}
	for _, bad := range []string{
		"BenchmarkX-2 10 5 B/op 1 allocs/op\n",
		"BenchmarkX-2 10 -5 ns/op\n",
		"BenchmarkX-2 10 NaN ns/op\n",
		"goos: linux\nBenchmarkX-2 10 1e99 cpu-ns/op\n",
	} {
		if _, err := parseBench(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line ") {
			t.Errorf("parseBench(%q) error %v, want one naming the line", bad, err)
		}
	}
}

// FuzzParseBench: any input gives a result or an error, never a panic,
// and every value returned is a non-negative number of ns.
func FuzzParseBench(f *testing.F) {
	f.Add(benchOut)
	f.Add("BenchmarkX-2 10 5 ns/op 7 cpu-ns/op\n")
	f.Add("BenchmarkX-\n")
	f.Add("Benchmark-2 1 1 ns/op\nBenchmark 1 1")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := parseBench(strings.NewReader(in))
		if err != nil {
			return
		}
		for name, v := range got {
			if !(v >= 0) || v > 1e15 {
				t.Errorf("parseBench gave %s = %v", name, v)
			}
		}
	})
}
