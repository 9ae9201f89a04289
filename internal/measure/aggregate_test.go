package measure

import (
	"context"
	"math"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

func TestAggregates(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	annot := FuncAnnotator(func(c netip.Addr, appliance string) Annotation {
		return Annotation{PrefixGroup: "g1", Site: "s-" + appliance}
	})
	in, err := Open(t.TempDir(), annot, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for i := range 100 {
		r := testReport(randIDn(i), 1, now)
		r.Pulses[0].Appliance = "oca1"
		r.Pulses[0].ConnectMs = float64(i + 1) // 1..100
		if i == 0 {
			r.Pulses[0].Status = StatusError // not counted
		}
		if _, err := in.Ingest(context.Background(), testClient, r); err != nil {
			t.Fatal(err)
		}
	}
	ags := in.Aggregates()
	if len(ags) != 1 {
		t.Fatalf("Aggregates() = %+v, want one (g1, s-oca1, connect_ms)", ags)
	}
	a := ags[0]
	if a.Group != "g1" || a.Site != "s-oca1" || a.Metric != MetricConnectMs || a.Count != 99 ||
		math.Abs(a.P50-51) > 1 || math.Abs(a.P99-99) > 1.5 {
		t.Errorf("Aggregates()[0] = %+v, want count 99, p50≈51, p99≈99", a)
	}
	s := in.Sketch("g1", "s-oca1", MetricConnectMs)
	if s == nil || s.Count() != 99 {
		t.Fatalf("Sketch() = %v", s)
	}
	s.Add(1e6) // the copy is the caller's
	if in.Sketch("g1", "s-oca1", MetricConnectMs).Count() != 99 {
		t.Error("Sketch() returned the live sketch, not a copy")
	}
	if in.Sketch("g1", "s-oca1", MetricTTFBMs) != nil {
		t.Error("Sketch() for an unobserved metric is not nil")
	}
}

func randIDn(i int) string { return "report-" + string(rune('a'+i%26)) + "-" + itoa16(i) }

func itoa16(i int) string {
	const digits = "0123456789"
	b := []byte("0000000000")
	for j := len(b) - 1; i > 0; j-- {
		b[j] = digits[i%10]
		i /= 10
	}
	return string(b)
}

// Close stops the ingester's goroutines.
func TestCloseLeaksNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 3 {
		in, err := Open(t.TempDir(), nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := in.Ingest(context.Background(), testClient, testReport("0123456789abcdef", 2, time.Now())); err != nil {
			t.Fatal(err)
		}
		if err := in.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// A goroutine of an earlier test (an HTTP server's connection, say)
	// may still be on its way out on a loaded machine: wait for the count
	// to settle; a leak of Close never settles.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before, %d after three Open/Close cycles:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}
