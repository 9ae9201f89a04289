package world

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeData writes a miniature of the npm packages, the full table and
// zone.tab: three networks in two countries, one of them with more
// specifics inside its /16, a cloud provider, and an IPv6 prefix.
func writeData(t *testing.T) BuildInput {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"db/asn/asn-ipv4.csv": "10.0.0.0,10.0.255.255,64501,Big Access DE\n" +
			"10.1.0.0,10.1.255.255,64502,Kabel NL\n" +
			"10.2.0.0,10.2.3.255,64503,\"Example Cloud, Inc.\"\n" +
			"10.3.0.0,10.3.0.255,64504,Small DE\n",
		"db/asn/asn-ipv6.csv":                 "2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,64502,Kabel NL\n",
		"db/asn-country/asn-country-ipv4.csv": "10.0.0.0,10.0.255.255,DE\n10.1.0.0,10.1.255.255,NL\n10.2.0.0,10.2.3.255,DE\n10.3.0.0,10.3.0.255,DE\n",
		"db/asn-country/asn-country-ipv6.csv": "2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,NL\n",
		"zone.tab":                            "# comment\nDE\t+5230+01322\tEurope/Berlin\tmost of Germany\nNL\t+5222+00454\tEurope/Amsterdam\n",
		"routes.txt":                          "10.0.0.0/16\n10.0.5.0/24\n10.1.0.0/16\n10.2.0.0/22\n10.3.0.0/24\n2001:db8::/32\n192.0.2.0/24\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	model := strings.NewReplacer("networks_per_country: 10", "networks_per_country: 1",
		"min_network_subscribers: 20000", "min_network_subscribers: 1",
		"metros: 120", "metros: 1").Replace(string(DefaultModel))
	return BuildInput{Routes: filepath.Join(dir, "routes.txt"), IPLocationDB: filepath.Join(dir, "db"), ZoneTab: filepath.Join(dir, "zone.tab"), Model: []byte(model), ModelName: "test model"}
}

func TestBuildSmallWorld(t *testing.T) {
	in := writeData(t)
	w, st, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if st.PrefixesRead != 7 || st.PrefixesMapped != 6 || st.NoCountry != 1 {
		t.Errorf("stats = %+v, want 7 read, 6 mapped, 1 without a country (192.0.2.0/24)", st)
	}
	subs := map[string]float32{}
	var de, nl float32
	for _, p := range w.Prefixes {
		subs[p.Prefix.String()] = p.Subscribers
		switch w.Metros[p.Metro].Country {
		case "DE":
			de += p.Subscribers
		case "NL":
			nl += p.Subscribers
		}
	}
	// DE: 77e6 users × 0.15; NL: 17e6 × 0.20 (model.yaml).
	if d := float64(de) - 77e6*0.15; d > 100 || d < -100 {
		t.Errorf("DE subscribers = %v, want %v", de, 77e6*0.15)
	}
	if d := float64(nl) - 17e6*0.20; d > 100 || d < -100 {
		t.Errorf("NL subscribers = %v, want %v", nl, 17e6*0.20)
	}
	// The /16 with a /24 inside owns 65,280 addresses, the /24 256.
	if r := subs["10.0.0.0/16"] / subs["10.0.5.0/24"]; r < 254 || r > 256 {
		t.Errorf("subscribers of 10.0.0.0/16 / 10.0.5.0/24 = %v, want 255 (own address space)", r)
	}
	// The cloud's /22 counts non_access_weight times its space.
	if subs["10.2.0.0/22"] >= subs["10.0.5.0/24"] {
		t.Errorf("cloud /22 got %v subscribers, a DE access /24 %v: non-access space must count less", subs["10.2.0.0/22"], subs["10.0.5.0/24"])
	}
	if subs["2001:db8::/32"] <= 0 {
		t.Errorf("IPv6 prefix of an access network got no subscribers")
	}
	// One network per country gets embedded sites: the biggest.
	asns := map[uint32]bool{}
	ixp := 0
	for _, s := range w.Sites {
		if s.Kind == "embedded" {
			asns[s.ASN] = true
		} else {
			ixp++
		}
	}
	if !asns[64501] || !asns[64502] || asns[64503] || asns[64504] || ixp != 1 {
		t.Errorf("embedded networks %v and %d IXP sites, want 64501 and 64502 and one IXP site", asns, ixp)
	}
	// Round trip through files.
	path := filepath.Join(t.TempDir(), "w.yaml")
	if err := w.Write(path); err != nil {
		t.Fatal(err)
	}
	w2, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(w2.Prefixes) != len(w.Prefixes) || len(w2.Sites) != len(w.Sites) || len(w2.Appliances) != len(w.Appliances) || len(w2.ASes) != len(w.ASes) {
		t.Errorf("loaded world has %d prefixes, %d sites, %d appliances, %d ASes; wrote %d, %d, %d, %d",
			len(w2.Prefixes), len(w2.Sites), len(w2.Appliances), len(w2.ASes), len(w.Prefixes), len(w.Sites), len(w.Appliances), len(w.ASes))
	}
}

func TestMissingDataNamesMakeTarget(t *testing.T) {
	in := writeData(t)
	in.IPLocationDB = filepath.Join(t.TempDir(), "nothing")
	_, _, err := Build(in)
	if err == nil || !strings.Contains(err.Error(), DataTarget) || !strings.Contains(err.Error(), "@ip-location-db/asn") {
		t.Errorf("Build without data = %v, want an error naming the package and %q", err, DataTarget)
	}
}

func TestBadWorldRefusedWithFileLineField(t *testing.T) {
	in := writeData(t)
	w, _, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "w.yaml")
	if err := w.Write(path); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, old, new, field string
	}{
		{"unknown field", "name: internet", "name: internet\nnmae: x", "nmae"},
		{"negative storage", "storage: ", "storage: -", "storage"}, // the size parser refuses it at decode
		{"absurd throughput", "throughput_gbps: 20", "throughput_gbps: 1e9", "throughput_gbps"},
		{"share above 1", "ipv6_share: 0.3", "ipv6_share: 1.5", "population.ipv6_share"},
		{"site in no country", "metro: de-ber\n", "metro: atlantis\n", ".metro"},
		{"bad time zone", "time_zone: Europe/Berlin", "time_zone: Mars/Olympus", ".time_zone"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !bytes.Contains(good, []byte(c.old)) {
				t.Fatalf("world file has no %q", c.old)
			}
			bad := bytes.Replace(good, []byte(c.old), []byte(c.new), 1)
			if err := os.WriteFile(path, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("Load = %v, want an InputError", err)
			}
			if ie.File != path || ie.Line == 0 || !strings.Contains(ie.Field, c.field) {
				t.Errorf("Load = %q (file %q line %d field %q), want file %s, a line and field %q", err, ie.File, ie.Line, ie.Field, path, c.field)
			}
			lines := bytes.Split(bad, []byte("\n"))
			if ie.Line > 0 && ie.Line <= len(lines) && c.field != "" && c.field[0] != '.' {
				last := c.field[strings.LastIndexByte(c.field, '.')+1:]
				if !bytes.Contains(lines[ie.Line-1], []byte(last)) {
					t.Errorf("line %d is %q, want the line of %s", ie.Line, lines[ie.Line-1], c.field)
				}
			}
		})
	}
}

func TestBadPrefixLineRefused(t *testing.T) {
	w := &World{metroIdx: map[string]int{"de-ber": 0}}
	w.ASes = []AS{{ASN: 64501}}
	for _, c := range []struct{ data, field string }{
		{"10.0.0.0/16\t64501\tde-ber\t5\n10.1.0.0/33\t64501\tde-ber\t5\n", "prefix"},
		{"# header\n10.0.0.1/16\t64501\tde-ber\t5\n", "prefix"},
		{"10.0.0.0/16\t64599\tde-ber\t5\n", "asn"},
		{"10.0.0.0/16\t64501\tnowhere\t5\n", "metro"},
		{"10.0.0.0/16\t64501\tde-ber\t-1\n", "subscribers"},
		{"10.0.0.0/16\t64501\n", ""},
	} {
		_, err := parsePrefixes("p.tsv", strings.NewReader(c.data), w)
		var ie *InputError
		if !errors.As(err, &ie) || ie.File != "p.tsv" || ie.Line != 2 && strings.Count(c.data, "\n") == 2 || ie.Field != c.field {
			t.Errorf("parsePrefixes(%q) = %v, want file p.tsv, its line and field %q", c.data, err, c.field)
		}
	}
}

func FuzzParsePrefixes(f *testing.F) {
	f.Add("10.0.0.0/16\t64501\tde-ber\t5\n")
	f.Add("2001:db8::/32\t0\tde-ber\t1e3\n# x\n\n")
	f.Add("10.1.0.0/33\t64501\tde-ber\t5")
	w := &World{metroIdx: map[string]int{"de-ber": 0}, ASes: []AS{{ASN: 64501}}}
	f.Fuzz(func(t *testing.T, data string) {
		ps, err := parsePrefixes("f", strings.NewReader(data), w)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || ie.Line == 0 && ie.Problem == "" {
				t.Fatalf("error %v is not an InputError with a line", err)
			}
			return
		}
		for _, p := range ps {
			if !p.Prefix.IsValid() || p.Prefix.Masked() != p.Prefix || p.Subscribers < 0 {
				t.Fatalf("accepted %+v", p)
			}
		}
	})
}

func TestISO6709(t *testing.T) {
	for _, c := range []struct {
		in       string
		lat, lon float64
	}{{"+5230+01322", 52.5, 13.3667}, {"-3352+15113", -33.8667, 151.2167}, {"+404251-0740023", 40.7142, -74.0064}} {
		lat, lon, ok := parseISO6709(c.in)
		if !ok || abs(lat-c.lat) > 1e-3 || abs(lon-c.lon) > 1e-3 {
			t.Errorf("parseISO6709(%q) = %v, %v, %v; want %v, %v", c.in, lat, lon, ok, c.lat, c.lon)
		}
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
