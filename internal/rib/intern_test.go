package rib

import (
	"net/netip"
	"runtime"
	"testing"
	"time"
)

func TestInternSharesEqualAttrs(t *testing.T) {
	path := []uint32{64500, 64501}
	a := Attrs{LocalPref: 100, ASPath: path, PeerRouterID: netip.MustParseAddr("192.0.2.1")}
	b := Attrs{LocalPref: 100, ASPath: []uint32{64500, 64501}, PeerRouterID: netip.MustParseAddr("192.0.2.1")}
	pa, pb := intern(&a), intern(&b)
	if pa != pb {
		t.Fatal("equal attributes interned to different sets")
	}
	path[0] = 1 // the caller's slice is not the interned one
	if pa.ASPath[0] != 64500 {
		t.Fatalf("interned AS path changed with the caller's slice: %v", pa.ASPath)
	}
	for _, c := range []Attrs{
		{LocalPref: 200, ASPath: b.ASPath, PeerRouterID: b.PeerRouterID},
		{LocalPref: 100, ASPath: []uint32{64500}, PeerRouterID: b.PeerRouterID},
		{LocalPref: 100, ASPath: b.ASPath, PeerRouterID: netip.MustParseAddr("::ffff:192.0.2.1")},
		{LocalPref: 100, ASPath: b.ASPath, PeerRouterID: b.PeerRouterID, EBGP: true},
	} {
		if intern(&c) == pb {
			t.Errorf("%+v interned to the same set as %+v", c, b)
		}
	}
}

func TestTableSharesAttrsAcrossPrefixes(t *testing.T) {
	attrs := Attrs{LocalPref: 100, ASPath: []uint32{64500}}
	tbl, err := NewTable(map[string][]Route{"a": {
		{Prefix: pfx("192.0.2.0/24"), Attrs: attrs},
		{Prefix: pfx("198.51.100.0/24"), Attrs: Attrs{LocalPref: 100, ASPath: []uint32{64500}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	c1, _ := tbl.Get(pfx("192.0.2.0/24"))
	c2, _ := tbl.Get(pfx("198.51.100.0/24"))
	if c1[0].Attrs != c2[0].Attrs {
		t.Error("two prefixes with equal attributes hold separate copies")
	}
}

// TestInternForgetsUnusedSets checks that the pool does not grow with
// route churn: once no table refers to a set it leaves the pool.
func TestInternForgetsUnusedSets(t *testing.T) {
	a := &Attrs{LocalPref: 4242, ASPath: []uint32{64999, 64998, 64997}}
	h := interned.hash(a)
	intern(a) // referenced by nothing once this returns
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		interned.mu.Lock()
		n := len(interned.sets[h])
		interned.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool still holds %d sets for an unreferenced attribute set", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
