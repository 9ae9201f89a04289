package steer

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/rib"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// fullTablePath is the real Tier-1 table in the shared data, used in place.
var fullTablePath = filepath.Join("..", "..", "..", "shared", "data", "routes", "full-table-prefixes.txt.gz")

var (
	fullOnce  sync.Once
	fullSnap  *Snapshot
	fullAddrs []netip.Addr
	fullErr   error
)

// fullTable builds a steering snapshot over the 1.06M-prefix table: every
// prefix is heard by two IXP appliances (a full table learned at an
// exchange), and one in eight also by an embedded appliance of an ISP.
func fullTable(b *testing.B) (*Snapshot, []netip.Addr) {
	b.Helper()
	fullOnce.Do(func() {
		f, err := os.Open(fullTablePath)
		if err != nil {
			fullErr = err
			return
		}
		defer f.Close()
		r, err := rib.OpenMaybeGzip(f)
		if err != nil {
			fullErr = err
			return
		}
		prefixes, err := rib.LoadPrefixList(r)
		if err != nil {
			fullErr = err
			return
		}
		routes := map[string][]rib.Route{}
		rng := rand.New(rand.NewPCG(1, 2))
		for i, p := range prefixes {
			route := rib.Route{Prefix: p, Attrs: rib.Attrs{LocalPref: 100, ASPath: []uint32{64600, uint32(64512 + i%100)}, EBGP: true}}
			routes["x1"] = append(routes["x1"], route)
			routes["x2"] = append(routes["x2"], route)
			if i%8 == 0 {
				emb := route
				emb.ASPath = emb.ASPath[1:]
				routes["e1"] = append(routes["e1"], emb)
				routes["e2"] = append(routes["e2"], emb)
			}
			if len(fullAddrs) < 1<<16 && rng.IntN(16) == 0 {
				fullAddrs = append(fullAddrs, randomAddrIn(rng, p))
			}
		}
		t, err := rib.NewTable(routes)
		if err != nil {
			fullErr = err
			return
		}
		holds := map[string]bool{file: true}
		as := map[string]*Appliance{}
		for _, a := range []struct {
			id, site string
			kind     config.SiteKind
		}{{"e1", "emb", config.SiteEmbedded}, {"e2", "emb", config.SiteEmbedded}, {"x1", "ix", config.SiteIXP}, {"x2", "ix2", config.SiteIXP}, {"f1", "fb", config.SiteFallback}} {
			as[a.id] = &Appliance{ID: a.id, Site: a.site, Kind: a.kind, BaseURL: "http://" + a.id + ":8080", Serving: true, Holds: holds}
		}
		fullSnap = &Snapshot{Routes: t, Appliances: as, Global: []string{"f1"}}
	})
	if fullErr != nil {
		b.Fatalf("full table from %s: %v (the shared data must sit beside the repository)", fullTablePath, fullErr)
	}
	return fullSnap, fullAddrs
}

func randomAddrIn(rng *rand.Rand, p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		if rng.IntN(2) == 1 {
			b[i/8] |= 1 << (7 - i%8)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// BenchmarkSteerFullTable is one steering decision (5 URLs for one file)
// for a random client over the 1.06M-prefix table, without URL signing.
// The target is ≥ 1,000,000 decisions/s per core.
func BenchmarkSteerFullTable(b *testing.B) {
	snap, addrs := fullTable(b)
	e := &Engine{}
	benchDecisions(b, e, snap, addrs)
}

// BenchmarkSteerFullTableMeasured has measurements move every client to
// the IXP site: the cost of Prefer and the promotion on every decision.
func BenchmarkSteerFullTableMeasured(b *testing.B) {
	snap, addrs := fullTable(b)
	snap.Measured = fakeMeasured{site: "ix", policy: EligibleEmbeddedIXP}
	e := &Engine{}
	benchDecisions(b, e, snap, addrs)
}

// BenchmarkSteerFullTableSigned adds URL signing (target ≥ 300,000/s).
func BenchmarkSteerFullTableSigned(b *testing.B) {
	snap, addrs := fullTable(b)
	ks := urlsign.Generate()
	e := &Engine{Keys: func() *urlsign.KeySet { return ks }, TokenTTL: time.Hour}
	benchDecisions(b, e, snap, addrs)
}

// benchDecisions runs decisions as the control plane's steering handler
// does: AppendRanked into a reused slice, then the token and every URL
// into a reused buffer.
func benchDecisions(b *testing.B, e *Engine, snap *Snapshot, addrs []netip.Addr) {
	var dst []Ranked
	var urls []byte
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		dst = e.AppendRanked(dst[:0], snap, addrs[i&(len(addrs)-1)], file, 5)
		token, err := e.Token(file)
		if err != nil || len(dst) < 3 {
			b.Fatalf("AppendRanked = %d choices, token %v", len(dst), err)
		}
		urls = urls[:0]
		for _, r := range dst {
			urls = AppendURL(urls, r.Appliance.BaseURL, token, file)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

// BenchmarkLookupFullTable is the route lookup alone, for comparison.
func BenchmarkLookupFullTable(b *testing.B) {
	snap, addrs := fullTable(b)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		snap.Routes.Lookup(addrs[i&(len(addrs)-1)])
		i++
	}
}
