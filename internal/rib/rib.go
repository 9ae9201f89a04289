package rib

import (
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gaissmai/bart"
)

// RIB owns the per-appliance route sets and publishes the merged Table.
// Writers are serialised; Snapshot and lookups on the returned Table never
// block, because every change builds a new Table that shares all untouched
// trie nodes with the previous one and is published with one atomic store.
type RIB struct {
	mu sync.Mutex // serialises writers; readers never take it
	// apps records which prefixes each appliance announced, so Replace can
	// withdraw what is missing from a new snapshot and Drop knows what to
	// remove; the routes themselves live only in the published table.
	// A bart.Lite costs a few tens of bytes per prefix, a third of a map's.
	apps map[string]*bart.Lite
	cur  atomic.Pointer[Table]
}

// New returns an empty RIB whose Snapshot is an empty table.
func New() *RIB {
	r := &RIB{apps: make(map[string]*bart.Lite)}
	r.cur.Store(&Table{bt: new(bart.Table[entry])})
	return r
}

// Snapshot returns the current table. It never blocks and never returns nil.
func (r *RIB) Snapshot() *Table { return r.cur.Load() }

// change is one announcement (attrs != nil, interned) or withdrawal of an
// appliance's route to prefix.
type change struct {
	prefix netip.Prefix
	attrs  *Attrs
}

// Replace makes routes the complete route set of appliance, as after a
// session (re)establishment or a full export. Prefixes the appliance had
// and routes does not contain are withdrawn. If routes holds several routes
// to one prefix, the best by Compare is kept. Nothing changes when any
// route is invalid.
func (r *RIB) Replace(appliance string, routes []Route) error {
	best := make(map[netip.Prefix]int, len(routes))
	for i, rt := range routes {
		if err := rt.Validate(); err != nil {
			return err
		}
		if j, ok := best[rt.Prefix]; !ok || Compare(rt, routes[j]) < 0 {
			best[rt.Prefix] = i
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.cur.Load()
	prev := r.apps[appliance]
	if prev == nil {
		prev = new(bart.Lite)
	}
	var changes []change
	for p := range prev.All() {
		if _, ok := best[p]; !ok {
			changes = append(changes, change{prefix: p})
		}
	}
	set := new(bart.Lite)
	var in interner
	for i := range routes { // in the caller's order, which interner exploits
		p := routes[i].Prefix
		if best[p] != i {
			continue // a better route to p comes elsewhere in routes
		}
		set.Insert(p)
		// Re-announcing an unchanged route would copy its trie path for
		// nothing; full re-exports after a session flap are mostly that.
		// A first export has nothing to compare against.
		if prev.Get(p) {
			cands, _ := cur.Get(p)
			if old, ok := candidateOf(cands, appliance); ok && old.Equal(&routes[i].Attrs) {
				continue
			}
		}
		changes = append(changes, change{prefix: p, attrs: in.intern(&routes[i].Attrs)})
	}
	r.commit(appliance, changes)
	r.setPrefixes(appliance, set)
	return nil
}

// setPrefixes records appliance's prefix set, forgetting empty ones. The
// caller holds r.mu.
func (r *RIB) setPrefixes(appliance string, set *bart.Lite) {
	if set.Size() == 0 {
		delete(r.apps, appliance)
	} else {
		r.apps[appliance] = set
	}
}

// Apply changes part of appliance's route set, as a BGP UPDATE does:
// withdrawals are applied first, then announcements, each replacing the
// appliance's previous route to that prefix. Withdrawing a prefix the
// appliance does not have is not an error. Nothing changes when any route
// is invalid.
func (r *RIB) Apply(appliance string, announce []Route, withdraw []netip.Prefix) error {
	for _, rt := range announce {
		if err := rt.Validate(); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	set := r.apps[appliance]
	if set == nil {
		set = new(bart.Lite)
	}
	changes := make([]change, 0, len(announce)+len(withdraw))
	for _, p := range withdraw {
		p = p.Masked()
		if set.Get(p) {
			set.Delete(p)
			changes = append(changes, change{prefix: p})
		}
	}
	var in interner
	for i := range announce {
		set.Insert(announce[i].Prefix)
		changes = append(changes, change{prefix: announce[i].Prefix, attrs: in.intern(&announce[i].Attrs)})
	}
	r.commit(appliance, changes)
	r.setPrefixes(appliance, set)
	return nil
}

// Drop withdraws every route of appliance, as when its session goes down.
func (r *RIB) Drop(appliance string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var changes []change
	if set := r.apps[appliance]; set != nil {
		for p := range set.All() {
			changes = append(changes, change{prefix: p})
		}
	}
	r.commit(appliance, changes)
	delete(r.apps, appliance)
}

// Routes returns appliance's current routes in CIDR order (IPv4 first, then by
// address, a covering prefix before the prefixes it covers).
func (r *RIB) Routes(appliance string) []Route {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.cur.Load()
	set := r.apps[appliance]
	if set == nil {
		return []Route{}
	}
	out := make([]Route, 0, set.Size())
	for p := range set.AllSorted() {
		cands, _ := t.Get(p)
		if attrs, ok := candidateOf(cands, appliance); ok {
			out = append(out, Route{Prefix: p, Attrs: *attrs})
		}
	}
	return out
}

// Appliances returns the appliances that currently have routes, sorted.
func (r *RIB) Appliances() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.apps))
}

// commit applies changes for one appliance and publishes the result. The
// caller holds r.mu.
//
// Small batches use bart's copy-on-write operations, which copy only the
// nodes on the path to each prefix, so a single update costs O(prefix
// length) however large the table is. Past a size-dependent threshold one
// full clone followed by in-place updates is cheaper than many path copies.
// The in-place path is only ever taken on a private clone: the published
// table shares nodes with older snapshots that readers may still hold.
func (r *RIB) commit(appliance string, changes []change) {
	if len(changes) == 0 {
		return
	}
	bt := r.cur.Load().bt
	inPlace := len(changes) >= bulkThreshold(bt.Size())
	if inPlace {
		bt = bt.Clone()
	}
	for _, ch := range changes {
		modify := func(e entry, _ bool) (entry, bool) {
			n := withCandidate(e.cands, appliance, ch.attrs)
			return newEntry(ch.prefix, n), len(n) == 0
		}
		if inPlace {
			bt.Modify(ch.prefix, modify)
		} else {
			bt = bt.ModifyPersist(ch.prefix, modify)
		}
	}
	r.cur.Store(&Table{bt: bt})
}

// bulkThreshold is the batch size from which cloning the whole trie once
// beats copying one path per change. A path copy costs a few microseconds
// and a clone about a hundred nanoseconds per prefix, so the break-even is
// around one change per few dozen prefixes; the floor keeps small tables
// from being cloned for every tiny batch.
func bulkThreshold(size int) int {
	return max(1024, size/32)
}

// Prefixes returns how many prefixes the appliance has a route for.
func (r *RIB) Prefixes(appliance string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if set := r.apps[appliance]; set != nil {
		return set.Size()
	}
	return 0
}
