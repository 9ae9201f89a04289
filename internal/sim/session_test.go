package sim

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ocdn/ocdn/internal/sim/world"
	"github.com/ocdn/ocdn/internal/steer"
)

// The shard's route hint must answer exactly what the trie answers for
// every client address it is told about, including addresses of a
// prefix with more specifics inside it and a duplicated prefix.
func TestRouteHintMatchesTrie(t *testing.T) {
	w := testWorld(t)
	// A duplicate of a prefix: the trie keeps one index for it.
	w.Prefixes = append(w.Prefixes, world.Prefix{Prefix: w.Prefixes[5].Prefix, ASN: 64504, Metro: 2, Subscribers: 10})
	sm, err := New(w, testScenario(t), Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	hint := routeHint{rib: sm.rib}
	routed := 0
	for pi := range w.Prefixes {
		for range 20 {
			a, ok := sm.clientAddr(int32(pi), rng)
			if !ok {
				continue
			}
			hint.pi, hint.ok = int32(pi), true
			hp, hc, hok := hint.Lookup(a)
			tp, tc, tok := sm.rib.Lookup(a)
			if hp != tp || hok != tok || !slices.Equal(hc, tc) {
				t.Fatalf("prefix %d, address %s: hint says %s %v, trie %s %v", pi, a, hp, hok, tp, tok)
			}
			routed++
		}
	}
	if routed < 20*(len(w.Prefixes)-2) {
		t.Errorf("%d of %d drawn addresses had a checked route: want all but the duplicate's", routed, 20*len(w.Prefixes))
	}
	if sm.rib.pfx[len(w.Prefixes)-1].has(pfxOwn) == sm.rib.pfx[5].has(pfxOwn) {
		t.Error("a duplicated prefix: exactly one of its indexes is the trie's")
	}
	if _, ok := sm.clientAddr(int32(len(w.Prefixes)-1), rng); ok && !sm.rib.pfx[len(w.Prefixes)-1].has(pfxOwn) {
		t.Error("an address of the duplicate the trie does not hold was marked routed")
	}
}

// Steering over a worker's views (Holds shown per decision) must answer
// exactly what it answers over appliances that carry their whole
// holdings, as the control plane's snapshot does.
func TestViewsSteerAsFullHoldings(t *testing.T) {
	sc := testScenario(t, "storage_scale: 1", "storage_scale: 0.3")
	sm, err := New(testWorld(t), sc, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := sm.prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Some appliances out of rotation or shedding load.
	for i, a := range sm.st.apps {
		switch i % 5 {
		case 1:
			a.st.Serving, a.st.State = false, "down"
		case 2:
			a.st.State, a.st.Weight = "overloaded", 0.4
		}
	}
	full := steer.Snapshot{Routes: sm.rib, Global: sm.snap.Global, Appliances: map[string]*steer.Appliance{}}
	held := 0
	for _, a := range sm.st.apps {
		c := *a.st
		c.Holds = map[string]bool{}
		for fi := range sm.cat.files {
			if a.holds.has(int32(fi)) {
				c.Holds[sm.cat.files[fi].Path] = true
				held++
			}
		}
		full.Appliances[a.id] = &c
	}
	if held == 0 {
		t.Fatal("no appliance holds anything after the warm start")
	}
	v := sm.newViews()
	v.sync(sm)
	sh := sm.shards[0]
	sh.use(v)
	rng := rand.New(rand.NewPCG(3, 4))
	var got, want []steer.Ranked
	answered := 0
	for range 20000 {
		m := int(rng.IntN(len(sm.metroPrefix)))
		if sm.metroPrefix[m].len() == 0 {
			continue
		}
		pi := sm.metroPrefix[m].draw(rng)
		addr, routed := sm.clientAddr(pi, rng)
		fi := int32(rng.IntN(len(sm.cat.files)))
		path := sm.cat.files[fi].Path
		route, ok := pi, routed
		if !ok {
			route, ok = sm.rib.lookupIndex(addr)
		}
		sh.route.pi, sh.route.ok = route, ok
		var cands []int32
		if ok {
			cands = sm.rib.candidateApps(route)
		}
		v.show(sm, fi, cands)
		v.show(sm, fi, sm.globalApps)
		got = sm.engine.AppendRanked(got[:0], &sh.snap, addr, path, 3)
		want = sm.engine.AppendRanked(want[:0], &full, addr, path, 3)
		if len(got) != len(want) {
			t.Fatalf("%s %s: views answered %d appliances, full holdings %d", addr, path, len(got), len(want))
		}
		for i := range got {
			if got[i].Appliance.ID != want[i].Appliance.ID || got[i].Reason != want[i].Reason {
				t.Fatalf("%s %s #%d: views %s (%s), full holdings %s (%s)", addr, path, i, got[i].Appliance.ID, got[i].Reason, want[i].Appliance.ID, want[i].Reason)
			}
		}
		if len(got) > 0 {
			answered++
		}
	}
	if answered < 1000 {
		t.Errorf("only %d decisions named an appliance: the comparison says little", answered)
	}
}
