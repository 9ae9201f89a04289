package steer

import (
	"net/netip"
	"slices"
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

// Each client gets URLs of its own family, ranked by the routes of that
// family; family=both answers every family an appliance has.
func TestSteerFamily(t *testing.T) {
	v4 := netip.MustParsePrefix("10.64.0.0/16")
	v6 := netip.MustParsePrefix("2001:db8:64::/48")
	r := rib.New()
	attrs := rib.Attrs{LocalPref: 100, ASPath: []uint32{64500}, EBGP: true}
	r.Replace("ds", []rib.Route{{Prefix: v4, Attrs: attrs}, {Prefix: v6, Attrs: attrs}})
	r.Replace("only4", []rib.Route{{Prefix: v4, Attrs: attrs}})
	r.Replace("only6", []rib.Route{{Prefix: v6, Attrs: attrs}})
	holds := map[string]bool{file: true}
	snap := &Snapshot{Routes: r.Snapshot(), Global: []string{"ix4"}, Appliances: map[string]*Appliance{
		"ds":    {ID: "ds", Site: "emb", Kind: config.SiteEmbedded, BaseURL: "http://192.0.2.1", BaseURL6: "http://[2001:db8::1]", BaseFamily: FamilyIPv4, Serving: true, Holds: holds},
		"only4": {ID: "only4", Site: "emb", Kind: config.SiteEmbedded, BaseURL: "http://192.0.2.2", BaseFamily: FamilyIPv4, Serving: true, Holds: holds},
		"only6": {ID: "only6", Site: "emb", Kind: config.SiteEmbedded, BaseURL: "http://[2001:db8::3]", BaseFamily: FamilyIPv6, Serving: true, Holds: holds},
		"ix4":   {ID: "ix4", Site: "ix", Kind: config.SiteIXP, BaseURL: "http://192.0.2.4", BaseFamily: FamilyIPv4, Serving: true, Holds: holds},
	}}
	e := &Engine{}
	host := func(u string) string { return strings.SplitN(strings.TrimPrefix(u, "http://"), "/", 2)[0] }
	type row struct{ id, url, url4, url6 string }
	rows := func(cs []Choice) []row {
		var out []row
		for _, c := range cs {
			rw := row{id: c.Appliance, url: host(c.URL)}
			if c.URLIPv4 != "" {
				rw.url4 = host(c.URLIPv4)
			}
			if c.URLIPv6 != "" {
				rw.url6 = host(c.URLIPv6)
			}
			out = append(out, rw)
		}
		slices.SortFunc(out, func(a, b row) int { return strings.Compare(a.id, b.id) })
		return out
	}
	c4, c6 := netip.MustParseAddr("10.64.1.2"), netip.MustParseAddr("2001:db8:64::9")
	for _, tc := range []struct {
		name   string
		client netip.Addr
		f      Family
		want   []row
	}{
		{"IPv4 client", c4, FamilyClient, []row{{"ds", "192.0.2.1", "", ""}, {"ix4", "192.0.2.4", "", ""}, {"only4", "192.0.2.2", "", ""}}},
		// IPv6 routes decide; the IPv4-only IXP appliance is left out.
		{"IPv6 client", c6, FamilyClient, []row{{"ds", "[2001:db8::1]", "", ""}, {"only6", "[2001:db8::3]", "", ""}}},
		{"IPv6 client asking IPv4", c6, FamilyIPv4, []row{{"ds", "192.0.2.1", "", ""}, {"ix4", "192.0.2.4", "", ""}}},
		{"IPv6 client asking both", c6, FamilyBoth, []row{
			{"ds", "[2001:db8::1]", "192.0.2.1", "[2001:db8::1]"},
			{"ix4", "192.0.2.4", "192.0.2.4", ""},
			{"only6", "[2001:db8::3]", "", "[2001:db8::3]"},
		}},
	} {
		got, why, err := e.SteerFamily(snap, tc.client, tc.f, file, 5, true)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(tc.want, rows(got), cmp.AllowUnexported(row{})); d != "" {
			t.Errorf("%s: (-want +got)\n%s", tc.name, d)
		}
		// The hot path agrees.
		ranked := e.AppendRankedFamily(nil, snap, tc.client, tc.f, file, 5)
		for i, rk := range ranked {
			if want := host(got[i].URL); host(rk.Base) != want {
				t.Errorf("%s: AppendRankedFamily[%d] base %s, want %s", tc.name, i, rk.Base, want)
			}
		}
		if tc.name == "IPv6 client" {
			found := false
			for _, w := range why {
				found = found || (w.Appliance == "ix4" && w.Excluded == "no ipv6 address")
			}
			if !found {
				t.Errorf("%s: explanation %+v does not exclude ix4 for having no IPv6 address", tc.name, why)
			}
		}
	}
	// An appliance of unknown family (the simulator's) serves everyone.
	a := &Appliance{BaseURL: "sim://a"}
	if a.Base(FamilyIPv6) != "sim://a" || a.Base(FamilyIPv4) != "sim://a" {
		t.Errorf("Base of an appliance of unknown family = %q, %q", a.Base(FamilyIPv4), a.Base(FamilyIPv6))
	}
	for in, want := range map[string]Family{"": FamilyClient, "ipv4": FamilyIPv4, "ipv6": FamilyIPv6, "both": FamilyBoth} {
		if f, ok := ParseFamily(in); !ok || f != want {
			t.Errorf("ParseFamily(%q) = %v, %v, want %v", in, f, ok, want)
		}
	}
	if _, ok := ParseFamily("IPv6"); ok {
		t.Error(`ParseFamily("IPv6") accepted`)
	}
}
