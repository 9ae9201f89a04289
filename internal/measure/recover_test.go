package measure

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A segment whose last record was torn by a crash is replayed up to the
// tear at Open, and its intact reports count as seen.
func TestOpenReplaysTornSegment(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	if err := os.MkdirAll(filepath.Join(dir, "wal"), 0o755); err != nil {
		t.Fatal(err)
	}
	var seg []byte
	for _, id := range []string{"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc"} {
		p, err := json.Marshal(&walRecord{Received: now.UnixNano(), Client: "192.0.2.1", ClientPrefix: "192.0.2.0/24",
			PrefixGroup: "192.0.2.0/24", Sites: []string{"s", "s"}, Report: testReport(id, 2, now)})
		if err != nil {
			t.Fatal(err)
		}
		seg = appendFrame(seg, p)
	}
	seg = seg[:len(seg)-10] // tear the third record
	if err := os.WriteFile(filepath.Join(dir, "wal", segmentName(7)), seg, 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := Open(dir, nil, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if res, err := in.Ingest(ctx, testClient, testReport("bbbbbbbbbbbbbbbb", 2, now)); err != nil || !res.Duplicate {
		t.Errorf("re-upload of a replayed report = %+v, %v, want duplicate", res, err)
	}
	if res, err := in.Ingest(ctx, testClient, testReport("cccccccccccccccc", 2, now)); err != nil || res.Duplicate {
		t.Errorf("re-upload of the torn (never acknowledged) report = %+v, %v, want stored", res, err)
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, r := range readTable[PulseRow](t, dir, "pulses") {
		count[r.ReportID]++
	}
	if count["aaaaaaaaaaaaaaaa"] != 2 || count["bbbbbbbbbbbbbbbb"] != 2 || count["cccccccccccccccc"] != 2 || len(count) != 3 {
		t.Errorf("pulse rows per report = %v, want 2 each for a, b, c", count)
	}
	// New segments are numbered after the replayed one.
	if _, err := os.Stat(filepath.Join(dir, "pulses", "date=2026-11-26", "hour=10", partName(storeIDOf(t, dir), 7))); err != nil {
		t.Errorf("replayed segment 7 not compacted under its own name: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pulses", "date=2026-11-26", "hour=10", partName(storeIDOf(t, dir), 8))); err != nil {
		t.Errorf("next segment not numbered 8: %v", err)
	}
}
