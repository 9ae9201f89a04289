package dnsname

import (
	"strings"
	"testing"
)

func TestLabel(t *testing.T) {
	for in, want := range map[string]string{
		"a1":          "a1",
		"OCA-01":      "oca-01",
		"a_1":         "a-1",
		"a.1":         "a-1",
		"-x-":         "x",
		"__":          "",
		"ams1/rack 2": "ams1-rack-2",
		"café":        "caf",
		"é1":          "1",
		"a\x00b":      "a-b",
	} {
		if got := Label(in); got != want {
			t.Errorf("Label(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAppliance(t *testing.T) {
	got, err := Appliance("cdn.example.net", "OCA_7", "ams-1", IPv6)
	if err != nil || got != "ipv6-oca-7-ams-1.cdn.example.net" {
		t.Fatalf("Appliance = %q, %v; want ipv6-oca-7-ams-1.cdn.example.net", got, err)
	}
	for _, tc := range []struct {
		id, site string
		f        Family
		want     string
	}{
		{"__", "s", IPv4, "appliance id"},
		{"a", "..", IPv4, "site id"},
		{strings.Repeat("a", 60), "s", IPv4, "above the limit of 63"},
		{"a", "s", 5, "not ipv4 or ipv6"},
	} {
		if _, err := Appliance("cdn.example.net", tc.id, tc.site, tc.f); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Appliance(%q, %q, %v) = %v, want an error with %q", tc.id, tc.site, tc.f, err, tc.want)
		}
	}
	// Domain refuses a domain this long; Appliance checks the total anyway.
	long := strings.Repeat(strings.Repeat("d", 59)+".", 4) + "network"
	if _, err := Appliance(long, "a", "s", IPv4); err == nil || !strings.Contains(err.Error(), "limit of 253") {
		t.Errorf("Appliance under a 247-character domain = %v, want the name limit", err)
	}
}

func TestDomain(t *testing.T) {
	if d, err := Domain("CDN.Example.NET."); err != nil || d != "cdn.example.net" {
		t.Fatalf("Domain = %q, %v", d, err)
	}
	for _, bad := range []string{"", ".", "a..b", "-a.b", "a-.b", "a_b.c", "a b", strings.Repeat("x", 64) + ".net", strings.Repeat("abcdefgh.", 22) + "net"} {
		if d, err := Domain(bad); err == nil {
			t.Errorf("Domain(%q) = %q, want an error", bad, d)
		}
	}
}

func TestInZone(t *testing.T) {
	for _, tc := range []struct {
		n    string
		want bool
	}{
		{"cdn.example", true}, {"a.cdn.example", true}, {"xcdn.example", false}, {"example", false}, {"a.b.cdn.example", true},
	} {
		if got := InZone(tc.n, "cdn.example"); got != tc.want {
			t.Errorf("InZone(%q) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

func TestProbeRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		nonce := NewNonce()
		if seen[nonce] {
			t.Fatalf("NewNonce repeated %q", nonce)
		}
		seen[nonce] = true
		n, err := Probe(nonce, "ipv4-a1-s.cdn.example")
		if err != nil {
			t.Fatal(err)
		}
		got, rest, ok := SplitProbe(n)
		if !ok || got != nonce || rest != "ipv4-a1-s.cdn.example" {
			t.Fatalf("SplitProbe(%q) = %q, %q, %v", n, got, rest, ok)
		}
	}
	for _, n := range []string{"ipv4-a1-s.cdn.example", "p-short.x", "p-UPPERCASE1.x", "p-" + strings.Repeat("a", 33) + ".x", "p-abcdefgh"} {
		if _, _, ok := SplitProbe(n); ok {
			t.Errorf("SplitProbe(%q) ok, want not a probe name", n)
		}
	}
	if _, err := Probe("x", "a.b"); err == nil {
		t.Error("Probe with a one-letter nonce = nil error")
	}
}

// FuzzNames: whatever an id is, the appliance name is either refused or
// a valid hostname inside the domain.
func FuzzNames(f *testing.F) {
	f.Add("a1", "site-1")
	f.Add("OCA_é.7", "--")
	f.Add(strings.Repeat("z", 70), "s")
	f.Fuzz(func(t *testing.T, id, site string) {
		n, err := Appliance("cdn.example", id, site, IPv4)
		if err != nil {
			return
		}
		if _, herr := Hostname(n); herr != nil {
			t.Fatalf("Appliance(%q, %q) = %q, not a hostname: %v", id, site, n, herr)
		}
		if !InZone(n, "cdn.example") || !strings.HasPrefix(n, "ipv4-") {
			t.Fatalf("Appliance(%q, %q) = %q, not ipv4-… in the zone", id, site, n)
		}
	})
}
