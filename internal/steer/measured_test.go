package steer

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ocdn/ocdn/internal/rib"
)

// fakeMeasured prefers one site, under one policy, for the clients it
// takes part for.
type fakeMeasured struct {
	site   string
	policy Eligibility
	off    bool
}

func (f fakeMeasured) Prefer(netip.Prefix, netip.Addr) (Preference, bool) {
	return Preference{Site: f.site, Policy: f.policy, Note: "test evidence"}, !f.off
}

// equalWorld is world with p1's route as good as the embedded ones' but
// for the AS path, and with local-pref lp.
func equalWorld(t *testing.T, lp uint32) *Snapshot {
	s := world(t, nil)
	r := rib.New()
	pfx := netip.MustParsePrefix("10.64.0.0/16")
	for _, id := range []string{"e1", "e2"} {
		r.Replace(id, []rib.Route{{Prefix: pfx, Attrs: rib.Attrs{LocalPref: 100, ASPath: []uint32{64500}, EBGP: true}}})
	}
	r.Replace("p1", []rib.Route{{Prefix: pfx, Attrs: rib.Attrs{LocalPref: lp, ASPath: []uint32{64500, 64500}, EBGP: true}}})
	s.Routes = r.Snapshot()
	return s
}

func TestMeasuredRanksOnlyEligibleSites(t *testing.T) {
	e := &Engine{}
	client := netip.MustParseAddr("10.64.1.2")
	for _, tc := range []struct {
		name  string
		snap  *Snapshot
		m     fakeMeasured
		first string // site ranked first
	}{
		// p1's route has the same local-pref and a longer AS path: the
		// AS path is a tie-break measurements may override.
		{"same local-pref", equalWorld(t, 100), fakeMeasured{site: "pni"}, "pni"},
		{"client not taking part", equalWorld(t, 100), fakeMeasured{site: "pni", off: true}, "emb"},
		// The ISP ranked p1 lower: never eligible.
		{"lower local-pref", equalWorld(t, 90), fakeMeasured{site: "pni"}, "emb"},
		// An IXP site without a route only with the embedded+IXP policy.
		{"ixp under local_pref", equalWorld(t, 100), fakeMeasured{site: "ix"}, "emb"},
		{"ixp under embedded_ixp", equalWorld(t, 100), fakeMeasured{site: "ix", policy: EligibleEmbeddedIXP}, "ix"},
		{"unknown site", equalWorld(t, 100), fakeMeasured{site: "nowhere", policy: EligibleEmbeddedIXP}, "emb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.snap.Measured = tc.m
			got, why, err := e.Steer(tc.snap, client, file, 5, true)
			if err != nil {
				t.Fatal(err)
			}
			if got[0].Site != tc.first {
				t.Fatalf("first site = %s (%v), want %s", got[0].Site, ids(got), tc.first)
			}
			// The allocation-free path gives the same order.
			var ranked []Ranked
			ranked = e.AppendRanked(ranked, tc.snap, client, file, 5)
			for i := range ranked {
				if ranked[i].Appliance.ID != got[i].Appliance || ranked[i].Reason != got[i].Reason {
					t.Errorf("AppendRanked[%d] = %s %q, Steer = %s %q", i, ranked[i].Appliance.ID, ranked[i].Reason, got[i].Appliance, got[i].Reason)
				}
			}
			moved := tc.first != "emb"
			if strings.Contains(got[0].Reason, "measured better") != moved {
				t.Errorf("reason = %q, moved = %v", got[0].Reason, moved)
			}
			var notes []string
			for _, c := range why {
				if c.Measured != "" {
					notes = append(notes, c.Appliance+": "+c.Measured)
				}
			}
			if moved && (len(notes) < 2 || !strings.Contains(strings.Join(notes, "\n"), "test evidence") || !strings.Contains(strings.Join(notes, "\n"), "BGP's choice;")) {
				t.Errorf("explain notes = %q, want the move and BGP's choice", notes)
			}
			if !moved && len(notes) != 0 {
				t.Errorf("explain notes = %q without a move", notes)
			}
		})
	}
}

func TestMeasuredKeepsOrderInsideSites(t *testing.T) {
	// Moving the IXP sites' candidates first keeps the rest in BGP order:
	// embedded (both), then p1.
	e := &Engine{}
	s := equalWorld(t, 100)
	s.Measured = fakeMeasured{site: "ix", policy: EligibleEmbeddedIXP}
	got, _, _ := e.Steer(s, netip.MustParseAddr("10.64.1.2"), file, 5, false)
	g := ids(got)
	if d := cmp.Diff([]string{"x1", "p1", "x2"}, []string{g[0], g[3], g[4]}); d != "" || !strings.HasPrefix(g[1], "e") || !strings.HasPrefix(g[2], "e") {
		t.Errorf("order = %v, want x1, e1|e2, e2|e1, p1, x2 (%s)", g, d)
	}
}

func TestBaseline(t *testing.T) {
	e := &Engine{}
	s := equalWorld(t, 100)
	client := netip.MustParseAddr("10.64.1.2")
	first, eligible := e.Baseline(s, client, file, EligibleLocalPref)
	if first != "emb" || !cmp.Equal(eligible, []string{"pni"}) {
		t.Errorf("Baseline(local_pref) = %s %v, want emb [pni]", first, eligible)
	}
	first, eligible = e.Baseline(s, client, file, EligibleEmbeddedIXP)
	if first != "emb" || !cmp.Equal(eligible, []string{"pni", "ix", "ix2"}) {
		t.Errorf("Baseline(embedded_ixp) = %s %v, want emb [pni ix ix2]", first, eligible)
	}
	// Measurements do not change the baseline.
	s.Measured = fakeMeasured{site: "pni"}
	if first, _ = e.Baseline(s, client, file, EligibleLocalPref); first != "emb" {
		t.Errorf("Baseline with measurements = %s, want emb", first)
	}
}

func TestMeasuredAllocatesNothing(t *testing.T) {
	e := &Engine{}
	s := equalWorld(t, 100)
	s.Measured = fakeMeasured{site: "ix", policy: EligibleEmbeddedIXP}
	client := netip.MustParseAddr("10.64.1.2")
	dst := make([]Ranked, 0, 8)
	if n := testing.AllocsPerRun(100, func() { dst = e.AppendRanked(dst[:0], s, client, file, 5) }); n != 0 {
		t.Errorf("AppendRanked with a measured move allocates %v times, want 0", n)
	}
}
