package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultScenarioIsValid(t *testing.T) {
	sc, err := LoadScenario("")
	if err != nil {
		t.Fatalf("LoadScenario(built-in) = %v", err)
	}
	kinds := map[string]int{}
	for _, s := range sc.Sites {
		kinds[string(s.Kind)]++
	}
	clients := 0
	for _, c := range sc.Clients {
		clients += c.Count
	}
	if len(sc.ISPs) < 2 || len(sc.Sites) < 3 || kinds["ixp"] < 1 || len(sc.Appliances) < 5 || clients < 24 {
		t.Errorf("built-in scenario too small: %d ISPs, %d sites (%v), %d appliances, %d clients", len(sc.ISPs), len(sc.Sites), kinds, len(sc.Appliances), clients)
	}
}

// TestBrokenScenarios checks that each kind of bad reference is refused
// before anything starts, with a message naming the file, field and problem.
func TestBrokenScenarios(t *testing.T) {
	base := string(DefaultScenario)
	cases := []struct {
		name, from, to string
		want           []string // substrings of the error
	}{
		{"unknown site", "{id: fra-b-2, site: fra-isp-b,", "{id: fra-b-2, site: nowhere,", []string{"appliances[3].site", `unknown site "nowhere"`}},
		{"address outside appliance range", "address: 127.1.2.1:18080", "address: 127.2.2.1:18080", []string{"appliances[4].address", "outside 127.1.0.0/16"}},
		{"address used twice", "address: 127.1.0.2:18080", "address: 127.1.0.1:18080", []string{"appliances[1].address", "already used by appliance \"ams-a-1\""}},
		{"malformed address", "address: 127.1.0.2:18080", "address: 127.1.0.2", []string{"appliances[1].address", `"127.1.0.2" is not IP:port`}},
		{"malformed prefix", "prefixes: [127.64.0.0/16,", "prefixes: [127.64.0/16,", []string{"isps[0].prefixes[0]", `"127.64.0/16" is not a prefix`}},
		{"prefix with host bits", "prefixes: [127.64.0.0/16,", "prefixes: [127.64.0.1/16,", []string{"isps[0].prefixes[0]", "host bits"}},
		{"unknown ISP of a site", "kind: embedded, isp: isp-a,", "kind: embedded, isp: isp-z,", []string{"sites[0].isp", `unknown ISP "isp-z"`}},
		{"unknown ISP of clients", "{isp: isp-c, count: 6}", "{isp: isp-q, count: 6}", []string{"clients[2].isp", `unknown ISP "isp-q"`}},
		{"unknown event target", "target: ams-a-1", "target: ams-a-9", []string{"events[1].target", `unknown appliance "ams-a-9"`}},
		{"route event for unknown ISP", "kind: withdraw_prefix, target: isp-b", "kind: withdraw_prefix, target: isp-x", []string{"events[2].target", `unknown ISP "isp-x"`}},
		{"route event for a foreign prefix", "target: isp-b, prefix: 127.66.0.0/17}\n  - {at: 80%", "target: isp-b, prefix: 127.64.0.0/16}\n  - {at: 80%", []string{"events[2].prefix", `not one of ISP "isp-b"'s prefixes`}},
		{"unknown site kind", "kind: ixp,", "kind: cloud,", []string{"sites[2].kind", `"cloud"`}},
		{"unknown field", "replicas: 2", "replica: 2", []string{"field replica not found"}},
		{"bad time zone", "time_zone: Europe/Berlin", "time_zone: Mars/Olympus", []string{"sites[1].time_zone"}},
		{"release of an unknown title", "title: t0011", "title: t0099", []string{"events[5].title", `"t0099"`}},
		{"share above one", "share: 0.3", "share: 1.5", []string{"events[5].share", "1.5"}},
		{"lead before the run", "lead: 8s", "lead: 2m", []string{"events[5].lead"}},
		{"shift in a region without clients", "target: isp-a, title: t0009", "target: isp-z, title: t0009", []string{"events[4].target", `"isp-z"`}},
		{"churn bound above one", "max_churn: 0.25", "max_churn: 2", []string{"placement.max_churn"}},
		{"IPv6 prefix outside the lab's", "2001:db8:a::/48", "2001:db9:a::/48", []string{"isps[0].prefixes[1]", "2001:db8::/32"}},
		{"IPv6 prefix in the CDN's space", "2001:db8:a::/48", "2001:db8:ffff::/48", []string{"isps[0].prefixes[1]", "2001:db8:ffff::/48"}},
		{"address6 outside the CDN's space", "[2001:db8:ffff::102]", "[2001:db8:a::102]", []string{"appliances[1].address6", "2001:db8:ffff::/48"}},
		{"dual-stack share above one", "count: 12, ipv6_share: 0.5", "count: 12, ipv6_share: 2", []string{"clients[1].ipv6_share", "2"}},
		{"dual-stack clients without IPv6", "{isp: isp-c, count: 6}", "{isp: isp-c, count: 6, ipv6_share: 0.5}", []string{"clients[2].ipv6_share", `"isp-c" has no IPv6 prefix`}},
	}
	dir := t.TempDir()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.from) {
				t.Fatalf("test is stale: built-in scenario no longer contains %q", tc.from)
			}
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(strings.Replace(base, tc.from, tc.to, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadScenario(path)
			if err == nil {
				t.Fatalf("LoadScenario(%s) = nil error, want one naming %v", tc.name, tc.want)
			}
			for _, w := range append([]string{path}, tc.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("LoadScenario error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestEventWhen(t *testing.T) {
	for _, tc := range []struct {
		at   string
		want string
		ok   bool
	}{{"50%", "30s", true}, {"15s", "15s", true}, {"150%", "", false}, {"soon", "", false}, {"-1s", "", false}} {
		got, err := Event{At: tc.at}.When(60e9)
		if (err == nil) != tc.ok || (tc.ok && got.String() != tc.want) {
			t.Errorf("Event{At: %q}.When(60s) = %v, %v; want %s ok=%v", tc.at, got, err, tc.want, tc.ok)
		}
	}
}
