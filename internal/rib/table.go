package rib

import (
	"iter"
	"net/netip"
	"slices"

	"github.com/gaissmai/bart"
)

// Table is an immutable snapshot of the merged routing table: every prefix
// heard by at least one appliance, with the candidates that heard it sorted
// best first. It is safe for concurrent use; nothing in it changes after it
// is published, so the slices it returns must be treated as read-only.
type Table struct {
	bt *bart.Table[entry]
}

// entry is a prefix's non-empty candidate list, sorted by
// compareCandidates, with the prefix length so that a lookup can return
// the matched prefix (the address masked to it) without a second walk.
type entry struct {
	cands []Candidate
	bits  uint8
}

func newEntry(pfx netip.Prefix, cands []Candidate) entry {
	return entry{cands: cands, bits: uint8(pfx.Bits())}
}

// Lookup returns the longest prefix covering addr and its candidates, best
// first. It does not allocate. IPv4-mapped IPv6 addresses (as accepted by a
// dual-stack listener) are matched as IPv4.
func (t *Table) Lookup(addr netip.Addr) (netip.Prefix, []Candidate, bool) {
	addr = addr.Unmap()
	e, ok := t.bt.Lookup(addr)
	if !ok {
		return netip.Prefix{}, nil, false
	}
	pfx, _ := addr.Prefix(int(e.bits))
	return pfx, e.cands, true
}

// Get returns the candidates for exactly pfx, best first.
func (t *Table) Get(pfx netip.Prefix) ([]Candidate, bool) {
	e, ok := t.bt.Get(pfx)
	return e.cands, ok
}

// Len returns the number of prefixes in the table.
func (t *Table) Len() int { return t.bt.Size() }

// All iterates over every prefix in canonical CIDR order with its
// candidates, best first.
func (t *Table) All() iter.Seq2[netip.Prefix, []Candidate] {
	return func(yield func(netip.Prefix, []Candidate) bool) {
		for pfx, e := range t.bt.AllSorted() {
			if !yield(pfx, e.cands) {
				return
			}
		}
	}
}

// NewTable builds a table directly from complete per-appliance route sets,
// for callers (an import, the simulator) that have no updates to follow.
// When an appliance has several routes to one prefix the best one is kept.
// It fails on the first invalid route without building anything.
func NewTable(routes map[string][]Route) (*Table, error) {
	n := 0
	for _, rs := range routes {
		for _, r := range rs {
			if err := r.Validate(); err != nil {
				return nil, err
			}
		}
		n += len(rs)
	}
	type heard struct {
		pfx netip.Prefix
		c   Candidate
	}
	all := make([]heard, 0, n)
	var in interner
	for app, rs := range routes {
		for i := range rs {
			all = append(all, heard{rs[i].Prefix, Candidate{Appliance: app, Attrs: in.intern(&rs[i].Attrs)}})
		}
	}
	slices.SortFunc(all, func(a, b heard) int {
		if c := a.pfx.Compare(b.pfx); c != 0 {
			return c
		}
		return compareCandidates(a.c, b.c)
	})
	// One slab backs every candidate list: one allocation for the whole
	// table instead of one per prefix.
	slab := make([]Candidate, 0, len(all))
	bt := new(bart.Table[entry])
	for i := 0; i < len(all); {
		start := len(slab)
		j := i
		for ; j < len(all) && all[j].pfx == all[i].pfx; j++ {
			// Sorted best first, so an appliance's first route is its best.
			if !slices.ContainsFunc(slab[start:], func(o Candidate) bool { return o.Appliance == all[j].c.Appliance }) {
				slab = append(slab, all[j].c)
			}
		}
		bt.Insert(all[i].pfx, newEntry(all[i].pfx, slab[start:len(slab):len(slab)]))
		i = j
	}
	return &Table{bt: bt}, nil
}

// withCandidate returns a fresh candidate list equal to old without the
// appliance's entry, plus one with attrs for that appliance when attrs is
// non-nil. old is never modified because published snapshots may still be
// reading it.
func withCandidate(old []Candidate, appliance string, attrs *Attrs) []Candidate {
	n := len(old)
	if attrs != nil {
		n++
	}
	out := make([]Candidate, 0, n)
	for _, c := range old {
		if c.Appliance != appliance {
			out = append(out, c)
		}
	}
	if attrs != nil {
		c := Candidate{Appliance: appliance, Attrs: attrs}
		i, _ := slices.BinarySearchFunc(out, c, compareCandidates)
		out = slices.Insert(out, i, c)
	}
	return out
}

// candidateOf returns the appliance's route attributes among cands.
func candidateOf(cands []Candidate, appliance string) (*Attrs, bool) {
	for _, c := range cands {
		if c.Appliance == appliance {
			return c.Attrs, true
		}
	}
	return nil, false
}
