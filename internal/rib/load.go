package rib

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
)

// LoadMRT reads a whole MRT stream, optionally gzipped, and returns the
// routes in force at its end: RIB entries as dumped, then BGP UPDATEs
// applied in order, one route per peer (and ADD-PATH id) and prefix. The
// routes are sorted by prefix, best first within a prefix.
func LoadMRT(r io.Reader) ([]Route, error) {
	rd, err := OpenMaybeGzip(r)
	if err != nil {
		return nil, fmt.Errorf("mrt: %w", err)
	}
	type key struct {
		peer   netip.Addr
		pathID uint32
		prefix netip.Prefix
	}
	routes := make(map[key]Route)
	mr := NewMRTReader(rd)
	for {
		rec, err := mr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		for _, e := range rec.RIB {
			routes[key{e.Peer.Addr, e.PathID, rec.Prefix}] = e.Route
		}
		for _, p := range rec.Withdrawn {
			delete(routes, key{rec.Peer.Addr, 0, p})
		}
		for _, rt := range rec.Announced {
			routes[key{rec.Peer.Addr, 0, rt.Prefix}] = rt
		}
	}
	out := slices.Collect(maps.Values(routes))
	slices.SortFunc(out, func(a, b Route) int {
		return cmp.Or(a.Prefix.Compare(b.Prefix), Compare(a, b), a.NextHop.Compare(b.NextHop))
	})
	return out, nil
}

// ImportMRT replaces appliance's routes with the best route per prefix of
// an MRT dump (see LoadMRT). The dump is decoded completely before the
// table is touched, so a malformed file leaves the live table as it was.
func (r *RIB) ImportMRT(appliance string, rd io.Reader) error {
	routes, err := LoadMRT(rd)
	if err != nil {
		return err
	}
	return r.Replace(appliance, routes)
}
