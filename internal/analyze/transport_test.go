package analyze

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/ocdn/ocdn/internal/measure"
)

// transportFixture is a site s1 whose clients (ten /24s of the group
// 10.0.0.0/16) reach it with a 20 ms min RTT: a cubic arm whose samples
// sit 100 ms above the min RTT (a full queue), a bbr arm 30 ms above,
// 1% of segments retransmitted everywhere but in 10.0.9.0/24 (5%); and
// pulses whose connect time is 21 ms.
func transportFixture(at time.Time) ([]measure.TransportRow, []Row) {
	rng := rand.New(rand.NewPCG(7, 7))
	var rows []measure.TransportRow
	var pulses []Row
	for g := range 10 {
		prefix := fmt.Sprintf("10.0.%d.0/24", g)
		loss := 0.01
		if g == 9 {
			loss = 0.05
		}
		for c := range 8 {
			arm, infl := "cubic", 100.0
			if c%2 == 1 {
				arm, infl = "bbr", 30.0
			}
			start := at.Add(time.Duration(g*100+c) * time.Second)
			segs := int64(2000 + rng.IntN(500))
			for s := range 6 {
				reason := "periodic"
				if s == 5 {
					reason = "final"
				}
				age := time.Duration(s+1) * time.Second
				out := segs * int64(s+1) / 6
				rows = append(rows, measure.TransportRow{ReportID: "b", ReceivedTime: at.UnixMicro(), SampleTime: start.Add(age).UnixMicro(),
					Appliance: "s1-a", Site: "s1", ClientPrefix: prefix, Experiment: "cc", Arm: arm, CongestionControl: arm, Reason: reason,
					ConnAgeUs: age.Microseconds(), MinRTTUs: 20_000, SmoothedRTTUs: 20_000 + int64((infl+4*rng.NormFloat64())*1000),
					RetransmittedSegments: int64(math.Round(loss * float64(out))), DataSegmentsOut: out,
					BytesAcked: out * 1448, BusyUs: age.Microseconds()})
			}
		}
		for i := range 20 {
			r := ttfbRow(fmt.Sprint("p", g, i), clientAddr(g, 0), prefix, "s1", "s1", at, 50)
			r.PrefixGroup = "10.0.0.0/16"
			r.Values[Connect] = 21 + rng.Float64()
			pulses = append(pulses, r)
		}
	}
	return rows, pulses
}

func TestTransportSection(t *testing.T) {
	rows, pulses := transportFixture(t0)
	// Playback records of the experiment's clients: bbr's start faster.
	var sessions []Session
	exp := &ExperimentMeta{Name: "cc", Control: "cubic"}
	for c := range 40 {
		arm, startup := "cubic", 900.0
		if c%2 == 1 {
			arm, startup = "bbr", 600.0
		}
		sessions = append(sessions, Session{ReportID: fmt.Sprint("q", c), ClientAddr: clientAddr(c%10, c), Prefix: fmt.Sprintf("10.0.%d.0/24", c%10),
			Arm: arm, Exp: exp, StartupMs: startup + float64(c), RebufferRatio: 0, BitrateKbps: 1000})
	}
	res := Transport(rows, pulses, sessions, 0.95, 200, rand.New(rand.NewPCG(1, 1)))
	// The same data and seed give the same intervals.
	if again := Transport(rows, pulses, sessions, 0.95, 200, rand.New(rand.NewPCG(1, 1))); !reflect.DeepEqual(nanToZero(again.Prefixes), nanToZero(res.Prefixes)) {
		t.Errorf("Transport is not reproducible:\n%+v\n%+v", again.Prefixes, res.Prefixes)
	}
	if res.Samples != len(rows) || res.Connections != 80 {
		t.Fatalf("Transport: %d samples, %d connections; want %d, 80", res.Samples, res.Connections, len(rows))
	}
	if len(res.Sites) != 1 {
		t.Fatalf("Sites = %+v, want one (s1, 10.0.0.0/16)", res.Sites)
	}
	s := res.Sites[0]
	if s.Site != "s1" || s.PrefixGroup != "10.0.0.0/16" || s.Connections != 80 || !s.MinRTTOK || !s.ConnectOK {
		t.Fatalf("site = %+v", s)
	}
	if s.MinRTTMs != 20 || s.DiffMs < 1 || s.DiffMs > 2 {
		t.Errorf("min RTT %v ms, connect − min RTT %v ms; want 20 and 1–2", s.MinRTTMs, s.DiffMs)
	}
	if p50 := s.Retrans[0]; !p50.OK || math.Abs(p50.Est-0.01) > 0.001 {
		t.Errorf("retransmission p50 = %+v, want ≈ 0.01", p50)
	}
	if p99 := s.Retrans[2]; p99.OK {
		t.Errorf("retransmission p99 of 80 connections = %+v, want insufficient samples", p99)
	}
	top := res.Prefixes[0]
	if top.Prefix != "10.0.9.0/24" || !top.LossStandsOut || top.InflationStandsOut {
		t.Errorf("first prefix = %+v, want 10.0.9.0/24 standing out by loss only", top)
	}
	for _, p := range res.Prefixes[1:] {
		if p.LossStandsOut {
			t.Errorf("prefix %s stands out (%.4f [%.4f, %.4f] against %.4f), want only 10.0.9.0/24", p.Prefix, p.RetransRate, p.RetransLo, p.RetransHi, p.SiteRetransRate)
		}
	}
	if len(res.Arms) != 1 {
		t.Fatalf("Arms = %+v, want the experiment cc", res.Arms)
	}
	e := res.Arms[0]
	if e.Control != "cubic" || e.CongestionControl["bbr"] != "bbr" || e.Retrans["bbr"].Connections != 40 {
		t.Errorf("experiment = control %q, cc %v, retrans %v", e.Control, e.CongestionControl, e.Retrans)
	}
	found := false
	startup := 0
	for _, r := range e.Results {
		if r.Metric == "startup_ms" {
			startup++
			if r.Arm == "bbr" && !(r.DiffOK && r.Diff < -250 && r.Significant) {
				t.Errorf("bbr startup against cubic = %v [%v, %v], want ≈ −300 ms, significant", r.Diff, r.DiffLo, r.DiffHi)
			}
		}
		if r.Arm == "bbr" && r.Metric == MetricRTTInflation {
			found = true
			if !r.Significant || !(r.DiffHi < 0) || math.Abs(r.Diff+70) > 5 {
				t.Errorf("bbr RTT inflation against cubic = %v [%v, %v], want ≈ −70 ms, significant", r.Diff, r.DiffLo, r.DiffHi)
			}
		}
	}
	if !found || startup != 2 {
		t.Errorf("results %+v: want bbr's rtt_inflation_ms and both arms' startup_ms", e.Results)
	}
}

// TestRunTransport: with a transport table, ocdn analyze writes the
// section in every form (CSV, JSON, HTML); without one, says so.
func TestRunTransport(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 5, 0, 0, time.UTC)
	rows, _ := transportFixture(at)
	data, out := t.TempDir(), t.TempDir()
	writePulses(t, data, at, "part-0.parquet", somePulseRows(at, 30))
	writeTable(t, data, "transport", at, rows)
	sum, err := Run(context.Background(), runOpts(data, out))
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if sum.Transport == nil || sum.TransportJSON == "" {
		t.Fatalf("Run: transport %v, JSON %q; want the section", sum.Transport, sum.TransportJSON)
	}
	b, err := os.ReadFile(sum.TransportJSON)
	if err != nil {
		t.Fatal(err)
	}
	var js struct {
		Connections int `json:"connections"`
		Experiments []struct {
			Control string `json:"control"`
			Retrans map[string]struct {
				Rate *float64 `json:"rate"`
			} `json:"pooled_retrans_rate"`
		} `json:"experiments"`
	}
	if err := json.Unmarshal(b, &js); err != nil {
		t.Fatalf("transport.json: %v", err)
	}
	if js.Connections != 80 || len(js.Experiments) != 1 || js.Experiments[0].Retrans["cubic"].Rate == nil {
		t.Errorf("transport.json = %.400s", b)
	}
	for _, name := range []string{"transport_sites.csv", "transport_prefixes.csv", "transport_arms.csv"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if lines := strings.Count(string(b), "\n"); lines < 2 {
			t.Errorf("%s has %d lines, want a header and rows", name, lines)
		}
	}
	html, _ := os.ReadFile(sum.HTML)
	for _, want := range []string{"Transport (the servers", "10.0.9.0/24", "rtt_inflation_ms"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("index.html lacks %q", want)
		}
	}

	// Without a transport table.
	data2, out2 := t.TempDir(), t.TempDir()
	writePulses(t, data2, at, "part-0.parquet", somePulseRows(at, 30))
	sum, err = Run(context.Background(), runOpts(data2, out2))
	if err != nil || sum.Transport != nil || sum.TransportJSON != "" {
		t.Fatalf("Run without transport = %v, transport %v, JSON %q", err, sum.Transport, sum.TransportJSON)
	}
	if html, _ := os.ReadFile(sum.HTML); !strings.Contains(string(html), "No transport data") {
		t.Error("index.html does not say there is no transport data")
	}
}

// A transport table without a column this version reads is refused,
// naming the file and the column.
func TestLoadTransportSchema(t *testing.T) {
	type old struct {
		ReportID string `parquet:"report_id"`
		Site     string `parquet:"site"`
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "transport", measure.PartitionDir(t0), "part-0.parquet")
	writeParquet(t, p, []old{{"r", "s"}})
	_, ok, err := LoadTransport(dir, Filter{})
	if !ok || !errors.Is(err, ErrNewerSchema) || !strings.Contains(err.Error(), "client_prefix") || !strings.Contains(err.Error(), p) {
		t.Errorf("LoadTransport(old schema) = %v, %v; want ErrNewerSchema naming %s and client_prefix", ok, err, p)
	}
	if rows, ok, err := LoadTransport(t.TempDir(), Filter{}); rows != nil || ok || err != nil {
		t.Errorf("LoadTransport(no table) = %v, %v, %v; want nothing", rows, ok, err)
	}
}

// A corrupt transport file is refused naming it, never a panic.
func FuzzLoadTransportCorrupt(f *testing.F) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	rows, _ := transportFixture(at)
	p := filepath.Join(f.TempDir(), "seed.parquet")
	if err := parquet.WriteFile(p, rows[:50]); err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(p)
	f.Add(good, 4, byte(0xff))
	fuzzCorrupt(f, "transport", at, good, func(dir string) error {
		rows, ok, err := LoadTransport(dir, Filter{})
		if err == nil && ok {
			Transport(rows, nil, nil, 0.95, 10, rand.New(rand.NewPCG(1, 1))) // any rows read are analysable
		}
		return err
	})
}

// nanToZero makes NaN intervals comparable with reflect.DeepEqual.
func nanToZero(ps []PrefixTransport) []PrefixTransport {
	out := slices.Clone(ps)
	for i := range out {
		for _, f := range []*float64{&out[i].RetransLo, &out[i].RetransHi, &out[i].InflationLo, &out[i].InflationMs, &out[i].InflationHi} {
			if math.IsNaN(*f) {
				*f = 0
			}
		}
	}
	return out
}

// TestTransportArmsPerSite: an experiment whose connections are at two
// sites is compared pooled and at each site, where a congestion control's
// effect can differ in sign: BBR inflates RTT less than CUBIC at s1 (a
// deep clean queue) and more at s2 (as on a lossy line).
func TestTransportArmsPerSite(t *testing.T) {
	rows, _ := transportFixture(t0)
	rng := rand.New(rand.NewPCG(3, 3))
	for _, r := range slices.Clone(rows) {
		r.Site, r.Appliance = "s2", "s2-a"
		infl := 10.0
		if r.Arm == "bbr" {
			infl = 40
		}
		r.SmoothedRTTUs = r.MinRTTUs + int64((infl+2*rng.NormFloat64())*1000)
		rows = append(rows, r)
	}
	res := Transport(rows, nil, nil, 0.95, 200, rand.New(rand.NewPCG(1, 1)))
	var sites []string
	for _, e := range res.Arms {
		sites = append(sites, e.Site)
	}
	if !slices.Equal(sites, []string{"", "s1", "s2"}) {
		t.Fatalf("comparisons at sites %q, want every site, then s1 and s2", sites)
	}
	inflation := func(e TransportArms) ArmResult {
		for _, r := range e.Results {
			if r.Arm == "bbr" && r.Metric == MetricRTTInflation {
				return r
			}
		}
		t.Fatalf("%s: no bbr RTT inflation in %+v", e.Site, e.Results)
		return ArmResult{}
	}
	if r := inflation(res.Arms[1]); !r.Significant || math.Abs(r.Diff+70) > 5 {
		t.Errorf("s1: bbr − cubic inflation %v [%v, %v], want ≈ −70 ms, significant", r.Diff, r.DiffLo, r.DiffHi)
	}
	if r := inflation(res.Arms[2]); !r.Significant || math.Abs(r.Diff-30) > 5 {
		t.Errorf("s2: bbr − cubic inflation %v [%v, %v], want ≈ +30 ms, significant", r.Diff, r.DiffLo, r.DiffHi)
	}
	if c := res.Arms[1].Retrans["bbr"].Connections; c != 40 {
		t.Errorf("s1: bbr pooled over %d connections, want 40 (its own)", c)
	}
}

// A prefix with no pulses or sessions of its own (a dual-stack client
// reports those from its IPv6 address) joins the group that contains
// it; a prefix no group contains stands for itself.
func TestTransportGroupByContainment(t *testing.T) {
	rows, pulses := transportFixture(t0)
	var kept []Row
	for _, p := range pulses {
		if p.Prefix != "10.0.3.0/24" {
			kept = append(kept, p)
		}
	}
	stray := rows[0]
	stray.ClientPrefix, stray.SampleTime = "192.0.2.0/24", stray.SampleTime+1
	rows = append(rows, stray)
	res := Transport(rows, kept, nil, 0.95, 50, rand.New(rand.NewPCG(1, 1)))
	var groups []string
	for _, s := range res.Sites {
		groups = append(groups, fmt.Sprintf("%s:%d", s.PrefixGroup, s.Connections))
	}
	if want := []string{"10.0.0.0/16:80", "192.0.2.0/24:1"}; !slices.Equal(groups, want) {
		t.Errorf("site rows (group:connections) = %v, want %v", groups, want)
	}
}
