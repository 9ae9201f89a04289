package steer

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/rib"
	"github.com/ocdn/ocdn/internal/urlsign"
)

const file = "t0001/video_1000k.mp4"

// world: ISP prefix 10.64.0.0/16 heard by two embedded appliances (e1, e2
// at site emb) and, with a longer AS path, by a private-peering appliance
// p1; x1 and x2 at an IXP site serve anyone.
func world(t *testing.T, mutate func(map[string]*Appliance)) *Snapshot {
	t.Helper()
	pfx := netip.MustParsePrefix("10.64.0.0/16")
	r := rib.New()
	route := func(path ...uint32) []rib.Route {
		return []rib.Route{{Prefix: pfx, Attrs: rib.Attrs{LocalPref: 100, ASPath: path, EBGP: true}}}
	}
	for _, id := range []string{"e1", "e2"} {
		if err := r.Replace(id, route(64500)); err != nil {
			t.Fatal(err)
		}
	}
	r.Replace("p1", route(64500, 64500))
	holds := map[string]bool{file: true}
	as := map[string]*Appliance{
		"e1": {ID: "e1", Site: "emb", Kind: config.SiteEmbedded, BaseURL: "http://e1", Serving: true, Holds: holds},
		"e2": {ID: "e2", Site: "emb", Kind: config.SiteEmbedded, BaseURL: "http://e2", Serving: true, Holds: holds},
		"p1": {ID: "p1", Site: "pni", Kind: config.SitePrivate, BaseURL: "http://p1", Serving: true, Holds: holds},
		"x1": {ID: "x1", Site: "ix", Kind: config.SiteIXP, BaseURL: "http://x1", Serving: true, Holds: holds, Location: config.Location{Lat: 52, Lon: 5}},
		"x2": {ID: "x2", Site: "ix2", Kind: config.SiteIXP, BaseURL: "http://x2", Serving: true, Holds: holds, Location: config.Location{Lat: 40, Lon: -74}},
	}
	if mutate != nil {
		mutate(as)
	}
	return &Snapshot{Routes: r.Snapshot(), Appliances: as, Global: []string{"x1", "x2"},
		Locate: func(netip.Addr) (config.Location, bool) { return config.Location{Lat: 52.3, Lon: 4.9}, true }}
}

func ids(cs []Choice) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Appliance
	}
	return out
}

func TestSteerOrder(t *testing.T) {
	e := &Engine{}
	client := netip.MustParseAddr("10.64.1.2")
	got, _, err := e.Steer(world(t, nil), client, file, 5, false)
	if err != nil {
		t.Fatal(err)
	}
	// Both embedded appliances first (in spread order), then the longer
	// AS path, then the global candidates, nearest first.
	g := ids(got)
	if len(g) != 5 || !(g[0] == "e1" || g[0] == "e2") || !(g[1] == "e1" || g[1] == "e2") || g[2] != "p1" || g[3] != "x1" || g[4] != "x2" {
		t.Errorf("Steer order = %v, want [e1|e2 e2|e1 p1 x1 x2]", g)
	}
	// A client outside every routed prefix goes to the global sites.
	got, _, _ = e.Steer(world(t, nil), netip.MustParseAddr("192.0.2.9"), file, 5, false)
	if d := cmp.Diff([]string{"x1", "x2"}, ids(got)); d != "" {
		t.Errorf("unrouted client: (-want +got)\n%s", d)
	}
}

// An IXP appliance the client's ISP announces its prefix to (peering at
// the exchange) is a routed candidate, listed once, not also as a global
// one.
func TestSteerListsRoutedIXPApplianceOnce(t *testing.T) {
	e := &Engine{}
	snap := world(t, nil)
	r := rib.New()
	r.Replace("x1", []rib.Route{{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Attrs: rib.Attrs{LocalPref: 100, ASPath: []uint32{64502}, EBGP: true}}})
	snap.Routes = r.Snapshot()
	got, why, err := e.Steer(snap, netip.MustParseAddr("203.0.113.10"), file, 5, true)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"x1", "x2"}, ids(got)); d != "" {
		t.Errorf("Steer: (-want +got)\n%s", d)
	}
	if got[0].Reason != "IXP site with a BGP route to the client" || len(why) != 2 {
		t.Errorf("x1's reason %q, explanation %+v; want it routed, two candidates", got[0].Reason, why)
	}
}

func TestSteerExcludesDownAndNonHolders(t *testing.T) {
	e := &Engine{}
	snap := world(t, func(as map[string]*Appliance) {
		as["e1"].Serving, as["e1"].State = false, "down"
		as["p1"].Holds = map[string]bool{}
	})
	got, why, err := e.Steer(snap, netip.MustParseAddr("10.64.1.2"), file, 5, true)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"e2", "x1", "x2"}, ids(got)); d != "" {
		t.Errorf("Steer: (-want +got)\n%s", d)
	}
	reasons := map[string]string{}
	for _, c := range why {
		reasons[c.Appliance] = c.Excluded
	}
	if reasons["e1"] != "state down" || reasons["p1"] != "does not hold the file" || reasons["e2"] != "" {
		t.Errorf("explanation = %+v", why)
	}
}

func TestSteerSpansTwoSites(t *testing.T) {
	e := &Engine{}
	got, _, _ := e.Steer(world(t, nil), netip.MustParseAddr("10.64.1.2"), file, 2, false)
	if len(got) != 2 || got[0].Site == got[1].Site {
		t.Errorf("n=2 gave %+v, want two sites", got)
	}
}

// When the site rule moves another site's candidate up, explain=1 still
// lists every candidate once, in the answer's order.
func TestSteerExplainAfterSiteRule(t *testing.T) {
	e := &Engine{}
	got, why, err := e.Steer(world(t, nil), netip.MustParseAddr("10.64.1.2"), file, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	var ranked []string
	for _, c := range why {
		ranked = append(ranked, c.Appliance)
		if c.Rank != len(ranked) {
			t.Errorf("%s has rank %d at position %d", c.Appliance, c.Rank, len(ranked))
		}
	}
	if len(got) != 2 || got[1].Appliance != "p1" || len(ranked) != 5 || ranked[0] != got[0].Appliance || ranked[1] != "p1" ||
		ranked[2] == ranked[0] || ranked[2] == "p1" || ranked[3] != "x1" || ranked[4] != "x2" {
		t.Errorf("answer %v, explanation order %v: want the answer first, then every other candidate once", ids(got), ranked)
	}
}

// AppendRanked ranks exactly as Steer, and AppendURL writes the URLs
// Steer returns.
func TestAppendRankedMatchesSteer(t *testing.T) {
	ks := urlsign.Generate()
	e := &Engine{Keys: func() *urlsign.KeySet { return ks }, TokenTTL: time.Hour}
	snap := world(t, nil)
	for i := range 64 {
		client := netip.AddrFrom4([4]byte{10, byte(60 + i%8), byte(i), 1})
		for n := 1; n <= 5; n++ {
			want, _, err := e.Steer(snap, client, file, n, false)
			if err != nil {
				t.Fatal(err)
			}
			token, err := e.Token(file)
			if err != nil {
				t.Fatal(err)
			}
			got := e.AppendRanked(nil, snap, client, file, n)
			if len(got) != len(want) {
				t.Fatalf("%v n=%d: AppendRanked gave %d, Steer %d", client, n, len(got), len(want))
			}
			for j, r := range got {
				c := Choice{URL: string(AppendURL(nil, r.Appliance.BaseURL, token, file)), Appliance: r.Appliance.ID, Site: r.Appliance.Site, Reason: r.Reason}
				if c != want[j] {
					t.Errorf("%v n=%d #%d: ranked %+v, Steer %+v", client, n, j, c, want[j])
				}
			}
		}
	}
}

func TestSteerSpreadIsStablePerPrefix(t *testing.T) {
	e := &Engine{}
	snap := world(t, nil)
	first := map[string]int{}
	for i := 0; i < 200; i++ {
		a := netip.AddrFrom4([4]byte{10, 64, byte(i), 7})
		got, _, _ := e.Steer(snap, a, file, 1, false)
		again, _, _ := e.Steer(snap, netip.AddrFrom4([4]byte{10, 64, byte(i), 200}), file, 1, false)
		if got[0].Appliance != again[0].Appliance {
			t.Fatalf("two clients of one /24 steered apart: %s vs %s", got[0].Appliance, again[0].Appliance)
		}
		first[got[0].Appliance]++
	}
	if first["e1"] < 70 || first["e2"] < 70 {
		t.Errorf("spread over equal appliances = %v, want roughly even", first)
	}
}

func TestSteerSignsTitleScopedURLs(t *testing.T) {
	ks := urlsign.Generate()
	now := time.Unix(1_800_000_000, 0)
	e := &Engine{Keys: func() *urlsign.KeySet { return ks }, TokenTTL: time.Hour, Now: func() time.Time { return now }}
	got, _, err := e.Steer(world(t, nil), netip.MustParseAddr("10.64.1.2"), file, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	rest, ok := strings.CutPrefix(got[0].URL, "http://"+got[0].Appliance+"/c/")
	if !ok {
		t.Fatalf("URL %q", got[0].URL)
	}
	token, path, _ := strings.Cut(rest, "/")
	if path != file {
		t.Errorf("URL path %q, want %q", path, file)
	}
	if err := ks.Verify(token, "t0001/audio.mp4", netip.Addr{}, now); err != nil {
		t.Errorf("token should cover the whole title: %v", err)
	}
	if err := ks.Verify(token, "t0002/video_1000k.mp4", netip.Addr{}, now); err == nil {
		t.Errorf("token covers another title")
	}
}

func BenchmarkSteer(b *testing.B) {
	e := &Engine{}
	snap := world(&testing.T{}, nil)
	client := netip.MustParseAddr("10.64.1.2")
	b.ReportAllocs()
	for b.Loop() {
		e.Steer(snap, client, file, 5, false)
	}
}
