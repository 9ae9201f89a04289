package analyze

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/ocdn/ocdn/internal/measure"
)

// writePulses writes rows as a pulses Parquet file in the hour partition of at.
func writePulses(t *testing.T, dir string, at time.Time, name string, rows []measure.PulseRow, opts ...parquet.WriterOption) string {
	t.Helper()
	p := filepath.Join(dir, "pulses", measure.PartitionDir(at), name)
	writeParquet(t, p, rows, opts...)
	return p
}

// writeParquet writes rows as the Parquet file p, creating its directory.
func writeParquet[T any](t *testing.T, p string, rows []T, opts ...parquet.WriterOption) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[T](f, opts...)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeColumns writes rows as the Parquet file p with only the named
// columns of measure.PulseRow: a file an older ingester wrote.
func writeColumns(t *testing.T, p string, rows []measure.PulseRow, columns []string) {
	t.Helper()
	g := parquet.Group{}
	for _, f := range parquet.SchemaOf(measure.PulseRow{}).Fields() {
		if slices.Contains(columns, f.Name()) {
			g[f.Name()] = f
		}
	}
	if len(g) != len(columns) {
		t.Fatalf("columns %v: not all are measure.PulseRow's", columns)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewWriter(f, parquet.NewSchema("pulses", g))
	for i := range rows {
		if err := w.Write(&rows[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// pulseRow is a successful pulse of type typ from client, received at at
// and measuring appliance a0 at site s0, where the client was steered;
// its timings are left for the caller.
func pulseRow(at time.Time, report, client, typ string) measure.PulseRow {
	return measure.PulseRow{ReportID: report, ReceivedTime: at.UnixMicro(), ClientAddr: client, ClientPrefix: "10.0.0.0/24",
		PrefixGroup: "10.0.0.0/16", ASN: 64500, Context: `{"steered_site":"s0"}`, Site: "s0", Appliance: "a0", Type: typ,
		Status: "ok", Start: at.UnixMicro()}
}

func somePulseRows(at time.Time, n int) []measure.PulseRow {
	var rows []measure.PulseRow
	for i := range n {
		v := 10 + float64(i)
		r := pulseRow(at, "r"+strconv.Itoa(i), "10.0.0.1", "http_ttfb")
		r.TTFBMs = &v
		rows = append(rows, r)
	}
	return rows
}

func runOpts(data, out string) Options {
	return Options{DataDir: data, OutDir: out, BootstrapReps: 50}
}

func TestBadInput(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 5, 0, 0, time.UTC)
	cases := []struct {
		name    string
		setup   func(t *testing.T, dir string) (data, mention string)
		opts    func(o *Options)
		wantErr error
	}{
		{"missing dir", func(t *testing.T, dir string) (string, string) {
			p := filepath.Join(dir, "nope")
			return p, p
		}, nil, os.ErrNotExist},
		{"no parquet files", func(t *testing.T, dir string) (string, string) {
			os.MkdirAll(filepath.Join(dir, "pulses"), 0o755)
			return dir, "pulses"
		}, nil, ErrNoData},
		{"corrupt file", func(t *testing.T, dir string) (string, string) {
			writePulses(t, dir, at, "part-000000000001.parquet", somePulseRows(at, 20))
			p := filepath.Join(dir, "pulses", measure.PartitionDir(at), "part-000000000002.parquet")
			os.WriteFile(p, []byte("PAR1 this is not a parquet file at all PAR1"), 0o644)
			return dir, p
		}, nil, ErrBadFile},
		{"truncated file", func(t *testing.T, dir string) (string, string) {
			p := writePulses(t, dir, at, "part-000000000001.parquet", somePulseRows(at, 200))
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
			return dir, p
		}, nil, ErrBadFile},
		{"garbled middle", func(t *testing.T, dir string) (string, string) {
			p := writePulses(t, dir, at, "part-000000000001.parquet", somePulseRows(at, 200))
			b, _ := os.ReadFile(p)
			for i := 8; i < len(b)/2; i++ {
				b[i] ^= 0x5a
			}
			os.WriteFile(p, b, 0o644)
			return dir, p
		}, nil, ErrBadFile},
		{"empty time range", func(t *testing.T, dir string) (string, string) {
			writePulses(t, dir, at, "part-000000000001.parquet", somePulseRows(at, 20))
			return dir, "since 2027-01-01"
		}, func(o *Options) { o.Filter.Since = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC) }, ErrEmptyRange},
		{"empty site filter", func(t *testing.T, dir string) (string, string) {
			writePulses(t, dir, at, "part-000000000001.parquet", somePulseRows(at, 20))
			return dir, "at sites elsewhere"
		}, func(o *Options) { o.Filter.Sites = []string{"elsewhere"} }, ErrEmptyRange},
		{"newer schema version", func(t *testing.T, dir string) (string, string) {
			p := writePulses(t, dir, at, "part-000000000001.parquet", somePulseRows(at, 20),
				parquet.KeyValueMetadata("schema_version", "2"))
			return dir, p
		}, nil, ErrNewerSchema},
		{"unknown column", func(t *testing.T, dir string) (string, string) {
			type future struct {
				measure.PulseRow
				RTTVarMs float64 `parquet:"rttvar_ms"`
			}
			p := filepath.Join(dir, "pulses", measure.PartitionDir(at), "part-000000000001.parquet")
			os.MkdirAll(filepath.Dir(p), 0o755)
			rows := []future{{PulseRow: somePulseRows(at, 1)[0], RTTVarMs: 3}}
			if err := parquet.WriteFile(p, rows); err != nil {
				t.Fatal(err)
			}
			return dir, p
		}, nil, ErrNewerSchema},
		{"not a pulses table", func(t *testing.T, dir string) (string, string) {
			type other struct {
				X int64 `parquet:"report_id"`
			}
			p := filepath.Join(dir, "pulses", measure.PartitionDir(at), "part-000000000001.parquet")
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := parquet.WriteFile(p, []other{{1}}); err != nil {
				t.Fatal(err)
			}
			return dir, p
		}, nil, ErrBadFile},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			data, mention := tc.setup(t, dir)
			o := runOpts(data, filepath.Join(dir, "out"))
			if tc.opts != nil {
				tc.opts(&o)
			}
			_, err := Run(context.Background(), o)
			if err == nil {
				t.Fatalf("Run = nil error, want %v", tc.wantErr)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Run error = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), mention) {
				t.Errorf("Run error = %q, want it to name %q", err, mention)
			}
		})
	}
	t.Run("until before since", func(t *testing.T) {
		o := runOpts(t.TempDir(), t.TempDir())
		o.Filter.Since, o.Filter.Until = at, at.Add(-time.Hour)
		if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "--until") {
			t.Errorf("Run = %v, want an error naming --until", err)
		}
	})
}

func FuzzLoadCorrupt(f *testing.F) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	p := filepath.Join(f.TempDir(), "seed.parquet")
	if err := parquet.WriteFile(p, somePulseRows(at, 30)); err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(p)
	fuzzCorrupt(f, "pulses", at, good, func(dir string) error {
		if _, _, err := Load(dir, Filter{}, nil); !errors.Is(err, ErrEmptyRange) {
			return err
		}
		return nil
	})
}

// fuzzCorrupt fuzzes a loader of table with good, a file of it, with one
// byte changed: load (given the data directory) must not panic, and an
// error it returns must name the file.
func fuzzCorrupt(f *testing.F, table string, at time.Time, good []byte, load func(dir string) error) {
	f.Add(good, 100, byte(1))
	f.Fuzz(func(t *testing.T, b []byte, off int, x byte) {
		d := t.TempDir()
		q := filepath.Join(d, table, measure.PartitionDir(at), "part-000000000001.parquet")
		os.MkdirAll(filepath.Dir(q), 0o755)
		if len(b) > 0 && off >= 0 {
			b[off%len(b)] ^= x
		}
		os.WriteFile(q, b, 0o644)
		if err := load(d); err != nil && !strings.Contains(err.Error(), "part-000000000001.parquet") {
			t.Errorf("loading %s: error %q does not name the file", table, err)
		}
	})
}

// TestEndToEndIngester writes reports through measure's ingester and
// analyzes its directory: three sites with planted TTFB medians 20, 30 and
// 45 ms, every client steered to s1, so s0 is a better alternative by a
// third for every prefix group.
func TestEndToEndIngester(t *testing.T) {
	data := t.TempDir()
	sites := map[string]string{"a0": "s0", "a1": "s1", "a2": "s2"}
	medians := map[string]float64{"s0": 20, "s1": 30, "s2": 45}
	annot := measure.FuncAnnotator(func(c netip.Addr, appliance string) measure.Annotation {
		b := c.As4()
		return measure.Annotation{PrefixGroup: fmt.Sprintf("10.%d.0.0/16", b[1]), ASN: 64500 + uint32(b[1]), Site: sites[appliance]}
	})
	in, err := measure.Open(data, annot, measure.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const groups, clientsPerGroup, reportsPerClient = 4, 12, 3
	now := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, groups*clientsPerGroup)
	for g := range groups {
		for c := range clientsPerGroup {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), uint64(c)))
				addr := netip.AddrFrom4([4]byte{10, byte(g), byte(c), 7})
				arm := "control"
				if c%2 == 1 {
					arm = "measured"
				}
				for r := range reportsPerClient {
					rep := &measure.Report{ID: fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()), Recipe: "rcp",
						Context: map[string]string{"steered_site": "s1", "arm": arm}, ClientTime: now}
					seq := 0
					for _, app := range []string{"a0", "a1", "a2"} {
						for range 4 {
							rep.Pulses = append(rep.Pulses, measure.Pulse{Target: app, Appliance: app, Type: measure.TypeHTTPTTFB,
								Seq: seq, Start: now, ConnectMs: lognormal(rng, medians[sites[app]]/3, 0.2),
								TTFBMs: lognormal(rng, medians[sites[app]], 0.15), DurationMs: 60, Status: measure.StatusOK, HTTPStatus: 206})
							seq++
						}
					}
					_ = r
					if _, err := in.Ingest(context.Background(), addr, rep); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "report")
	if d := os.Getenv("OCDN_ANALYZE_KEEP"); d != "" { // to look at the page: OCDN_ANALYZE_KEEP=/tmp/x go test -run EndToEnd
		out = filepath.Join(d, "e2e")
	}
	var msgs []string
	o := runOpts(data, out)
	o.Progress = func(s string) { msgs = append(msgs, s) }
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	wantRows := groups * clientsPerGroup * reportsPerClient * 12
	if sum.Rows != wantRows {
		t.Errorf("Summary.Rows = %d, want %d", sum.Rows, wantRows)
	}
	if len(msgs) == 0 {
		t.Error("no progress messages")
	}
	for _, name := range []string{"index.html", "quantiles.csv", "paired.csv", "regret.csv", "regret_groups.csv", "changes.csv", "series.csv", "misses.csv", "arms.csv", "experiments.csv"} {
		if st, err := os.Stat(filepath.Join(out, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v, want a non-empty file", name, err)
		}
	}
	// Per-site p50 TTFB ordering from the site-wide rows.
	recs := readCSV(t, filepath.Join(out, "quantiles.csv"))
	col := func(name string) int {
		for i, h := range recs[0] {
			if h == name {
				return i
			}
		}
		t.Fatalf("quantiles.csv has no column %s", name)
		return -1
	}
	p50 := make(map[string]float64)
	for _, r := range recs[1:] {
		if r[col("asn")] == "*" && r[col("metric")] == "ttfb_ms" && r[col("quantile")] == "0.5" {
			v, err := strconv.ParseFloat(r[col("value")], 64)
			if err != nil {
				t.Fatalf("site-wide p50 row %v: %v", r, err)
			}
			p50[r[col("site")]] = v
			lo, _ := strconv.ParseFloat(r[col("ci_lo")], 64)
			hi, _ := strconv.ParseFloat(r[col("ci_hi")], 64)
			if want := medians[r[col("site")]]; !(lo <= want*1.03 && want*0.97 <= hi) {
				t.Errorf("site %s p50 TTFB CI [%g, %g], want it near the planted %g", r[col("site")], lo, hi, want)
			}
		}
	}
	if !(p50["s0"] < p50["s1"] && p50["s1"] < p50["s2"]) {
		t.Errorf("site p50 TTFB = %v, want s0 < s1 < s2 as planted (20, 30, 45 ms)", p50)
	}
	// Every group is steered to s1 while s0 is 33% faster: all regret.
	for _, r := range sum.RegretSummary {
		if r.Metric == TTFB && (r.Evaluated != groups || r.Regretful != groups) {
			t.Errorf("TTFB regret = %+v, want all %d groups", r, groups)
		}
	}
	if len(sum.Experiments) != 1 || strings.Join(sum.Experiments[0].ArmNames, ",") != "control,measured" {
		t.Errorf("Summary.Experiments = %+v, want one with arms control,measured", sum.Experiments)
	}
	html, _ := os.ReadFile(filepath.Join(out, "index.html"))
	for _, want := range []string{"<svg", "No miss data", "Steering regret", "CUSUM", "s0", "s2"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("index.html lacks %q", want)
		}
	}
	if strings.Contains(string(html), "<script") || strings.Contains(string(html), "http://") && !strings.Contains(string(html), `xmlns="http://www.w3.org/2000/svg"`) {
		t.Error("index.html has scripts or external references")
	}
	if recs := readCSV(t, filepath.Join(out, "misses.csv")); len(recs) != 1 {
		t.Errorf("misses.csv = %v, want only the header", recs)
	}
	// The time filter prunes everything before now.
	o2 := runOpts(data, t.TempDir())
	o2.Filter.Until = now.Add(-48 * time.Hour)
	if _, err := Run(context.Background(), o2); !errors.Is(err, ErrEmptyRange) {
		t.Errorf("Run with --until two days ago = %v, want ErrEmptyRange", err)
	}
}

// The measure dirs of control-plane replicas, collected under one
// directory, are read as one store.
func TestLoadReadsReplicasUnion(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 5, 0, 0, time.UTC)
	dir := t.TempDir()
	writePulses(t, filepath.Join(dir, "c1"), at, "part-0000000000000001-000000000001.parquet", somePulseRows(at, 20))
	writePulses(t, filepath.Join(dir, "c2"), at, "part-0000000000000002-000000000001.parquet", somePulseRows(at, 30))
	rows, st, err := Load(dir, Filter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 50 || st.Files != 2 {
		t.Errorf("Load(dir of two stores) = %d rows from %d files, want 50 from 2", len(rows), st.Files)
	}
}
