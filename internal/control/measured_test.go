package control

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/rib"
)

func TestMeasuredCompareNeedsClearDifference(t *testing.T) {
	var cur atomic.Pointer[measuredTable]
	v := measuredView{&cur}
	g := netip.MustParsePrefix("10.64.0.0/16")
	if v.Compare(g, "a", "b") != 0 || v.Applies(g.Addr()) {
		t.Fatalf("an empty view must not decide or apply")
	}
	cur.Store(&measuredTable{cfg: MeasuredSteering{Margin: 0.1}, stats: map[string]map[string]siteStat{
		g.String(): {"fast": {18, 20, 22}, "slow": {40, 45, 50}, "close": {23, 25, 27}, "near": {21, 23, 26}},
	}})
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"fast", "slow", -1}, {"slow", "fast", 1},
		{"fast", "close", 0}, // 22×1.1 = 24.2 is not below 23: within the margin
		{"fast", "near", 0},  // intervals overlap
		{"fast", "unknown", 0},
	} {
		if got := v.Compare(g, tc.a, tc.b); got != tc.want {
			t.Errorf("Compare(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestArmIsStableAndBalanced(t *testing.T) {
	count := map[string]int{}
	for i := 0; i < 1000; i++ {
		c := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 7})
		a := Arm(c)
		if Arm(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 200})) != a {
			t.Fatalf("two clients of one /24 got different arms")
		}
		count[a]++
	}
	if count[ArmBGP] < 430 || count[ArmMeasured] < 430 {
		t.Errorf("arms = %v, want about half each", count)
	}
}

// TestMeasuredSteeringFromReports ingests real reports in which clients
// of one routed prefix measure site "ix" much faster than the embedded
// site, with BGP routes that are equal, and checks that steering then
// puts the IXP appliance first.
func TestMeasuredSteeringFromReports(t *testing.T) {
	s, _, cat := newTestServerWith(t, func(c *Config) {
		c.MeasureDir = t.TempDir()
		c.Measured = MeasuredSteering{Enabled: true, MinSamples: 30, Refresh: time.Hour}
	})
	h := s.Handler()
	f := cat.Files[0].Path
	beat(t, h, "e1", 1, []string{f})
	beat(t, h, "x1", 1, []string{f})
	// Both hear the client's prefix with the same attributes.
	for _, id := range []string{"e1", "x1"} {
		report(t, h, api.RouteReport{Appliance: id, Epoch: "e-" + id, Seq: 1, Snapshot: true, Announce: []rib.Route{route("10.64.0.0/16")}})
	}
	steerFirst := func() string {
		choices, _, err := s.engine.Steer(s.snap.Load(), netip.MustParseAddr("10.64.3.4"), f, 2, false)
		if err != nil || len(choices) == 0 {
			t.Fatalf("steer: %v %v", choices, err)
		}
		return choices[0].Appliance
	}
	if got := steerFirst(); got != "e1" {
		t.Fatalf("before measurements first = %s, want e1 (embedded tier)", got)
	}
	ctx := context.Background()
	now := time.Now() // the ingester checks report times against the wall clock
	for i := 0; i < 40; i++ {
		rep := &measure.Report{ID: fmt.Sprintf("report-%016d", i), Recipe: "r", ClientTime: now}
		for j, site := range []struct {
			app  string
			ttfb float64
		}{{"e1", 60}, {"x1", 15}} {
			rep.Pulses = append(rep.Pulses, measure.Pulse{Target: site.app, Appliance: site.app, Type: measure.TypeHTTPTTFB, Seq: j,
				Start: now, TTFBMs: site.ttfb + float64(i%5), DurationMs: site.ttfb + 5, Status: measure.StatusOK})
		}
		if _, err := s.measure.Ingest(ctx, netip.AddrFrom4([4]byte{10, 64, byte(i), 9}), rep); err != nil {
			t.Fatal(err)
		}
	}
	s.measured.Store(buildMeasuredTable(s.measure, s.cfg.Measured))
	if got := steerFirst(); got != "x1" {
		t.Errorf("after clients measured x1 four times faster, first = %s, want x1", got)
	}
	if err := s.measure.Close(); err != nil {
		t.Fatal(err)
	}
}
