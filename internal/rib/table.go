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
	// Each value is a non-empty candidate list sorted by compareCandidates;
	// the prefix is kept in the candidates' routes rather than beside the
	// list, saving a pointer indirection and 32 bytes per prefix.
	bt *bart.Table[[]Candidate]
}

// Lookup returns the longest prefix covering addr and its candidates, best
// first. It does not allocate. IPv4-mapped IPv6 addresses (as accepted by a
// dual-stack listener) are matched as IPv4.
func (t *Table) Lookup(addr netip.Addr) (netip.Prefix, []Candidate, bool) {
	cands, ok := t.bt.Lookup(addr.Unmap())
	if !ok || len(cands) == 0 {
		return netip.Prefix{}, nil, false
	}
	return cands[0].Route.Prefix, cands, true
}

// Get returns the candidates for exactly pfx, best first.
func (t *Table) Get(pfx netip.Prefix) ([]Candidate, bool) {
	return t.bt.Get(pfx)
}

// Len returns the number of prefixes in the table.
func (t *Table) Len() int { return t.bt.Size() }

// All iterates over every prefix in canonical CIDR order with its
// candidates, best first.
func (t *Table) All() iter.Seq2[netip.Prefix, []Candidate] {
	return t.bt.AllSorted()
}

// NewTable builds a table directly from candidates, for callers (an import,
// the simulator) that have a complete route set and no updates to follow.
// When an appliance has several routes to one prefix the best one is kept.
// It fails on the first invalid route without building anything.
func NewTable(cands []Candidate) (*Table, error) {
	for _, c := range cands {
		if err := c.Route.Validate(); err != nil {
			return nil, err
		}
	}
	// Sorting a private copy makes each prefix's candidates contiguous, so
	// the copy doubles as the backing store of every candidate list: one
	// allocation for the whole table instead of one per prefix.
	slab := slices.Clone(cands)
	slices.SortFunc(slab, func(a, b Candidate) int {
		if c := a.Route.Prefix.Compare(b.Route.Prefix); c != 0 {
			return c
		}
		return compareCandidates(a, b)
	})
	bt := new(bart.Table[[]Candidate])
	for i := 0; i < len(slab); {
		j := i + 1
		for j < len(slab) && slab[j].Route.Prefix == slab[i].Route.Prefix {
			j++
		}
		group := dedupeAppliances(slab[i:j])
		bt.Insert(slab[i].Route.Prefix, group[:len(group):len(group)])
		i = j
	}
	return &Table{bt: bt}, nil
}

// dedupeAppliances keeps the first (best) candidate of each appliance in a
// sorted candidate list, compacting in place.
func dedupeAppliances(cands []Candidate) []Candidate {
	if len(cands) < 2 {
		return cands
	}
	out := cands[:0]
	for _, c := range cands {
		if !slices.ContainsFunc(out, func(o Candidate) bool { return o.Appliance == c.Appliance }) {
			out = append(out, c)
		}
	}
	return out
}

// withCandidate returns a fresh candidate list equal to old without the
// appliance's entry, plus r for that appliance when r is non-nil. old is
// never modified because published snapshots may still be reading it.
func withCandidate(old []Candidate, appliance string, r *Route) []Candidate {
	n := len(old)
	if r != nil {
		n++
	}
	out := make([]Candidate, 0, n)
	for _, c := range old {
		if c.Appliance != appliance {
			out = append(out, c)
		}
	}
	if r != nil {
		c := Candidate{Appliance: appliance, Route: *r}
		i, _ := slices.BinarySearchFunc(out, c, compareCandidates)
		out = slices.Insert(out, i, c)
	}
	return out
}

// candidateOf returns the appliance's route among cands.
func candidateOf(cands []Candidate, appliance string) (Route, bool) {
	for _, c := range cands {
		if c.Appliance == appliance {
			return c.Route, true
		}
	}
	return Route{}, false
}
