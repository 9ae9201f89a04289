package steer

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/rib"
)

// fakeMeasured prefers site "pni" to everything, for groups it applies to.
type fakeMeasured struct{ applies bool }

func (f fakeMeasured) Applies(netip.Addr) bool { return f.applies }
func (f fakeMeasured) Compare(_ netip.Prefix, a, b string) int {
	switch {
	case a == "pni":
		return -1
	case b == "pni":
		return 1
	}
	return 0
}

func TestMeasuredReranksOnlyBGPEqualCandidates(t *testing.T) {
	e := &Engine{}
	client := netip.MustParseAddr("10.64.1.2")
	// e1, e2 (embedded) and p1 (private) heard equal routes: BGP cannot
	// tell them apart, tier would put the embedded ones first.
	equal := world(t, nil)
	r := rib.New()
	for _, id := range []string{"e1", "e2", "p1"} {
		r.Replace(id, []rib.Route{{Prefix: netip.MustParsePrefix("10.64.0.0/16"), Attrs: rib.Attrs{LocalPref: 100, ASPath: []uint32{64500}, EBGP: true}}})
	}
	equal.Routes = r.Snapshot()

	equal.Measured = fakeMeasured{applies: true}
	got, _, _ := e.Steer(equal, client, file, 3, false)
	if got[0].Appliance != "p1" {
		t.Errorf("measured: first = %s, want p1 (measured better, BGP equal)", got[0].Appliance)
	}
	equal.Measured = fakeMeasured{applies: false}
	got, _, _ = e.Steer(equal, client, file, 3, false)
	if got[0].Appliance == "p1" {
		t.Errorf("group outside the experiment arm was re-ranked: %v", ids(got))
	}
	// With a longer AS path p1 stays behind whatever was measured: BGP
	// decides first.
	unequal := world(t, nil)
	unequal.Measured = fakeMeasured{applies: true}
	got, _, _ = e.Steer(unequal, client, file, 3, false)
	if d := cmp.Diff("p1", got[2].Appliance); d != "" {
		t.Errorf("BGP-worse p1 moved up by measurements: %v", ids(got))
	}
	_ = config.SiteIXP
}
