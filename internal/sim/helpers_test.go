package sim

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/rib"
	"github.com/ocdn/ocdn/internal/sim/world"
)

// testWorld is a small world the tests make themselves: two countries,
// three metros, four access networks of 2,000 prefixes in all, three
// embedded sites, two IXP sites and a dozen appliances.
func testWorld(t testing.TB) *world.World {
	t.Helper()
	share := 0.2
	w := &world.World{Version: 1, Name: "test",
		Population: world.Population{DefaultSubscriberShare: 0.1, UsersPerAddress: 0.5, IPv6Share: 0.3, V6OnlyASAddresses: 1024, NonAccessWeight: 0.02},
		Deployment: world.Deployment{Embedded: world.EmbeddedSpec{SubscribersPerSite: 1, SubscribersPerAppliance: 1, MinAppliances: 1, MaxAppliances: 4},
			IXP: world.IXPSpec{SubscribersPerAppliance: 1, MinAppliances: 1, MaxAppliances: 4}},
		Routing:   world.Routing{EmbeddedBackupSites: 1, IXPSitesPerPrefix: 1, RouteServerASN: 64600, MEDPerKm: 0.1},
		Countries: []world.Country{{Code: "DE", Users: 1e6, SubscriberShare: &share}, {Code: "NL", Users: 5e5, SubscriberShare: &share}},
		Metros: []world.Metro{
			{ID: "de-fra", Country: "DE", Lat: 50.11, Lon: 8.68, TimeZone: "Europe/Berlin", Weight: 2},
			{ID: "de-ber", Country: "DE", Lat: 52.52, Lon: 13.40, TimeZone: "Europe/Berlin", Weight: 1},
			{ID: "nl-ams", Country: "NL", Lat: 52.37, Lon: 4.90, TimeZone: "Europe/Amsterdam", Weight: 1},
		},
		Sites: []world.Site{
			{ID: "e1-fra", Kind: config.SiteEmbedded, ASN: 64501, Metro: "de-fra"},
			{ID: "e1-ber", Kind: config.SiteEmbedded, ASN: 64501, Metro: "de-ber"},
			{ID: "e2-ams", Kind: config.SiteEmbedded, ASN: 64502, Metro: "nl-ams"},
			{ID: "x-fra", Kind: config.SiteIXP, Metro: "de-fra"},
			{ID: "x-ams", Kind: config.SiteIXP, Metro: "nl-ams"},
		},
		ASes: []world.AS{
			{ASN: 64501, Country: "DE", Access: true, Subscribers: 100000, Name: "Big DE"},
			{ASN: 64502, Country: "NL", Access: true, Subscribers: 60000, Name: "Big NL"},
			{ASN: 64503, Country: "DE", Access: true, Subscribers: 50000, Name: "Small DE"},
			{ASN: 64504, Country: "NL", Access: true, Subscribers: 30000, Name: "Small NL"},
		},
	}
	classes := []struct {
		storage world.Size
		gbps    float64
	}{{400e9, 1}, {800e9, 2}, {400e9, 5}}
	n := 0
	for _, s := range w.Sites {
		k := 2
		if s.Kind == config.SiteIXP {
			k = 3
		}
		for j := 1; j <= k; j++ {
			c := classes[n%len(classes)]
			n++
			w.Appliances = append(w.Appliances, world.Appliance{ID: fmt.Sprintf("%s-%d", s.ID, j), Site: s.ID, Storage: c.storage, ThroughputGbps: c.gbps})
		}
	}
	if err := w.Index(); err != nil {
		t.Fatal(err)
	}
	asMetros := map[uint32][]int32{64501: {0, 1}, 64502: {2}, 64503: {0, 1}, 64504: {2}}
	for i := 0; i < 2000; i++ {
		as := w.ASes[i%4]
		ms := asMetros[as.ASN]
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(10 + i%4), byte(i / 256), byte(i % 256), 0}), 24)
		w.Prefixes = append(w.Prefixes, world.Prefix{Prefix: p, ASN: as.ASN, Metro: ms[i%len(ms)], Subscribers: float32(as.Subscribers / 500)})
	}
	// A covering prefix with more specifics inside it, and an IPv6 one.
	w.Prefixes = append(w.Prefixes, world.Prefix{Prefix: netip.MustParsePrefix("10.0.0.0/14"), ASN: 64503, Metro: 0, Subscribers: 10})
	w.Prefixes = append(w.Prefixes, world.Prefix{Prefix: netip.MustParsePrefix("2001:db8::/32"), ASN: 64502, Metro: 2, Subscribers: 500})
	return w
}

// testScenario is the built-in scenario shrunk for the test world.
func testScenario(t testing.TB, edits ...string) *Scenario {
	t.Helper()
	y := strings.NewReplacer(
		"duration: 24h", "duration: 12h",
		"step: 5m", "step: 10m",
		"titles: 1200", "titles: 300",
		"route_churn: {file: ../shared/data/routes/ris-updates.20160811.1600.gz, repeat: true}", "route_churn: {file: ''}",
		"sessions_per_subscriber_day: 0.4", "sessions_per_subscriber_day: 0.5",
	).Replace(string(DefaultScenario))
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(y, edits[i]) {
			t.Fatalf("scenario edit %q: not found", edits[i])
		}
		y = strings.Replace(y, edits[i], edits[i+1], 1)
	}
	sc, err := ParseScenario("test scenario", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func writeFile(path, data string) error { return os.WriteFile(path, []byte(data), 0o644) }

// risPrefixes returns up to n world prefixes (in the test world's first
// metro) made from prefixes the RIS updates file mentions.
func risPrefixes(t *testing.T, path string, n int) []world.Prefix {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := rib.OpenMaybeGzip(f)
	if err != nil {
		t.Fatal(err)
	}
	mr := rib.NewMRTReader(r)
	seen := map[netip.Prefix]bool{}
	var out []world.Prefix
	for len(out) < n {
		rec, err := mr.Next()
		if err != nil {
			break
		}
		for _, p := range rec.Withdrawn {
			if p.Addr().Is4() && !seen[p] && !netip.MustParsePrefix("10.0.0.0/8").Overlaps(p) {
				seen[p] = true
				out = append(out, world.Prefix{Prefix: p, ASN: 64501, Metro: 0, Subscribers: 200})
			}
		}
	}
	return out
}
