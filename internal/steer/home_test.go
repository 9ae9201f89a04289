package steer

import (
	"net/netip"
	"testing"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/rib"
)

func TestHome(t *testing.T) {
	client := netip.MustParseAddr("10.64.1.2")
	outside := netip.MustParseAddr("192.0.2.9")
	for _, tc := range []struct {
		name   string
		snap   func(t *testing.T) *Snapshot
		client netip.Addr
		want   string
	}{
		{"best route's site", func(t *testing.T) *Snapshot { return world(t, nil) }, client, "emb"},
		// Home ignores health and holdings: the embedded site stays home
		// while it is down and holds nothing.
		{"down and empty", func(t *testing.T) *Snapshot {
			return world(t, func(as map[string]*Appliance) {
				for _, id := range []string{"e1", "e2"} {
					as[id].Serving, as[id].State, as[id].Holds = false, "down", nil
				}
			})
		}, client, "emb"},
		{"no route: nearest global site", func(t *testing.T) *Snapshot { return world(t, nil) }, outside, "ix"},
		{"no route, global sites without locations: site id", func(t *testing.T) *Snapshot {
			s := world(t, nil)
			s.Locate = nil
			s.Global = []string{"x2", "x1"}
			return s
		}, outside, "ix"},
		// Equal routes: the embedded site beats the private one (tier),
		// whichever the RIB lists first.
		{"tier breaks a BGP tie", func(t *testing.T) *Snapshot { return equalRoutes(world(t, nil), "p1", "e1") }, client, "emb"},
		{"distance breaks a tier tie", func(t *testing.T) *Snapshot {
			return equalRoutes(world(t, func(as map[string]*Appliance) {
				as["p1"].Kind, as["p1"].Site = config.SiteEmbedded, "aaa-far"
				as["p1"].Location = config.Location{Lat: 40, Lon: -74}
				as["e1"].Location = config.Location{Lat: 52.3, Lon: 4.9}
			}), "p1", "e1")
		}, client, "emb"},
		{"nobody may serve", func(t *testing.T) *Snapshot {
			s := world(t, nil)
			s.Global = nil
			return s
		}, outside, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Home(tc.snap(t), tc.client)
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("Home(%s) = %q, %v; want %q", tc.client, got, ok, tc.want)
			}
		})
	}
}

// equalRoutes gives ids, in that order, equal routes to the world's prefix.
func equalRoutes(s *Snapshot, ids ...string) *Snapshot {
	r := rib.New()
	pfx := netip.MustParsePrefix("10.64.0.0/16")
	for _, id := range ids {
		r.Replace(id, []rib.Route{{Prefix: pfx, Attrs: rib.Attrs{LocalPref: 100, ASPath: []uint32{64500}, EBGP: true}}})
	}
	s.Routes = r.Snapshot()
	return s
}

func TestHomeAllocatesNothing(t *testing.T) {
	s := world(t, nil)
	client := netip.MustParseAddr("10.64.1.2")
	if n := testing.AllocsPerRun(100, func() { Home(s, client) }); n != 0 {
		t.Errorf("Home allocates %v times per call, want 0", n)
	}
}

func BenchmarkHome(b *testing.B) {
	s := world(&testing.T{}, nil)
	client := netip.MustParseAddr("10.64.1.2")
	b.ReportAllocs()
	for b.Loop() {
		Home(s, client)
	}
}
