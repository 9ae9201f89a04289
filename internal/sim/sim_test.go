package sim

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocdn/ocdn/internal/placement"
	"github.com/ocdn/ocdn/internal/sim/world"
)

func run(t *testing.T, sc *Scenario, out string) *Summary {
	t.Helper()
	sm, err := New(testWorld(t), sc, Options{Out: out})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sm.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRunAccountsForEveryByte(t *testing.T) {
	s := run(t, testScenario(t), "")
	if s.Sessions < 1000 || s.Decisions != s.Sessions {
		t.Fatalf("sessions %d, decisions %d: want ≥ 1000 sessions, one decision each (no audio)", s.Sessions, s.Decisions)
	}
	var src, miss int64
	for _, v := range s.ClientBytes {
		src += v
	}
	for _, v := range s.Misses {
		miss += v
	}
	if src != miss || src == 0 {
		t.Errorf("client bytes by source sum to %d, by miss class to %d: every byte has one of each", src, miss)
	}
	if s.Offload <= 0.3 || s.Offload >= 1 || s.ClientBytes["ixp"] == 0 {
		t.Errorf("offload %.3f, IXP bytes %d: want embedded and IXP sites to serve", s.Offload, s.ClientBytes["ixp"])
	}
	if s.DistanceKm.Mean <= 0 || s.RTTMs.Mean < 4 {
		t.Errorf("distance %+v, rtt %+v: clients of networks without a site in their metro travel", s.DistanceKm, s.RTTMs)
	}
}

func TestSameSeedSameTables(t *testing.T) {
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	run(t, testScenario(t), a)
	run(t, testScenario(t), b)
	sc := testScenario(t)
	sc.Seed = 2
	run(t, sc, c)
	files := 0
	differs := false
	err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".parquet") {
			return err
		}
		files++
		rel, _ := filepath.Rel(a, p)
		x, _ := os.ReadFile(p)
		y, err := os.ReadFile(filepath.Join(b, rel))
		if err != nil {
			return err
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs with seed 1", rel)
		}
		if z, err := os.ReadFile(filepath.Join(c, rel)); err != nil || !bytes.Equal(x, z) {
			differs = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files != 5 {
		t.Errorf("%d Parquet files, want 5 (intervals, countries, sites, isps, appliances for one date)", files)
	}
	if !differs {
		t.Error("seed 2 wrote the same tables as seed 1")
	}
	for _, f := range []string{"summary.json", "report.html"} {
		if _, err := os.Stat(filepath.Join(a, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestMoreStorageMoreOffload(t *testing.T) {
	small, big := testScenario(t), testScenario(t)
	small.StorageScale, big.StorageScale = 0.25, 2
	s, b := run(t, small, ""), run(t, big, "")
	if !(b.Offload > s.Offload+0.05) || !(b.ContentMissShare < s.ContentMissShare) {
		t.Errorf("storage ×0.25: offload %.3f, content misses %.3f; ×2: %.3f, %.3f; want more offload and fewer content misses with more storage",
			s.Offload, s.ContentMissShare, b.Offload, b.ContentMissShare)
	}
}

func TestCompareGivesIntervals(t *testing.T) {
	small, big := testScenario(t), testScenario(t)
	small.Name, big.Name, small.StorageScale, big.StorageScale = "small", "big", 0.25, 2
	small.Duration, big.Duration = 3*3600e9, 3*3600e9
	c, err := Compare(context.Background(), testWorld(t), small, big, 3, 1, 0.95, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range c.Diffs {
		if d.Metric == "offload" && !(d.CILow > 0 && d.CIHigh >= d.CILow) {
			t.Errorf("offload difference %+v: want an interval above 0", d)
		}
	}
}

func TestSaturationCausesHealthMisses(t *testing.T) {
	sc := testScenario(t, "throughput_scale: 1", "throughput_scale: 0.02")
	s := run(t, sc, "")
	if s.HealthMissShare <= 0 || s.Utilization.P99 < 0.9 {
		t.Errorf("throughput ×0.02: health misses %.4f, utilisation p99 %.2f; want saturated appliances and health misses", s.HealthMissShare, s.Utilization.P99)
	}
}

func TestSiteFailureMovesClients(t *testing.T) {
	sc := testScenario(t, "events: []", "events: [{at: 2h, kind: fail_site, target: e1-fra, duration: 3h}]")
	base := run(t, testScenario(t), "")
	s := run(t, sc, "")
	if s.Failovers <= base.Failovers || s.HealthMissShare <= base.HealthMissShare || s.SiteFailures < 1 {
		t.Errorf("with e1-fra down 3 h: failovers %d (base %d), health misses %.4f (base %.4f); want more of both", s.Failovers, base.Failovers, s.HealthMissShare, base.HealthMissShare)
	}
}

func TestColdStartFillsPeerTierOrigin(t *testing.T) {
	sc := testScenario(t, "warm_start: true", "warm_start: false")
	s := run(t, sc, "")
	if s.FillBytes["origin"] == 0 || s.FillBytes["peer"]+s.FillBytes["tier"] == 0 {
		t.Errorf("cold start fill %v: want origin and peer or tier fill", s.FillBytes)
	}
	// Escalation: a file leaves the origin about once for the whole CDN.
	if s.OriginPerUnique > 1.5 {
		t.Errorf("origin bytes per unique byte %.2f, want about 1", s.OriginPerUnique)
	}
}

func TestRouteChurnFromRIS(t *testing.T) {
	path := filepath.Join("..", "..", "..", "shared", "data", "routes", "ris-updates.20160811.1600.gz")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the RIS updates of the shared data must sit beside the repository: %v", err)
	}
	abs, _ := filepath.Abs(path)
	sc := testScenario(t, "route_churn: {file: ''}", "route_churn: {file: "+abs+", repeat: true}")
	w := testWorld(t)
	// Give the world prefixes the RIS file withdraws and announces.
	sm0, err := New(w, testScenario(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	updates, _, err := sm0.readChurn(abs)
	if err != nil || len(updates) != 0 {
		t.Fatalf("readChurn on the test world = %d updates, %v; want none (no common prefixes)", len(updates), err)
	}
	w = testWorld(t)
	w.Prefixes = append(w.Prefixes, risPrefixes(t, abs, 200)...)
	sm, err := New(w, sc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sm.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.ChurnUpdates == 0 || s.RouteChanges == 0 {
		t.Errorf("churn updates %d, route changes %d: want the replayed RIS updates to change routes", s.ChurnUpdates, s.RouteChanges)
	}
}

func TestBadScenarioRefusedWithFileLineField(t *testing.T) {
	for _, c := range []struct{ old, new, field string }{
		{"storage_scale: 1", "storage_scale: -1", "storage_scale"},
		{"rate_gbps: 1.2", "rate_gbps: 1e9", "fill.rate_gbps"},
		{"down_at_start: 0.005", "down_at_start: 1.5", "failures.down_at_start"},
		{"zipf: 0.9", "zipf: 0.9\n  zpif: 1", "zpif"},
		{"events: []", "events: [{at: 1h, kind: fail_share, share: 2, duration: 1h}]", "events[0].share"},
		{"out_of_cycle_budget: 1GiB", "out_of_cycle_budget: lots", "fill.out_of_cycle_budget"},
	} {
		y := strings.Replace(string(DefaultScenario), c.old, c.new, 1)
		_, err := ParseScenario("s.yaml", []byte(y))
		var ie *world.InputError
		if !errors.As(err, &ie) || ie.File != "s.yaml" || ie.Line == 0 || ie.Field != c.field {
			t.Errorf("%s → %s: %v; want s.yaml, a line and field %s", c.old, c.new, err, c.field)
		}
	}
	// Against the world: an unknown target names the event.
	sc := testScenario(t, "events: []", "events: [{at: 1h, kind: fail_site, target: nowhere, duration: 1h}]")
	_, err := New(testWorld(t), sc, Options{})
	var ie *world.InputError
	if !errors.As(err, &ie) || ie.Field != "events[0].target" || ie.Line == 0 {
		t.Errorf("unknown site = %v, want events[0].target with its line", err)
	}
}

func FuzzParseScenario(f *testing.F) {
	f.Add(string(DefaultScenario))
	f.Add("duration: 1h\nstep: 1m\n")
	f.Add("events: [{at: 1h, kind: fail_share, share: 0.5, duration: 1h}]")
	f.Fuzz(func(t *testing.T, data string) {
		sc, err := ParseScenario("f", []byte(data))
		if err != nil {
			var ie *world.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v is not an InputError", err)
			}
			return
		}
		if sc.Step <= 0 || sc.Duration <= 0 || sc.StorageScale <= 0 {
			t.Fatalf("accepted %+v", sc)
		}
	})
}

// rankKey must order appliances as placement.Rank does with equal
// weights, the order the control plane picks fill fetchers in.
func TestRankKeyMatchesPlacementRank(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		path := "t" + string(rune('a'+i%26)) + "/video_" + string(rune('0'+i%10)) + ".mp4"
		var nodes []placement.Node
		for j := 0; j < 1+rng.IntN(12); j++ {
			nodes = append(nodes, placement.Node{ID: "app-" + string(rune('a'+rng.IntN(26))) + string(rune('a'+j)), Capacity: 1})
		}
		best := nodes[0].ID
		for _, n := range nodes[1:] {
			if rankKey(path, n.ID) > rankKey(path, best) {
				best = n.ID
			}
		}
		if got := placement.Rank(path, nodes)[0].ID; got != best {
			t.Fatalf("placement.Rank(%q)[0] = %s, rankKey's best = %s", path, got, best)
		}
	}
}
