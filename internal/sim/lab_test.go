package sim

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/ocdn/ocdn/internal/lab"
)

// Tolerances of the lab check (docs/sim.md explains the differences that
// remain: real TCP and emulated links, adaptive bitrate, the lab's
// corrupt copies and re-fetches, its short run).
const (
	labOffloadTol = 0.15
	labOriginTol  = 0.35
	labContentTol = 0.05
)

// labTestScenario is the built-in lab scenario shrunk as the lab's own
// tests shrink it, on addresses of its own.
func labTestScenario(t *testing.T) *lab.Scenario {
	t.Helper()
	y := strings.NewReplacer(
		"duration: 90s", "duration: 30s",
		"titles: 12", "titles: 4",
		// The loops' events name titles of the smaller catalog.
		"title: t0009", "title: t0002", "title: t0011", "title: t0003",
		"at: 50%", "at: 40%",
		"127.1.0.1:", "127.1.90.1:", "127.1.0.2:", "127.1.90.2:",
		"127.1.1.1:", "127.1.91.1:", "127.1.1.2:", "127.1.91.2:",
		"127.1.2.1:", "127.1.92.1:",
	).Replace(string(lab.DefaultScenario))
	dir := t.TempDir() + "/lab.yaml"
	if err := writeFile(dir, y); err != nil {
		t.Fatal(err)
	}
	sc, err := lab.LoadScenario(dir)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// TestLabVersusSimulator runs the default lab scenario on the real lab
// (every daemon, BGP, real HTTP) and through the simulator, and compares
// offload, origin bytes per unique byte and the content-miss share.
func TestLabVersusSimulator(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the lab for about half a minute")
	}
	lsc := labTestScenario(t)
	rep, err := lab.New(lsc, lab.Options{}).Run(context.Background())
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	labOrigin := 0.0
	if rep.Fill != nil && rep.Fill.UniqueBytes > 0 {
		labOrigin = float64(rep.Fill.OriginBytes) / float64(rep.Fill.UniqueBytes)
	}
	labContent := 0.0
	if m := rep.Misses; m != nil {
		if all := m.Local + m.Content + m.Health + m.Other; all > 0 {
			labContent = float64(m.Content) / float64(all)
		}
	}

	w, sc, err := FromLab(lsc)
	if err != nil {
		t.Fatal(err)
	}
	sm, err := New(w, sc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sm.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("offload: lab %.3f, sim %.3f", rep.Offload, s.Offload)
	t.Logf("origin bytes per unique byte: lab %.3f, sim %.3f", labOrigin, s.OriginPerUnique)
	t.Logf("content-miss share: lab %.3f, sim %.3f", labContent, s.ContentMissShare)
	if d := math.Abs(rep.Offload - s.Offload); d > labOffloadTol {
		t.Errorf("offload: lab %.3f, simulator %.3f: differ by %.3f, tolerance %.2f", rep.Offload, s.Offload, d, labOffloadTol)
	}
	if d := math.Abs(labOrigin - s.OriginPerUnique); d > labOriginTol {
		t.Errorf("origin bytes per unique byte: lab %.3f, simulator %.3f: differ by %.3f, tolerance %.2f", labOrigin, s.OriginPerUnique, d, labOriginTol)
	}
	if d := math.Abs(labContent - s.ContentMissShare); d > labContentTol {
		t.Errorf("content-miss share: lab %.3f, simulator %.3f: differ by %.3f, tolerance %.2f", labContent, s.ContentMissShare, d, labContentTol)
	}
	if s.Sessions == 0 || s.UniqueBytes == 0 {
		t.Errorf("simulator summary %+v: no sessions or nothing placed", s)
	}
}
