package control

import (
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/dns"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/rib"
)

// probeLog is a fixed probe log.
type probeLog map[string][]dns.ProbeQuery

func (l probeLog) Lookup(nonce string) []dns.ProbeQuery { return l[nonce] }

// dualStack is the test server with e1 dual-stack, routes for the ISP's
// IPv4 /17 and IPv6 /48 from e1, a second ISP, and both files held.
func dualStack(t *testing.T, mutate func(*Config)) (*Server, string) {
	t.Helper()
	s, _, cat := newTestServerWith(t, func(c *Config) {
		c.Inventory.Appliances[0].Address6 = config.AddrPort{AddrPort: netip.MustParseAddrPort("[2001:db8::1]:80")}
		c.Inventory.ISPs[0].Prefixes = append(c.Inventory.ISPs[0].Prefixes, config.Prefix{Prefix: netip.MustParsePrefix("2001:db8:60::/44")})
		c.Inventory.ISPs = append(c.Inventory.ISPs, config.ISP{Name: "other", ASN: 64501, Prefixes: []config.Prefix{{Prefix: netip.MustParsePrefix("10.99.0.0/16")}}})
		if mutate != nil {
			mutate(c)
		}
	})
	h := s.Handler()
	f := cat.Files[0].Path
	beat(t, h, "e1", 1, []string{f})
	beat(t, h, "x1", 1, []string{f})
	report(t, h, api.RouteReport{Appliance: "e1", Epoch: "a", Seq: 1, Snapshot: true,
		Announce: []rib.Route{route("10.64.0.0/17"), route("2001:db8:64::/48")}})
	return s, f
}

func TestSteerByFamily(t *testing.T) {
	s, f := dualStack(t, nil)
	h := s.Handler()
	steerAs := func(remote, query string) []map[string]string {
		t.Helper()
		w := do(t, h, "GET", "/v1/steer?files="+f+query, "", remote, "")
		if w.Code != 200 {
			t.Fatalf("steer from %s%s: %d %s", remote, query, w.Code, w.Body)
		}
		var resp struct {
			Files []struct {
				URLs []map[string]string `json:"urls"`
			} `json:"files"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
		out := resp.Files[0].URLs
		for _, u := range out {
			for k, v := range u {
				if strings.HasPrefix(k, "url") {
					u[k] = strings.SplitN(strings.TrimPrefix(v, "http://"), "/", 2)[0]
				}
			}
			delete(u, "reason")
			delete(u, "site")
		}
		return out
	}
	// IPv4 client: IPv4 URLs, its /17 route first.
	if got := steerAs("10.64.3.4:1", ""); len(got) != 2 || got[0]["appliance"] != "e1" || got[0]["url"] != "127.1.0.1:80" || got[1]["url"] != "127.1.0.2:80" {
		t.Errorf("IPv4 client: %v", got)
	}
	// IPv6 client: the IPv6 route and address; the IPv4-only x1 is left out.
	if got := steerAs("[2001:db8:64::5]:1", ""); len(got) != 1 || got[0]["appliance"] != "e1" || got[0]["url"] != "[2001:db8::1]:80" {
		t.Errorf("IPv6 client: %v", got)
	}
	// family=both: every family each appliance has.
	got := steerAs("10.64.3.4:1", "&family=both")
	want := []map[string]string{
		{"appliance": "e1", "url": "127.1.0.1:80", "url_ipv4": "127.1.0.1:80", "url_ipv6": "[2001:db8::1]:80"},
		{"appliance": "x1", "url": "127.1.0.2:80", "url_ipv4": "127.1.0.2:80"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("family=both: (-want +got)\n%s", d)
	}
	if w := do(t, h, "GET", "/v1/steer?files="+f+"&family=ipv7", "", "10.64.3.4:1", ""); w.Code != 400 || !strings.Contains(w.Body.String(), "family=") {
		t.Errorf("family=ipv7: %d %s, want 400 naming family", w.Code, w.Body)
	}
}

func TestProbeTargetsBothFamilies(t *testing.T) {
	s, _ := dualStack(t, func(c *Config) { c.ProbeBothFamilies = true })
	targets, err := s.probeTargets(netip.MustParseAddr("10.64.3.4"), true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range targets {
		got = append(got, tg.ID+" "+tg.Family+" "+strings.SplitN(strings.TrimPrefix(tg.URL, "http://"), "/", 2)[0])
	}
	want := []string{"e1 ipv4 127.1.0.1:80", "x1 ipv4 127.1.0.2:80", "e1/ipv6 ipv6 [2001:db8::1]:80"}
	if !slices.Equal(got, want) {
		t.Errorf("probe targets = %q, want %q", got, want)
	}
	// A client that did not say it is dual-stack may have no IPv6 at
	// all: it gets its own family only.
	targets, err = s.probeTargets(netip.MustParseAddr("10.64.3.4"), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if tg.Family != "ipv4" {
			t.Errorf("single-stack client got target %s over %s", tg.ID, tg.Family)
		}
	}
}

// TestResolverJoin: a dns pulse's nonce is joined with the probe log at
// ingest, and the resolver's distance follows the documented definition.
func TestResolverJoin(t *testing.T) {
	q := func(resolver string, ecs string) []dns.ProbeQuery {
		pq := dns.ProbeQuery{Resolver: netip.AddrPortFrom(netip.MustParseAddr(resolver), 53), QType: "A"}
		if ecs != "" {
			pq.ECS = netip.MustParsePrefix(ecs)
		}
		return []dns.ProbeQuery{pq}
	}
	log := probeLog{
		"samepfx1": q("10.64.100.53", "10.64.3.0/24"),
		"sameas11": q("10.64.200.53", ""),
		"otheras1": q("10.99.0.53", ""),
		"public11": q("8.8.8.8", ""),
		"unrouted": q("192.0.2.53", ""),
	}
	dir := t.TempDir()
	s, _ := dualStack(t, func(c *Config) { c.ProbeLog = log; c.MeasureDir = dir })
	client := netip.MustParseAddr("10.64.3.4")
	for nonce, want := range map[string]measure.ResolverJoin{
		"samepfx1": {Resolver: "10.64.100.53", ResolverASN: 64500, ECS: "10.64.3.0/24", Distance: measure.DistanceSamePrefix, Queries: 1},
		"sameas11": {Resolver: "10.64.200.53", ResolverASN: 64500, Distance: measure.DistanceSameAS, Queries: 1},
		"otheras1": {Resolver: "10.99.0.53", ResolverASN: 64501, Distance: measure.DistanceOtherAS, Queries: 1},
		"public11": {Resolver: "8.8.8.8", Distance: measure.DistanceUnknown, Queries: 1},
	} {
		got, ok := resolverJoiner{s}.JoinResolver(client, nonce)
		if !ok || got != want {
			t.Errorf("JoinResolver(%s) = %+v, %v, want %+v", nonce, got, ok, want)
		}
	}
	// An unrouted client: its /24 is its prefix.
	if got, _ := (resolverJoiner{s}).JoinResolver(netip.MustParseAddr("192.0.2.7"), "unrouted"); got.Distance != measure.DistanceSamePrefix {
		t.Errorf("unrouted client, resolver in its /24: %+v", got)
	}
	if _, ok := (resolverJoiner{s}).JoinResolver(client, "notlogged"); ok {
		t.Error("a nonce the server never saw joined")
	}

	// Through the ingest path into the pulses table.
	now := time.Now()
	rep := &measure.Report{ID: "dnsreport0000001", Recipe: "r", ClientTime: now, Pulses: []measure.Pulse{{Target: "e1", Appliance: "e1",
		Type: measure.TypeDNS, Start: now, DNSMs: 2, Nonce: "sameas11", Family: measure.FamilyIPv4, DurationMs: 3, Status: measure.StatusOK}}}
	if _, err := s.measure.Ingest(context.Background(), client, rep); err != nil {
		t.Fatal(err)
	}
	if err := s.measure.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "pulses", "date=*", "hour=*", "*.parquet"))
	if len(files) != 1 {
		t.Fatalf("pulse files %v", files)
	}
	rows, err := parquet.ReadFile[measure.PulseRow](files[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Resolver != "10.64.200.53" || rows[0].ResolverDistance != measure.DistanceSameAS || rows[0].Family != "ipv4" {
		t.Errorf("stored rows %+v", rows)
	}
}
