package analyze

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/measure"
)

// writeTable writes rows as a Parquet file of table in the hour partition
// of at.
func writeTable[T any](t *testing.T, dir, table string, at time.Time, rows []T) {
	t.Helper()
	writeParquet(t, filepath.Join(dir, table, measure.PartitionDir(at), "part-000000000001.parquet"), rows)
}

func expContext(arm, assigned, steered string) string {
	c := fmt.Sprintf(`{"arm":%q,"arm_shares":"bgp=0.5,measured=0.5","control_arm":"bgp","experiment":"lab","experiment_start":"2026-11-26T10:00:00Z","steered_site":%q`, arm, steered)
	if assigned != "" {
		c += fmt.Sprintf(`,"assigned_arm":%q`, assigned)
	}
	return c + "}"
}

// TestExperimentSeesWhatEachArmGot is item 5's planted effect on stored
// data: every report of both arms probes both sites, the fast s0 (40
// Mbit/s) and the slow s1 (8 Mbit/s), but the measured arm is steered to
// s0 and the bgp arm to s1. Pooling every pulse of an arm, as before,
// gives both arms the same mixture and no difference; comparing what
// each arm's clients got at the site they were steered to finds the
// planted 32 Mbit/s, and so does playback (startup 400 vs 900 ms).
// Reports of a client claiming the other arm are mismatches: counted,
// and kept out even though their values are extreme.
func TestExperimentSeesWhatEachArmGot(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	at := time.Date(2026, 11, 26, 10, 5, 0, 0, time.UTC)
	var pulses []measure.PulseRow
	var qoe []measure.QoERow
	var pooled [2][]float64
	for c := range 60 {
		arm, steered, startup := "bgp", "s1", 900.0
		if c%2 == 1 {
			arm, steered, startup = "measured", "s0", 400.0
		}
		addr := netip.AddrFrom4([4]byte{10, 1, byte(c), 9})
		for k := range 4 {
			id := fmt.Sprintf("r-%d-%d", c, k)
			for site, mbps := range map[string]float64{"s0": 40, "s1": 8} {
				v := mbps * 1e6 * math.Exp(0.2*rng.NormFloat64())
				pulses = append(pulses, measure.PulseRow{ReportID: id, ReceivedTime: at.UnixMicro(), ClientAddr: addr.String(),
					ClientPrefix: measure.DefaultPrefix(addr), PrefixGroup: "10.1.0.0/16", ASN: 64500, Context: expContext(arm, arm, steered),
					Site: site, Appliance: site + "-1", Type: "throughput", Status: "ok", Start: at.UnixMicro(), Throughput: &v})
				pooled[c%2] = append(pooled[c%2], v)
			}
		}
		qoe = append(qoe, measure.QoERow{ReportID: fmt.Sprintf("q-%d", c), ReceivedTime: at.UnixMicro(), ClientAddr: addr.String(),
			ClientPrefix: measure.DefaultPrefix(addr), PrefixGroup: "10.1.0.0/16", Context: expContext(arm, arm, ""), Site: steered,
			StartupMs: startup * math.Exp(0.1*rng.NormFloat64()), AvgBitrateKbps: 2000, DurationMs: 12000})
	}
	// Five clients of the bgp arm whose reports claim the measured arm.
	for c := range 5 {
		addr := netip.AddrFrom4([4]byte{10, 2, byte(c), 9})
		v := 1.0
		pulses = append(pulses, measure.PulseRow{ReportID: fmt.Sprintf("m-%d", c), ReceivedTime: at.UnixMicro(), ClientAddr: addr.String(),
			ClientPrefix: measure.DefaultPrefix(addr), PrefixGroup: "10.2.0.0/16", Context: expContext("measured", "bgp", "s0"),
			Site: "s0", Appliance: "s0-1", Type: "throughput", Status: "ok", Start: at.UnixMicro(), Throughput: &v})
	}
	data, out := t.TempDir(), t.TempDir()
	writeTable(t, data, "pulses", at, pulses)
	writeTable(t, data, "qoe", at, qoe)
	sum, err := Run(context.Background(), Options{DataDir: data, OutDir: out, BootstrapReps: 500})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Experiments) != 1 {
		t.Fatalf("experiments = %+v, want one", sum.Experiments)
	}
	e := sum.Experiments[0]
	if e.Meta.Name != "lab" || e.Meta.Control != "bgp" || e.Meta.Shares["measured"] != 0.5 || e.Mismatched != 5 {
		t.Errorf("experiment = %+v, want lab, control bgp, shares recorded, 5 mismatched reports", e)
	}
	if e.Units["bgp"] != 30 || e.Units["measured"] != 30 || e.SRM.Mismatch {
		t.Errorf("units %v, SRM %+v: want 30 and 30 and no mismatch", e.Units, e.SRM)
	}
	got := map[string]ArmResult{}
	for _, r := range e.Results {
		if r.Arm == "measured" {
			got[r.Metric] = r
		}
	}
	tp := got["throughput_bps"]
	if !tp.Significant || !(tp.DiffLo <= 32e6 && 32e6 <= tp.DiffHi) || tp.Clients != 30 {
		t.Errorf("measured throughput = %+v, want a significant difference whose CI covers the planted 32 Mbit/s over 30 clients", tp)
	}
	st := got["startup_ms"]
	if !st.Significant || !(st.DiffLo <= -500 && -500 <= st.DiffHi) {
		t.Errorf("measured startup = %+v, want a CI covering the planted −500 ms", st)
	}
	// What the pooled comparison would have said: the same mixture.
	meds := [2]float64{}
	for i := range pooled {
		meds[i] = medianOf(pooled[i])
	}
	if r := meds[1] / meds[0]; r < 0.8 || r > 1.25 {
		t.Errorf("pooled medians %v differ by %.2f×: the test data does not show what pooling hides", meds, r)
	}
	recs := readCSV(t, filepath.Join(out, "experiments.csv"))
	if len(recs) != 3 || recs[1][0] != "lab" || recs[1][11] != "5" {
		t.Errorf("experiments.csv = %v", recs)
	}
}

func TestSampleRatioMismatch(t *testing.T) {
	shares := map[string]float64{"bgp": 0.5, "measured": 0.5}
	for _, tc := range []struct {
		bgp, measured int
		want          bool
	}{{100, 95, false}, {100, 50, true}, {500, 470, false}, {500, 400, true}} {
		_, srm := sampleRatio([]string{"bgp", "measured"}, map[string]int{"bgp": tc.bgp, "measured": tc.measured}, shares)
		if srm.Mismatch != tc.want {
			t.Errorf("units %d/%d: SRM = %+v, want mismatch %v", tc.bgp, tc.measured, srm, tc.want)
		}
	}
	// Unequal shares are the expectation, not a mismatch.
	_, srm := sampleRatio([]string{"a", "b"}, map[string]int{"a": 300, "b": 100}, map[string]float64{"a": 0.75, "b": 0.25})
	if srm.Mismatch || srm.P < 0.5 {
		t.Errorf("75/25 split as assigned: SRM = %+v, want no mismatch", srm)
	}
}

// TestAATestFalsePositiveRate is issue 14's A/A target: two arms drawn
// from the same population (clients with their own level, several pulses
// each, lognormal noise) are compared by the experiment analysis over 600
// seeds; the 95% interval of the difference must exclude 0 in 5% ± 2% of
// them.
func TestAATestFalsePositiveRate(t *testing.T) {
	const seeds = 600
	positives := 0
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(seed), 0xaa))
		var rows []Row
		for c := range 60 {
			arm := "a"
			if rng.IntN(2) == 1 {
				arm = "b"
			}
			addr := netip.AddrFrom4([4]byte{10, byte(c >> 8), byte(c), 9})
			level := 20 * math.Exp(0.3*rng.NormFloat64()) // a client's own path
			for k := range 5 {
				r := Row{ReportID: "r" + strconv.Itoa(c) + "-" + strconv.Itoa(k), ClientAddr: addr, Prefix: measure.DefaultPrefix(addr),
					Site: "s", SteeredSite: "s", Arm: arm, Values: [numMetrics]float64{math.NaN(), math.NaN(), level * math.Exp(0.2*rng.NormFloat64()) * 1e6}}
				rows = append(rows, r)
			}
		}
		res := Experiments(rows, nil, 0.95, 400, rand.New(rand.NewPCG(uint64(seed), 1)))
		for _, r := range res[0].Results {
			if r.Arm == "b" && r.Metric == "throughput_bps" && r.Significant {
				positives++
			}
		}
	}
	rate := float64(positives) / seeds
	t.Logf("A/A: %d of %d seeds significant (%.1f%%)", positives, seeds, 100*rate)
	if rate < 0.03 || rate > 0.07 {
		t.Errorf("A/A false positive rate = %.3f, want 0.05 ± 0.02", rate)
	}
}

// FuzzParseShares: the arm_shares context comes from clients' reports;
// whatever it holds, parsing returns nil or shares in [0, 1] keyed by
// non-empty arm names.
func FuzzParseShares(f *testing.F) {
	for _, s := range []string{"bgp=0.5,measured=0.5", "a=1", "", "=0.5", "a=2", "a=NaN", "a=0.5,,b=0.5", "a=0.1,a=0.9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for k, v := range parseShares(s) {
			if k == "" || !(v >= 0 && v <= 1) {
				t.Fatalf("parseShares(%q) gave %q=%v", s, k, v)
			}
		}
	})
}

// TestIssuedSinceLeavesOutRecipesBeforeAMove plants what the lab's
// degrade_link comparison meets: a group moves at `move`, and reports
// received after it still carry pulses of recipes issued before it,
// steered to the old, slow site (s1). Filtering on received time keeps
// them in the measured arm; filtering on the recipe's issue time
// (context issued_at) keeps only recipes issued after the move, and rows
// without a readable issued_at are left out rather than guessed.
func TestIssuedSinceLeavesOutRecipesBeforeAMove(t *testing.T) {
	move := time.Date(2026, 11, 26, 10, 5, 0, 0, time.UTC)
	recv := move.Add(3 * time.Second)
	ctx := func(arm, steered, issued string) string {
		c := expContext(arm, arm, steered)
		if issued != "" {
			c = c[:len(c)-1] + fmt.Sprintf(`,"issued_at":%q}`, issued)
		}
		return c
	}
	var pulses []measure.PulseRow
	add := func(id string, c int, context string, mbps float64) {
		addr := netip.AddrFrom4([4]byte{10, 1, byte(c), 9})
		v := mbps * 1e6
		site := "s1"
		if strings.Contains(context, `"steered_site":"s0"`) {
			site = "s0"
		}
		pulses = append(pulses, measure.PulseRow{ReportID: id, ReceivedTime: recv.UnixMicro(), ClientAddr: addr.String(),
			ClientPrefix: measure.DefaultPrefix(addr), PrefixGroup: "10.1.0.0/16", Context: context,
			Site: site, Appliance: site + "-1", Type: "throughput", Status: "ok", Start: recv.UnixMicro(), Throughput: &v})
	}
	before, after := move.Add(-4*time.Second).Format(time.RFC3339Nano), move.Add(time.Second).Format(time.RFC3339Nano)
	for c := range 20 {
		arm := []string{"bgp", "measured"}[c%2]
		// Before the move every client is steered to s1.
		add(fmt.Sprintf("pre-%d", c), c, ctx(arm, "s1", before), 4)
		if arm == "measured" {
			add(fmt.Sprintf("post-%d", c), c, ctx(arm, "s0", after), 20)
		} else {
			add(fmt.Sprintf("post-%d", c), c, ctx(arm, "s1", after), 4)
		}
	}
	add("no-issued", 40, ctx("measured", "s1", ""), 4)
	add("bad-issued", 41, ctx("measured", "s1", "yesterday"), 4)
	data := t.TempDir()
	writeTable(t, data, "pulses", recv, pulses)

	byReceived, _, err := Load(data, Filter{Since: move}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(byReceived) != 42 {
		t.Fatalf("Load(since move) = %d rows, want all 42 (every report was received after the move)", len(byReceived))
	}
	rows, _, err := Load(data, Filter{IssuedSince: move}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rows {
		ids = append(ids, r.ReportID)
		if want := move.Add(time.Second); !r.Issued.Equal(want) {
			t.Errorf("row %s: Issued = %v, want %v from context issued_at", r.ReportID, r.Issued, want)
		}
	}
	if len(ids) != 20 || slices.ContainsFunc(ids, func(id string) bool { return !strings.HasPrefix(id, "post-") }) {
		t.Errorf("Load(IssuedSince move) kept %v, want the 20 post-move recipes only", ids)
	}
	median := func(rows []Row) float64 {
		for _, e := range Experiments(rows, nil, 0.95, 200, rand.New(rand.NewPCG(1, 2))) {
			for _, a := range e.Results {
				if a.Arm == "measured" && a.Metric == "throughput_bps" {
					return a.P50
				}
			}
		}
		return math.NaN()
	}
	if got := median(rows); got != 20e6 {
		t.Errorf("measured arm median over post-move recipes = %v, want 20 Mbit/s: only what it was steered to after the move", got)
	}
}

// TestScanFileStreamsWhatLoadReads: ScanFile over PulseFiles passes the
// same rows Load returns, in the same order, over several files (one of
// them a report naming only its steered appliance, whose site Load works
// out within its file), and Arms fed that way, one Arms per file merged,
// gives what Experiments gives on Load's rows: the console keeps the arms
// that way instead of holding an hour of rows.
func TestScanFileStreamsWhatLoadReads(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	at := time.Date(2026, 11, 26, 10, 5, 0, 0, time.UTC)
	data := t.TempDir()
	for file := range 3 {
		var pulses []measure.PulseRow
		for c := range 20 {
			arm, steered := "bgp", "s1"
			if c%2 == 1 {
				arm, steered = "measured", "s0"
			}
			addr := netip.AddrFrom4([4]byte{10, byte(file), byte(c), 9})
			ctx := expContext(arm, arm, steered)
			if c == 3 { // the site only through the steered appliance
				ctx = strings.Replace(ctx, `"steered_site":"s0"`, `"steered_appliance":"s0-1"`, 1)
			}
			id := fmt.Sprintf("r-%d-%d", file, c)
			for _, site := range []string{"s0", "s1"} {
				v := 1e6 * (1 + rng.Float64())
				pulses = append(pulses, measure.PulseRow{ReportID: id, ReceivedTime: at.Add(time.Duration(file) * time.Minute).UnixMicro(),
					ClientAddr: addr.String(), ClientPrefix: measure.DefaultPrefix(addr), PrefixGroup: "10.0.0.0/8", Context: ctx,
					Site: site, Appliance: site + "-1", Type: "throughput", Status: "ok", Start: at.UnixMicro(), Throughput: &v})
			}
		}
		writePulses(t, data, at, fmt.Sprintf("part-a-%012d.parquet", file), pulses)
	}
	rows, lst, err := Load(data, Filter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	files, err := PulseFiles(data, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var scanned []Row
	var arms Arms
	for _, path := range files {
		var one Arms
		n, err := ScanFile(path, Filter{}, func(r *Row) {
			scanned = append(scanned, *r)
			one.AddRow(r)
		})
		if err != nil || n != 40 {
			t.Fatalf("ScanFile(%s) = %d, %v; want its 40 rows", path, n, err)
		}
		arms.Merge(&one)
	}
	if len(rows) != 120 || lst.RowsKept != 120 || len(scanned) != 120 {
		t.Fatalf("Load: %d rows, %+v; ScanFile: %d rows; want 120", len(rows), lst, len(scanned))
	}
	for i := range rows {
		if rowString(rows[i]) != rowString(scanned[i]) {
			t.Fatalf("row %d: Load %+v, ScanFile %+v", i, rows[i], scanned[i])
		}
	}
	if n := slices.IndexFunc(rows, func(r Row) bool { return r.ReportID == "r-0-3" && r.SteeredSite != "s0" }); n >= 0 {
		t.Errorf("row %d of the report naming only its steered appliance: steered site %q, want s0", n, rows[n].SteeredSite)
	}
	want := Experiments(rows, nil, 0.95, 100, rand.New(rand.NewPCG(1, 2)))
	got := arms.Results(0.95, 100, rand.New(rand.NewPCG(1, 2)))
	if len(want) != 1 || len(want[0].Results) == 0 {
		t.Fatalf("Experiments = %+v, want one experiment with results", want)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Arms merged from each file:\n%+v\nExperiments on Load's rows:\n%+v", got, want)
	}
	if later, err := PulseFiles(data, Filter{Since: at.Add(time.Hour)}); err != nil || len(later) != 0 {
		t.Errorf("PulseFiles since an hour after the files' hour = %v, %v; want none", later, err)
	}
}

// rowString prints r with its experiment by value (each load has its own
// *ExperimentMeta) and NaNs as NaN, which reflect.DeepEqual calls unequal.
func rowString(r Row) string {
	var exp ExperimentMeta
	if r.Exp != nil {
		exp = *r.Exp
	}
	r.Exp = nil
	return fmt.Sprintf("%+v %+v", r, exp)
}
