package analyze

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/measure"
)

// dnsRow is a successful dns pulse of client over fam, joined to a
// resolver at distance d (no join when d is "").
func dnsRow(client netip.Addr, isp, fam, d string, dnsMs float64) Row {
	r := Row{ReportID: "r-" + client.String(), Time: t0, ClientAddr: client, Prefix: client.String() + "/32", ISP: isp,
		Appliance: "a1", Site: "s", Type: measure.TypeDNS, Status: measure.StatusOK, Family: fam, DNSMs: dnsMs, Distance: d}
	r.Values = [numMetrics]float64{math.NaN(), math.NaN(), math.NaN()}
	if d != "" {
		r.Resolver = "192.0.2." + map[string]string{measure.DistanceSamePrefix: "1", measure.DistanceSameAS: "2", measure.DistanceOtherAS: "3", measure.DistanceUnknown: "8"}[d]
		r.ECS = map[bool]string{true: "198.51.100.0/24"}[d == measure.DistanceUnknown]
	}
	return r
}

func TestResolvers(t *testing.T) {
	var rows []Row
	// ISP a: 30 clients, 20 on their ISP's resolver, 10 on a public one;
	// one client's pulses are mostly unknown, once same_as.
	for i := range 30 {
		c := netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})
		d := measure.DistanceSameAS
		if i < 10 {
			d = measure.DistanceUnknown
		}
		for j := range 3 {
			dd := d
			if i == 0 && j == 0 {
				dd = measure.DistanceSameAS
			}
			rows = append(rows, dnsRow(c, "a", measure.FamilyIPv4, dd, float64(10+i+j)))
		}
	}
	// ISP b: 5 clients, all same_prefix, and one pulse never joined.
	for i := range 5 {
		rows = append(rows, dnsRow(netip.AddrFrom4([4]byte{10, 1, 0, byte(i + 1)}), "b", measure.FamilyIPv6, measure.DistanceSamePrefix, 2))
	}
	rows = append(rows, dnsRow(netip.AddrFrom4([4]byte{10, 1, 0, 99}), "b", measure.FamilyIPv6, "", 3))
	// A failed dns pulse counts nowhere.
	failed := dnsRow(netip.AddrFrom4([4]byte{10, 1, 0, 98}), "b", measure.FamilyIPv6, measure.DistanceUnknown, 3)
	failed.Status = measure.StatusError
	rows = append(rows, failed)

	res := Resolvers(rows, 0.95)
	if res.DNSPulses != 96 || res.Joined != 95 {
		t.Errorf("dns pulses %d, joined %d, want 96, 95", res.DNSPulses, res.Joined)
	}
	byISP := map[string]ResolverISP{}
	for _, r := range res.ISPs {
		byISP[r.ISP] = r
	}
	if got := len(res.ISPs); got != 3 || res.ISPs[0].ISP != "*" {
		t.Fatalf("ISPs %+v, want *, a, b", res.ISPs)
	}
	a := byISP["a"]
	if a.Clients != 30 || a.Distance[measure.DistanceUnknown] != 10 || a.Distance[measure.DistanceSameAS] != 20 || a.Distant.K != 10 || a.Distant.N != 30 {
		t.Errorf("ISP a = %+v, want 10 of 30 clients distant", a)
	}
	if !a.Distant.OK || !(a.Distant.Lo < 1.0/3 && 1.0/3 < a.Distant.Hi) {
		t.Errorf("ISP a distant share %+v: the interval should hold 1/3", a.Distant)
	}
	// The ECS share is of joined pulses: 29 of 90 (client 0 has one same_as pulse).
	if a.ECS.K != 29 || a.ECS.N != 90 || a.Resolvers != 2 {
		t.Errorf("ISP a ECS %+v resolvers %d, want 29/90 and 2", a.ECS, a.Resolvers)
	}
	if b := byISP["b"]; b.Clients != 5 || b.Distant.K != 0 || b.Distance[measure.DistanceSamePrefix] != 5 {
		t.Errorf("ISP b = %+v", b)
	}
	if all := byISP["*"]; all.Clients != 35 || all.Distant.K != 10 {
		t.Errorf("all ISPs = %+v", all)
	}
	found := false
	for _, tm := range res.Times {
		if tm.Family == "*" && tm.Distance == "*" && tm.Q == 0.5 {
			found = true
			if !tm.OK || tm.N != 96 || !(tm.Lo <= tm.Est && tm.Est <= tm.Hi) {
				t.Errorf("dns time p50 %+v", tm)
			}
		}
		if tm.Family == measure.FamilyIPv6 && tm.Distance != "*" {
			t.Errorf("cell %+v mixes family and distance", tm)
		}
	}
	if !found {
		t.Error("no overall dns time p50")
	}
}

// famRows: n clients of isp, each measuring appliance a1 over both
// families with connect times whose IPv6 − IPv4 difference is delta.
func famRows(rng *rand.Rand, isp string, n int, delta float64) []Row {
	var rows []Row
	for i := range n {
		c := netip.AddrFrom4([4]byte{10, 2, byte(len(isp)), byte(i + 1)})
		base := 5 + 20*rng.Float64() // clients differ a lot; the pairing removes it
		for _, f := range []string{measure.FamilyIPv4, measure.FamilyIPv6} {
			for range 3 {
				v := base + 0.2*rng.NormFloat64()
				if f == measure.FamilyIPv6 {
					v += delta
				}
				r := Row{ReportID: fmt.Sprint("r", i), Time: t0, ClientAddr: c, ISP: isp, Appliance: "a1", Site: "s",
					Type: measure.TypeTCPConnect, Status: measure.StatusOK, Family: f, DNSMs: math.NaN()}
				r.Values = [numMetrics]float64{v, math.NaN(), math.NaN()}
				rows = append(rows, r)
			}
		}
	}
	return rows
}

func TestFamiliesPaired(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	rows := append(famRows(rng, "slow6", 40, 3), famRows(rng, "same", 40, 0)...)
	// An ISP with IPv4 only is not compared.
	for _, r := range famRows(rng, "v4only", 10, 0) {
		if r.Family == measure.FamilyIPv4 {
			rows = append(rows, r)
		}
	}
	got := map[string]FamilyDiff{}
	for _, f := range Families(rows, 0.95) {
		if f.Metric == Connect {
			got[f.ISP] = f
		}
	}
	if _, ok := got["v4only"]; ok {
		t.Error("an IPv4-only ISP got a family comparison")
	}
	s := got["slow6"]
	if s.Pairs != 40 || !s.PairedOK || !(s.PairedLo > 2 && s.PairedHi < 4) {
		t.Errorf("slow6 paired diff %+v, want 40 pairs and an interval around 3 inside (2, 4)", s)
	}
	// Unpaired, the spread between clients swamps 3 ms: the interval is
	// much wider than the paired one, but still holds the truth.
	if !s.DiffOK || !(s.DiffLo < 3 && 3 < s.DiffHi) || s.DiffHi-s.DiffLo < 2*(s.PairedHi-s.PairedLo) {
		t.Errorf("slow6 unpaired diff [%v, %v], paired [%v, %v]", s.DiffLo, s.DiffHi, s.PairedLo, s.PairedHi)
	}
	if s.WilcoxonP > 1e-6 {
		t.Errorf("slow6 Wilcoxon p = %v, want tiny", s.WilcoxonP)
	}
	// No difference: the estimate is within the per-pulse noise of 0 (a
	// 95% interval misses 0 in 5% of samples; coverage is the stats
	// package's test).
	if e := got["same"]; !e.PairedOK || math.Abs(e.PairedDiff) > 0.3 || e.PairedHi-e.PairedLo > 1 {
		t.Errorf("same: paired diff %v [%v, %v], want near 0", e.PairedDiff, e.PairedLo, e.PairedHi)
	}
	if all := got["*"]; all.Pairs != 80 {
		t.Errorf("all ISPs: %d pairs, want 80", all.Pairs)
	}
}

// TestRunWritesDNSSections: the sections reach dns.json, the CSV files
// and the page, from Parquet rows the ingester writes.
func TestRunWritesDNSSections(t *testing.T) {
	data, out := t.TempDir(), t.TempDir()
	at := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	var prs []measure.PulseRow
	for i := range 12 {
		for _, fam := range []string{"ipv4", "ipv6"} {
			dms, cms := 3+float64(i), 1+float64(i)
			if fam == "ipv6" {
				cms += 2
			}
			dist := measure.DistanceSameAS
			if i%3 == 0 {
				dist = measure.DistanceUnknown
			}
			r := pulseRow(at, fmt.Sprint("rep", i), fmt.Sprint("10.0.0.", i+1), measure.TypeDNS)
			r.ISP, r.ConnectMs, r.Family, r.DNSMs = "isp-a", &cms, fam, &dms
			r.Nonce, r.Resolver, r.ResolverASN, r.ResolverDistance = fmt.Sprintf("nonce%04d%s", i, fam), "192.0.2.53", 64500, dist
			prs = append(prs, r)
		}
	}
	writePulses(t, data, at, "part-1.parquet", prs)
	sum, err := Run(context.Background(), runOpts(data, out))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Resolvers.DNSPulses != 24 || len(sum.Families) == 0 {
		t.Fatalf("summary resolvers %+v families %+v", sum.Resolvers, sum.Families)
	}
	b, err := os.ReadFile(filepath.Join(out, "dns.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d DNSJSON
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dns.json: %v\n%s", err, b)
	}
	if d.Joined != 24 || len(d.Resolvers) != 2 || d.Resolvers[1].ISP != "isp-a" || d.Resolvers[1].Distant.K != 4 || d.Resolvers[1].Clients != 12 {
		t.Errorf("dns.json resolvers = %+v", d.Resolvers)
	}
	var fam *jfamily
	for i := range d.Families {
		if d.Families[i].ISP == "isp-a" && d.Families[i].Metric == "connect_ms" {
			fam = &d.Families[i]
		}
	}
	if fam == nil || fam.Pairs != 12 || float64(fam.PairedDiff) != 2 || !fam.PairedOK {
		t.Errorf("dns.json connect family diff = %+v, want 12 pairs, paired diff 2", fam)
	}
	for _, f := range []string{"resolvers.csv", "dns_times.csv", "families.csv"} {
		c, err := os.ReadFile(filepath.Join(out, f))
		if err != nil || !strings.Contains(string(c), "isp") && f != "dns_times.csv" {
			t.Errorf("%s: %v\n%s", f, err, c)
		}
	}
	page, _ := os.ReadFile(sum.HTML)
	for _, want := range []string{"<h2>Resolvers and DNS time</h2>", "<h2>IPv6 minus IPv4</h2>", "isp-a"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("index.html lacks %q", want)
		}
	}
}

// Files written before the family and dns columns existed still load,
// their rows without a family.
func TestLoadsFilesWithoutFamilyColumns(t *testing.T) {
	data := t.TempDir()
	at := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	v := 12.0
	r := pulseRow(at, "r1", "10.0.0.1", "http_ttfb")
	r.TTFBMs = &v
	// The pulses schema before families and dns pulses.
	writeColumns(t, filepath.Join(data, "pulses", measure.PartitionDir(at), "part-old.parquet"), []measure.PulseRow{r},
		[]string{"report_id", "received_time", "client_addr", "client_prefix", "prefix_group", "asn", "context", "appliance", "site",
			"type", "status", "bytes", "connect_ms", "ttfb_ms", "throughput_bps"})
	rows, _, err := Load(data, Filter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Family != "" || rows[0].Resolver != "" || rows[0].Value(TTFB) != 12 || !math.IsNaN(rows[0].DNSMs) {
		t.Errorf("rows = %+v", rows)
	}
}
