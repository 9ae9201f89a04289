package rib

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// cmpOpts compares netip values by ==, which go-cmp cannot do on its own
// because of their unexported fields.
var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestCompare(t *testing.T) {
	base := Route{Attrs: Attrs{LocalPref: 100, ASPath: []uint32{1, 2}, Origin: OriginIGP, MED: 10, PeerRouterID: netip.MustParseAddr("10.0.0.2")}}
	with := func(f func(*Route)) Route { r := base; f(&r); return r }
	tests := []struct {
		name         string
		better, wors Route
	}{
		{"higher local pref", with(func(r *Route) { r.LocalPref = 200 }), base},
		{"local pref beats path length", with(func(r *Route) { r.LocalPref = 200; r.ASPath = []uint32{1, 2, 3, 4} }), base},
		{"shorter as path", with(func(r *Route) { r.ASPath = []uint32{1} }), base},
		{"as path beats origin", with(func(r *Route) { r.ASPath = []uint32{1}; r.Origin = OriginIncomplete }), base},
		{"lower origin", base, with(func(r *Route) { r.Origin = OriginEGP })},
		{"origin beats med", with(func(r *Route) { r.MED = 1000 }), with(func(r *Route) { r.Origin = OriginIncomplete })},
		{"lower med", with(func(r *Route) { r.MED = 5 }), base},
		{"med beats ebgp", base, with(func(r *Route) { r.MED = 11; r.EBGP = true })},
		{"ebgp over ibgp", with(func(r *Route) { r.EBGP = true }), base},
		{"ebgp beats router id", with(func(r *Route) { r.EBGP = true; r.PeerRouterID = netip.MustParseAddr("10.0.0.9") }), base},
		{"lower router id", with(func(r *Route) { r.PeerRouterID = netip.MustParseAddr("10.0.0.1") }), base},
	}
	for _, tt := range tests {
		if got := Compare(tt.better, tt.wors); got >= 0 {
			t.Errorf("%s: Compare(better, worse) = %d, want < 0", tt.name, got)
		}
		if got := Compare(tt.wors, tt.better); got <= 0 {
			t.Errorf("%s: Compare(worse, better) = %d, want > 0", tt.name, got)
		}
	}
	if got := Compare(base, with(func(r *Route) { r.NextHop = netip.MustParseAddr("192.0.2.1") })); got != 0 {
		t.Errorf("Compare(routes differing only in next hop) = %d, want 0", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		r    Route
		want bool
	}{
		{Route{Prefix: pfx("10.0.0.0/8")}, true},
		{Route{Prefix: pfx("2001:db8::/32"), Attrs: Attrs{Origin: OriginIncomplete}}, true},
		{Route{}, false},
		{Route{Prefix: pfx("10.0.0.1/8")}, false},
		{Route{Prefix: pfx("10.0.0.0/8"), Attrs: Attrs{Origin: 3}}, false},
	}
	for _, tt := range tests {
		if err := tt.r.Validate(); (err == nil) != tt.want {
			t.Errorf("Route{Prefix: %v, Origin: %d}.Validate() = %v, want ok=%v", tt.r.Prefix, tt.r.Origin, err, tt.want)
		}
	}
}

func TestCandidatesInBGPOrder(t *testing.T) {
	p := pfx("203.0.113.0/24")
	rib := New()
	routes := map[string]Route{
		"c-longpath": {Prefix: p, Attrs: Attrs{LocalPref: 100, ASPath: []uint32{1, 2, 3}}},
		"a-tie":      {Prefix: p, Attrs: Attrs{LocalPref: 100, ASPath: []uint32{1}}},
		"b-tie":      {Prefix: p, Attrs: Attrs{LocalPref: 100, ASPath: []uint32{1}}},
		"z-pref":     {Prefix: p, Attrs: Attrs{LocalPref: 300, ASPath: []uint32{1, 2, 3, 4}}},
		"d-ebgp":     {Prefix: p, Attrs: Attrs{LocalPref: 100, ASPath: []uint32{9}, EBGP: true}},
	}
	// Insert in an order unrelated to the expected one.
	for _, app := range []string{"b-tie", "c-longpath", "z-pref", "a-tie", "d-ebgp"} {
		if err := rib.Apply(app, []Route{routes[app]}, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, cands, ok := rib.Snapshot().Lookup(netip.MustParseAddr("203.0.113.7"))
	if !ok {
		t.Fatal("Lookup() found nothing")
	}
	var got []string
	for _, c := range cands {
		got = append(got, c.Appliance)
	}
	want := []string{"z-pref", "d-ebgp", "a-tie", "b-tie", "c-longpath"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("candidate order (-want +got):\n%s", diff)
	}
}

func TestRIBReplaceApplyDrop(t *testing.T) {
	r := New()
	a1 := Route{Prefix: pfx("10.0.0.0/8"), Attrs: Attrs{LocalPref: 100}}
	a2 := Route{Prefix: pfx("10.1.0.0/16"), Attrs: Attrs{LocalPref: 100}}
	a3 := Route{Prefix: pfx("2001:db8::/32"), Attrs: Attrs{LocalPref: 100}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r.Replace("app1", []Route{a1, a2}))
	must(r.Replace("app2", []Route{a1}))
	before := r.Snapshot()

	// A new snapshot replaces app1's set: 10.1/16 goes, the IPv6 route comes.
	must(r.Replace("app1", []Route{a1, a3}))
	if diff := cmp.Diff([]Route{a1, a3}, r.Routes("app1"), cmpOpts); diff != "" {
		t.Errorf("Routes(app1) after Replace (-want +got):\n%s", diff)
	}
	if p, _, _ := r.Snapshot().Lookup(netip.MustParseAddr("10.1.2.3")); p != a1.Prefix {
		t.Errorf("Lookup(10.1.2.3) after Replace = %v, want %v", p, a1.Prefix)
	}
	// Published snapshots never change.
	if p, _, _ := before.Lookup(netip.MustParseAddr("10.1.2.3")); p != a2.Prefix {
		t.Errorf("old snapshot Lookup(10.1.2.3) = %v, want %v", p, a2.Prefix)
	}

	// Apply: withdraw then announce; a withdrawn-and-announced prefix stays.
	better := a1
	better.LocalPref = 500
	must(r.Apply("app1", []Route{better, a2}, []netip.Prefix{a1.Prefix, a3.Prefix, pfx("192.0.2.0/24")}))
	if diff := cmp.Diff([]Route{better, a2}, r.Routes("app1"), cmpOpts); diff != "" {
		t.Errorf("Routes(app1) after Apply (-want +got):\n%s", diff)
	}
	_, cands, _ := r.Snapshot().Lookup(netip.MustParseAddr("10.200.0.1"))
	if got := []string{cands[0].Appliance, cands[1].Appliance}; !slices.Equal(got, []string{"app1", "app2"}) {
		t.Errorf("candidates for 10.200.0.1 = %v, want [app1 app2]", got)
	}

	r.Drop("app1")
	if got := r.Routes("app1"); len(got) != 0 {
		t.Errorf("Routes(app1) after Drop = %v, want none", got)
	}
	if got, want := r.Snapshot().Len(), 1; got != want {
		t.Errorf("Len() after Drop = %d, want %d", got, want)
	}
	if diff := cmp.Diff([]string{"app2"}, r.Appliances()); diff != "" {
		t.Errorf("Appliances() (-want +got):\n%s", diff)
	}
	r.Drop("app2")
	if _, _, ok := r.Snapshot().Lookup(netip.MustParseAddr("10.0.0.1")); ok || r.Snapshot().Len() != 0 {
		t.Errorf("table not empty after dropping every appliance")
	}

	// Invalid input changes nothing.
	must(r.Replace("app3", []Route{a1}))
	snap := r.Snapshot()
	if err := r.Replace("app3", []Route{a2, {Prefix: pfx("10.0.0.1/8")}}); err == nil {
		t.Error("Replace(host bits set) = nil error")
	}
	if err := r.Apply("app3", []Route{{}}, []netip.Prefix{a1.Prefix}); err == nil {
		t.Error("Apply(invalid route) = nil error")
	}
	if r.Snapshot() != snap {
		t.Error("failed update published a new snapshot")
	}
}

func TestImportMRTKeepsTableOnError(t *testing.T) {
	r := New()
	if err := r.ImportMRT("quagga", openData(t, "sample-quagga_rib.mrt")); err != nil {
		t.Fatalf("ImportMRT(quagga sample) = %v", err)
	}
	// The sample has 9 entries for 6 prefixes; one route per prefix is kept.
	if got := len(r.Routes("quagga")); got != 6 {
		t.Errorf("Routes(quagga) has %d routes, want 6", got)
	}
	snap := r.Snapshot()
	good := readData(t, "sample-openbgpd_rib_table-v2.mrt")
	bad := good[:len(good)-10]
	if err := r.ImportMRT("quagga", bytes.NewReader(bad)); err == nil {
		t.Fatal("ImportMRT(truncated) = nil error")
	}
	if r.Snapshot() != snap || len(r.Routes("quagga")) != 6 {
		t.Error("failed import changed the table")
	}
}

// randomRoutes returns routes over a deliberately small address space so
// that prefixes nest and several appliances share prefixes.
func randomRoutes(rng *rand.Rand, n int, appliances []string) []heard {
	out := make([]heard, 0, n)
	for range n {
		var p netip.Prefix
		if rng.IntN(4) == 0 {
			a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(rng.IntN(4)), byte(rng.IntN(256))})
			p = netip.PrefixFrom(a, 32+rng.IntN(17)).Masked()
		} else {
			a := netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256))})
			p = netip.PrefixFrom(a, 8+rng.IntN(25)).Masked()
		}
		out = append(out, heard{
			Appliance: appliances[rng.IntN(len(appliances))],
			Route:     Route{Prefix: p, Attrs: Attrs{LocalPref: uint32(rng.IntN(3)) * 100, ASPath: make([]uint32, rng.IntN(4)), MED: uint32(rng.IntN(3))}},
		})
	}
	return out
}

// heard is one appliance's route.
type heard struct {
	Appliance string
	Route     Route
}

// byAppliance groups routes as NewTable takes them.
func byAppliance(all []heard) map[string][]Route {
	m := map[string][]Route{}
	for _, h := range all {
		m[h.Appliance] = append(m[h.Appliance], h.Route)
	}
	return m
}

// linearLookup is the reference longest-prefix match: a scan over every
// route, keeping each appliance's best.
func linearLookup(all []heard, addr netip.Addr) (netip.Prefix, []Candidate) {
	best := netip.Prefix{}
	for _, c := range all {
		if c.Route.Prefix.Contains(addr) && (!best.IsValid() || c.Route.Prefix.Bits() > best.Bits()) {
			best = c.Route.Prefix
		}
	}
	var cands []Candidate
	for _, c := range all {
		if c.Route.Prefix == best {
			cands = append(cands, Candidate{Appliance: c.Appliance, Attrs: &c.Route.Attrs})
		}
	}
	slices.SortFunc(cands, compareCandidates)
	var out []Candidate
	for _, c := range cands {
		if !slices.ContainsFunc(out, func(o Candidate) bool { return o.Appliance == c.Appliance }) {
			out = append(out, c)
		}
	}
	return best, out
}

func randomAddr(rng *rand.Rand) netip.Addr {
	if rng.IntN(4) == 0 {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256))})
	}
	return netip.AddrFrom4([4]byte{10, byte(rng.IntN(5)), byte(rng.IntN(256)), byte(rng.IntN(256))})
}

// TestLookupMatchesLinearScan checks both ways of building a table, and
// both update paths of the RIB (copy-on-write and clone-in-place), against
// a brute-force longest-prefix match on random addresses.
func TestLookupMatchesLinearScan(t *testing.T) {
	apps := []string{"a", "b", "c", "d"}
	for _, n := range []int{50, 6000} { // Replace batches below and above bulkThreshold
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(n)))
			all := randomRoutes(rng, n, apps)

			direct, err := NewTable(byAppliance(all))
			if err != nil {
				t.Fatal(err)
			}
			rib := New()
			for i, c := range all { // one update per route, then batches
				if i < n/2 {
					if err := rib.Apply(c.Appliance, []Route{c.Route}, nil); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, app := range apps {
				var rs []Route
				for _, c := range all {
					if c.Appliance == app {
						rs = append(rs, c.Route)
					}
				}
				if err := rib.Replace(app, rs); err != nil {
					t.Fatal(err)
				}
			}
			// Updates superseded by Replace must leave no trace.
			want := map[netip.Prefix]bool{}
			for _, c := range all {
				want[c.Route.Prefix] = true
			}
			for name, tbl := range map[string]*Table{"NewTable": direct, "RIB": rib.Snapshot()} {
				if tbl.Len() != len(want) {
					t.Errorf("%s: Len() = %d, want %d", name, tbl.Len(), len(want))
				}
				for range 2000 {
					addr := randomAddr(rng)
					wantP, wantC := linearLookup(all, addr)
					gotP, gotC, ok := tbl.Lookup(addr)
					if ok != wantP.IsValid() || gotP != wantP {
						t.Fatalf("%s: Lookup(%v) = %v, %v, want %v", name, addr, gotP, ok, wantP)
					}
					if diff := cmp.Diff(wantC, gotC, cmpOpts); diff != "" {
						t.Fatalf("%s: Lookup(%v) candidates (-want +got):\n%s", name, addr, diff)
					}
				}
			}
		})
	}
}

func TestLookupMappedAddressAndAllocs(t *testing.T) {
	tbl, err := NewTable(map[string][]Route{"a": {{Prefix: pfx("192.0.2.0/24")}}})
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddr("::ffff:192.0.2.10")
	if p, _, ok := tbl.Lookup(addr); !ok || p != pfx("192.0.2.0/24") {
		t.Errorf("Lookup(%v) = %v, %v, want 192.0.2.0/24", addr, p, ok)
	}
	if n := testing.AllocsPerRun(100, func() { tbl.Lookup(addr) }); n != 0 {
		t.Errorf("Lookup allocates %v times per call, want 0", n)
	}
}

// TestConcurrentLookupsDuringUpdates lets the race detector watch readers
// on published snapshots while a writer keeps changing the RIB.
func TestConcurrentLookupsDuringUpdates(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	all := randomRoutes(rng, 2000, []string{"a", "b"})
	r := New()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i, c := range all {
			if err := r.Apply(c.Appliance, []Route{c.Route}, nil); err != nil {
				t.Error(err)
				return
			}
			if i%500 == 499 {
				r.Drop("b")
			}
		}
	}()
	addrRng := rand.New(rand.NewPCG(10, 10))
	for {
		select {
		case <-done:
			return
		default:
		}
		addr := randomAddr(addrRng)
		if p, cands, ok := r.Snapshot().Lookup(addr); ok && (!p.Contains(addr) || len(cands) == 0) {
			t.Fatalf("Lookup(%v) = %v with %d candidates", addr, p, len(cands))
		}
	}
}
