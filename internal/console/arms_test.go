package console

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/ocdn/ocdn/internal/analyze"
	"github.com/ocdn/ocdn/internal/measure"
)

// armsPulses is one minute's reports of 20 clients, half in each arm,
// each probing both sites, the measured arm steered to the faster.
func armsPulses(rng *rand.Rand, at time.Time, minute int) []measure.PulseRow {
	var rows []measure.PulseRow
	for c := range 20 {
		arm, steered := "bgp", "s1"
		if c%2 == 1 {
			arm, steered = "measured", "s0"
		}
		addr := netip.AddrFrom4([4]byte{10, 1, byte(c), 9})
		ctx := fmt.Sprintf(`{"arm":%q,"assigned_arm":%q,"arm_shares":"bgp=0.5,measured=0.5","control_arm":"bgp","experiment":"lab","experiment_start":"2026-11-26T10:00:00Z","steered_site":%q}`, arm, arm, steered)
		for site, mbps := range map[string]float64{"s0": 40, "s1": 8} {
			v := mbps * 1e6 * (1 + 0.2*rng.Float64())
			rows = append(rows, measure.PulseRow{ReportID: fmt.Sprintf("r-%d-%d", minute, c), ReceivedTime: at.UnixMicro(), ClientAddr: addr.String(),
				ClientPrefix: measure.DefaultPrefix(addr), PrefixGroup: "10.1.0.0/16", Context: ctx, Site: site, Appliance: site + "-1",
				Type: "throughput", Status: "ok", Start: at.UnixMicro(), Throughput: &v})
		}
	}
	return rows
}

// TestArmsReadEachFileOnce: the console reads a pulses file the first
// time it sees it and keeps only what the arms need (a file it read is
// not read again: this test spoils it on disk, and the next refresh does
// not notice); its results are what `ocdn analyze` computes from the
// same files; and once the files are older than the window, nothing of
// them is kept.
func TestArmsReadEachFileOnce(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 11, 26, 10, 5, 0, 0, time.UTC)
	now := start
	c := &Console{cfg: Config{MeasureDir: dir, Now: func() time.Time { return now }}, log: slog.New(slog.DiscardHandler)}
	rng := rand.New(rand.NewPCG(3, 3))
	write := func(minute int) string {
		at := start.Add(time.Duration(minute) * time.Minute)
		p := filepath.Join(dir, "pulses", measure.PartitionDir(at), fmt.Sprintf("part-a-%012d.parquet", minute))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := parquet.WriteFile(p, armsPulses(rng, at, minute)); err != nil {
			t.Fatal(err)
		}
		return p
	}

	if v := c.computeArms(); v.Rows != 0 || v.Note == "" {
		t.Errorf("with no files: %+v, want no rows and a note", v)
	}
	first := write(0)
	v := c.computeArms()
	if v.Rows != 40 || len(v.Results) == 0 {
		t.Fatalf("after one file: %d rows, %d results (%s); want 40 rows and results", v.Rows, len(v.Results), v.Note)
	}
	write(1)
	write(2)
	now = start.Add(3 * time.Minute)
	rows, _, err := analyze.Load(dir, analyze.Filter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want []analyze.ArmResult
	for _, e := range analyze.Experiments(rows, nil, 0.95, 200, rand.New(rand.NewPCG(1, 2))) {
		want = append(want, e.Results...)
	}
	if err := os.WriteFile(first, []byte("not Parquet any more"), 0o644); err != nil {
		t.Fatal(err)
	}
	v = c.computeArms()
	if v.Rows != 120 || v.Note != "" {
		t.Fatalf("after three files, the first spoilt once read: %d rows, note %q; want 120 and none (read once)", v.Rows, v.Note)
	}
	if fmt.Sprint(v.Results) != fmt.Sprint(want) {
		t.Errorf("console's arms:\n%+v\nanalyze.Experiments on the same files:\n%+v", v.Results, want)
	}

	// An hour and more later every file is out of the window.
	now = start.Add(armsWindow + 3*time.Minute)
	if v := c.computeArms(); v.Rows != 0 || len(c.armsFiles) != 0 {
		t.Errorf("an hour later: %d rows, %d files kept; want none", v.Rows, len(c.armsFiles))
	}
}
