package measure

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestIngestCompactAndDedupe(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	now := time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC)
	annot := FuncAnnotator(func(c netip.Addr, appliance string) Annotation {
		return Annotation{PrefixGroup: "198.51.100.0/22", ASN: 64500, ISP: "isp-a", Site: "site-" + appliance}
	})
	in, err := Open(dir, annot, Options{Registerer: reg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rep := testReport("0123456789abcdef", 4, now)
	rep.Player = &QoE{StartupMs: 800, AvgBitrateKbps: 3000, ServedBy: []string{"oca1", "oca0"}, DurationMs: 60000}
	res, err := in.Ingest(ctx, testClient, rep)
	if err != nil || res != (Result{Pulses: 4}) {
		t.Fatalf("Ingest = %+v, %v, want 4 pulses, nil", res, err)
	}
	res, err = in.Ingest(ctx, testClient, rep)
	if err != nil || res != (Result{Duplicate: true}) {
		t.Fatalf("second Ingest = %+v, %v, want duplicate", res, err)
	}
	if err := in.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := walFiles(t, dir); len(got) != 0 {
		t.Errorf("WAL after Flush = %v, want empty", got)
	}
	// A third upload after compaction is still a duplicate.
	if res, err = in.Ingest(ctx, testClient, rep); err != nil || !res.Duplicate {
		t.Fatalf("Ingest after compaction = %+v, %v, want duplicate", res, err)
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	// And after reopening (ids come back from DIR/ids).
	in2, err := Open(dir, annot, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if res, err = in2.Ingest(ctx, testClient, rep); err != nil || !res.Duplicate {
		t.Fatalf("Ingest after reopen = %+v, %v, want duplicate", res, err)
	}
	if err := in2.Close(); err != nil {
		t.Fatal(err)
	}

	pulses := readTable[PulseRow](t, dir, "pulses")
	if len(pulses) != 4 {
		t.Fatalf("stored %d pulse rows, want 4", len(pulses))
	}
	p := pulses[3]
	if p.ReportID != rep.ID || p.ClientAddr != "198.51.100.7" || p.ClientPrefix != "198.51.100.0/24" ||
		p.PrefixGroup != "198.51.100.0/22" || p.ASN != 64500 || p.ISP != "isp-a" || p.Site != "site-oca1" ||
		p.Context != `{"exp":"a"}` || p.Type != TypeThroughput || p.Throughput == nil || *p.Throughput != 8e7 ||
		p.TTFBMs != nil || p.ReceivedTime != now.UnixMicro() {
		t.Errorf("pulse row = %+v", p)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "pulses", "date=2026-11-26", "hour=10", "part-*.parquet"))
	if len(files) != 1 {
		t.Errorf("pulse files in date=2026-11-26/hour=10 = %v, want one", files)
	}
	qoe := readTable[QoERow](t, dir, "qoe")
	if len(qoe) != 1 || qoe[0].Site != "site-oca1" || len(qoe[0].ServedBy) != 2 || qoe[0].StartupMs != 800 {
		t.Errorf("qoe rows = %+v", qoe)
	}
	if got := metricValue(t, in.m.reports.WithLabelValues(OutcomeDuplicate)); got != 2 {
		t.Errorf("duplicate count = %v, want 2", got)
	}
	if got := metricValue(t, in.m.compactions); got < 1 {
		t.Errorf("compactions = %v", got)
	}
	if got := metricValue(t, in.m.walBytes); got != 0 {
		t.Errorf("wal bytes = %v, want 0", got)
	}
}

// Concurrent uploads of the same report store it once; distinct reports
// all land, spread over several segments (small segments) and an hour
// boundary (two partitions).
func TestIngestConcurrent(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	now := time.Date(2026, 11, 26, 10, 59, 59, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); now = now.Add(time.Millisecond); return now }
	in, err := Open(dir, nil, Options{Now: clock, SegmentMaxBytes: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]string, 300)
	for i := range ids {
		ids[i] = randID(rng)
	}
	var wg sync.WaitGroup
	var stored sync.Map
	for w := range 8 {
		wg.Go(func() {
			for i, id := range ids {
				if (i+w)%2 == 0 { // every id is sent by 4 workers
					continue
				}
				res, err := in.Ingest(context.Background(), testClient, testReport(id, 3, time.Date(2026, 11, 26, 10, 59, 0, 0, time.UTC)))
				if err != nil {
					t.Errorf("Ingest(%s): %v", id, err)
					return
				}
				if !res.Duplicate {
					if _, loaded := stored.LoadOrStore(id, true); loaded {
						t.Errorf("Ingest(%s) stored twice", id)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	rows := readTable[PulseRow](t, dir, "pulses")
	count := map[string]int{}
	for _, r := range rows {
		count[r.ReportID]++
	}
	for _, id := range ids {
		if count[id] != 3 {
			t.Errorf("report %s has %d pulse rows, want 3", id, count[id])
		}
	}
	if len(rows) != 3*len(ids) {
		t.Errorf("%d rows, want %d", len(rows), 3*len(ids))
	}
	hours, _ := filepath.Glob(filepath.Join(dir, "pulses", "date=2026-11-26", "hour=*"))
	if len(hours) != 2 {
		t.Errorf("hour partitions = %v, want hour=10 and hour=11", hours)
	}
	if _, err := in.Ingest(context.Background(), testClient, testReport(randID(rng), 1, now)); !errors.Is(err, ErrClosed) {
		t.Errorf("Ingest after Close = %v, want ErrClosed", err)
	}
}

func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	switch {
	case out.Counter != nil:
		return out.Counter.GetValue()
	case out.Gauge != nil:
		return out.Gauge.GetValue()
	}
	t.Fatalf("metric %v is neither counter nor gauge", m.Desc())
	return 0
}
