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
	apps map[string]map[netip.Prefix]struct{}
	cur  atomic.Pointer[Table]
}

// New returns an empty RIB whose Snapshot is an empty table.
func New() *RIB {
	r := &RIB{apps: make(map[string]map[netip.Prefix]struct{})}
	r.cur.Store(&Table{bt: new(bart.Table[[]Candidate])})
	return r
}

// Snapshot returns the current table. It never blocks and never returns nil.
func (r *RIB) Snapshot() *Table { return r.cur.Load() }

// change is one announcement (route != nil) or withdrawal of an
// appliance's route to prefix.
type change struct {
	prefix netip.Prefix
	route  *Route
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
	var changes []change
	for p := range prev {
		if _, ok := best[p]; !ok {
			changes = append(changes, change{prefix: p})
		}
	}
	set := make(map[netip.Prefix]struct{}, len(best))
	for p, i := range best {
		set[p] = struct{}{}
		// Re-announcing an unchanged route would copy its trie path for
		// nothing; full re-exports after a session flap are mostly that.
		// A first export has nothing to compare against.
		if _, had := prev[p]; had {
			cands, _ := cur.Get(p)
			if old, ok := candidateOf(cands, appliance); ok && sameRoute(old, routes[i]) {
				continue
			}
		}
		changes = append(changes, change{prefix: p, route: &routes[i]})
	}
	r.commit(appliance, changes)
	if len(set) == 0 {
		delete(r.apps, appliance)
	} else {
		r.apps[appliance] = set
	}
	return nil
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
		set = make(map[netip.Prefix]struct{}, len(announce))
	}
	changes := make([]change, 0, len(announce)+len(withdraw))
	for _, p := range withdraw {
		p = p.Masked()
		if _, ok := set[p]; ok {
			delete(set, p)
			changes = append(changes, change{prefix: p})
		}
	}
	for i := range announce {
		set[announce[i].Prefix] = struct{}{}
		changes = append(changes, change{prefix: announce[i].Prefix, route: &announce[i]})
	}
	r.commit(appliance, changes)
	if len(set) == 0 {
		delete(r.apps, appliance)
	} else {
		r.apps[appliance] = set
	}
	return nil
}

// Drop withdraws every route of appliance, as when its session goes down.
func (r *RIB) Drop(appliance string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	set := r.apps[appliance]
	changes := make([]change, 0, len(set))
	for p := range set {
		changes = append(changes, change{prefix: p})
	}
	r.commit(appliance, changes)
	delete(r.apps, appliance)
}

// Routes returns appliance's current routes in prefix order.
func (r *RIB) Routes(appliance string) []Route {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.cur.Load()
	prefixes := slices.SortedFunc(maps.Keys(r.apps[appliance]), netip.Prefix.Compare)
	out := make([]Route, 0, len(prefixes))
	for _, p := range prefixes {
		cands, _ := t.Get(p)
		if rt, ok := candidateOf(cands, appliance); ok {
			out = append(out, rt)
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
		modify := func(cands []Candidate, _ bool) ([]Candidate, bool) {
			n := withCandidate(cands, appliance, ch.route)
			return n, len(n) == 0
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
	return len(r.apps[appliance])
}
