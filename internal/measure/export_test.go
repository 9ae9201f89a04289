package measure

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// ingestSample stores two reports (one with QoE, one with an error pulse)
// received at now, compacted.
func ingestSample(t *testing.T, now time.Time) string {
	t.Helper()
	dir := t.TempDir()
	in, err := Open(dir, nil, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	a := testReport("aaaaaaaaaaaaaaaa", 4, now.Add(-time.Minute))
	a.Player = &QoE{StartupMs: 900, Rebuffers: 1, RebufferMs: 300, AvgBitrateKbps: 2500, Switches: 2, ServedBy: []string{"oca0", "oca1"}, DurationMs: 1000}
	b := testReport("bbbbbbbbbbbbbbbb", 2, now.Add(-time.Minute))
	b.Context = nil
	b.Pulses[1] = Pulse{Target: "t9", Appliance: "oca9", Type: TypeHTTPTTFB, Seq: 1, Start: now.Add(-time.Minute),
		DurationMs: 5000, Status: StatusTimeout, Error: "i/o timeout, \"quoted\""}
	for _, r := range []*Report{a, b} {
		if _, err := in.Ingest(context.Background(), testClient, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestExport(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC)
	dir := ingestSample(t, now)

	var buf bytes.Buffer
	n, err := Export(&buf, dir, "pulses", "csv")
	if err != nil || n != 6 {
		t.Fatalf("Export(pulses, csv) = %d, %v, want 6 rows", n, err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 7 || strings.Join(recs[0], ",") != strings.Join(pulseColumns, ",") {
		t.Fatalf("csv = %d records, header %v", len(recs), recs[0])
	}
	last := map[string]string{}
	for i, c := range recs[0] {
		last[c] = recs[6][i]
	}
	want := map[string]string{"report_id": "bbbbbbbbbbbbbbbb", "status": "timeout", "connect_ms": "", "ttfb_ms": "",
		"error": `i/o timeout, "quoted"`, "context": "{}", "received_time": "2026-11-26T10:30:00Z", "seq": "1"}
	for k, v := range want {
		if last[k] != v {
			t.Errorf("csv row %s = %q, want %q", k, last[k], v)
		}
	}

	buf.Reset()
	if n, err = Export(&buf, dir, "qoe", "jsonl"); err != nil || n != 1 {
		t.Fatalf("Export(qoe, jsonl) = %d, %v, want 1 row", n, err)
	}
	var q map[string]any
	if err := json.Unmarshal(buf.Bytes(), &q); err != nil {
		t.Fatalf("jsonl line %q: %v", buf.String(), err)
	}
	if q["report_id"] != "aaaaaaaaaaaaaaaa" || q["startup_ms"] != 900.0 || fmt.Sprint(q["served_by"]) != "[oca0 oca1]" ||
		fmt.Sprint(q["context"]) != "map[exp:a]" {
		t.Errorf("jsonl qoe row = %v", q)
	}
	if _, err := Export(&buf, dir, "nope", "csv"); err == nil {
		t.Error("Export(table nope) = nil error")
	}
}

// DuckDB reads the files with the intended types, the hive partition
// columns, and NULLs where the client reported nothing.
func TestParquetSchemaDuckDB(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC)
	dir := ingestSample(t, now)
	rows := duckQuery(t, fmt.Sprintf(`
		SELECT count(*)::INTEGER AS n, count(DISTINCT report_id)::INTEGER AS reports,
		       min(date)::VARCHAR AS date, min(hour)::INTEGER AS hour,
		       count(ttfb_ms)::INTEGER AS ttfb_nonnull, max(received_time)::VARCHAR AS rx,
		       typeof(any_value(received_time)) AS rx_type, typeof(any_value(asn)) AS asn_type,
		       max(CASE WHEN status = 'timeout' THEN error END) AS err,
		       max(json_extract_string(context, '$.exp')) AS exp
		FROM read_parquet('%s/pulses/**/*.parquet', hive_partitioning = true)`, dir))
	got := fmt.Sprint(rows)
	want := "[map[asn_type:UINTEGER date:2026-11-26 err:i/o timeout, \"quoted\" exp:a hour:10 n:6 reports:2 rx:2026-11-26 10:30:00+00 rx_type:TIMESTAMP WITH TIME ZONE ttfb_nonnull:1]]"
	if got != want {
		t.Errorf("duckdb pulses summary =\n%s\nwant\n%s", got, want)
	}
	q := duckQuery(t, fmt.Sprintf(`SELECT report_id, rebuffers::INTEGER AS rebuffers, served_by[2] AS second
		FROM read_parquet('%s/qoe/**/*.parquet', hive_partitioning = true)`, dir))
	if got := fmt.Sprint(q); got != "[map[rebuffers:1 report_id:aaaaaaaaaaaaaaaa second:oca1]]" {
		t.Errorf("duckdb qoe = %s", got)
	}
}
