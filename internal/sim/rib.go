package sim

import (
	"cmp"
	"math"
	"net/netip"
	"slices"

	"github.com/gaissmai/bart"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/rib"
	"github.com/ocdn/ocdn/internal/sim/world"
)

// worldRIB is the routing table steering reads in the simulator: every
// prefix of the world with the appliances that heard a route to it, best
// first, as rib.Table holds them. It implements steer.Routes.
//
// It differs from rib.Table in one way only, for memory: prefixes whose
// routes are identical (same origin AS, metro and home site) share one
// candidate list, as a router shares attribute sets. Route churn flips a
// prefix between its full list and the list without its embedded routes.
type worldRIB struct {
	bt        *bart.Table[int32] // prefix → prefix index
	bits      []uint8
	group     []int32 // prefix → group
	withdrawn []bool  // prefix → embedded routes withdrawn by churn
	groups    []ribGroup
}

// ribGroup is one shared candidate list and the best site of it (the
// client's "local" site when classifying misses).
type ribGroup struct {
	all, ixpOnly       []rib.Candidate
	bestAll, bestIXP   int32 // site index; -1 when the list is empty
	routedSites, nIXPs int
}

// Lookup is steer.Routes: the longest prefix covering a and its
// candidates.
func (r *worldRIB) Lookup(a netip.Addr) (netip.Prefix, []rib.Candidate, bool) {
	pi, ok := r.bt.Lookup(a.Unmap())
	if !ok {
		return netip.Prefix{}, nil, false
	}
	pfx, _ := a.Unmap().Prefix(int(r.bits[pi]))
	return pfx, r.candidates(pi), true
}

func (r *worldRIB) candidates(pi int32) []rib.Candidate {
	g := &r.groups[r.group[pi]]
	if r.withdrawn[pi] {
		return g.ixpOnly
	}
	return g.all
}

// bestSite is the site of prefix pi's best route, or -1.
func (r *worldRIB) bestSite(pi int32) int32 {
	g := &r.groups[r.group[pi]]
	if r.withdrawn[pi] {
		return g.bestIXP
	}
	return g.bestAll
}

// lookupIndex returns the index of the prefix a matches.
func (r *worldRIB) lookupIndex(a netip.Addr) (int32, bool) { return r.bt.Lookup(a) }

// buildRIB applies the world's routing model (world.Routing):
//
//   - a prefix of a network with embedded sites is heard by its home
//     site (one of the network's sites in the prefix's metro, by hash of
//     the prefix; else its nearest site) with AS path [origin] and MED 0,
//     and by the next EmbeddedBackupSites sites of the network, nearest
//     first, with a MED that grows with distance;
//   - every prefix is heard by its IXPSitesPerPrefix nearest IXP sites
//     through their route servers, AS path [route server, origin];
//   - with IXPGlobal, IXP appliances also serve any client without a
//     route (as the control plane treats them today).
func buildRIB(w *world.World, s *state) *worldRIB {
	r := &worldRIB{bt: new(bart.Table[int32]), bits: make([]uint8, len(w.Prefixes)), group: make([]int32, len(w.Prefixes)), withdrawn: make([]bool, len(w.Prefixes))}
	rt := w.Routing
	// Sites by network, and IXP sites.
	byASN := map[uint32][]int{}
	var ixps []int
	for i, st := range s.sites {
		switch st.kind {
		case config.SiteEmbedded, config.SitePrivate:
			byASN[st.asn] = append(byASN[st.asn], i)
		case config.SiteIXP:
			ixps = append(ixps, i)
		}
	}
	// Nearest IXP sites per metro.
	nearIXP := make([][]int, len(w.Metros))
	for m := range w.Metros {
		cand := slices.Clone(ixps)
		slices.SortFunc(cand, func(a, b int) int {
			if c := cmp.Compare(s.metroKm(m, s.sites[a].metro), s.metroKm(m, s.sites[b].metro)); c != 0 {
				return c
			}
			return cmp.Compare(s.sites[a].id, s.sites[b].id)
		})
		nearIXP[m] = cand[:min(rt.IXPSitesPerPrefix, len(cand))]
	}
	attrs := map[[3]uint32]*rib.Attrs{}
	intern := func(kind, asn, med uint32) *rib.Attrs {
		k := [3]uint32{kind, asn, med}
		if a := attrs[k]; a != nil {
			return a
		}
		a := &rib.Attrs{LocalPref: 100, MED: med, EBGP: true, PeerASN: asn}
		if kind == 1 {
			a.ASPath = []uint32{rt.RouteServerASN}
			a.PeerASN = rt.RouteServerASN
			if asn != 0 {
				a.ASPath = append(a.ASPath, asn)
			}
		} else {
			a.ASPath = []uint32{asn}
		}
		attrs[k] = a
		return a
	}
	type gkey struct {
		asn   uint32
		metro int32
		home  int32
	}
	groupOf := map[gkey]int32{}
	addSite := func(dst []rib.Candidate, site int, a *rib.Attrs) []rib.Candidate {
		for _, ai := range s.sites[site].apps {
			dst = append(dst, rib.Candidate{Appliance: s.apps[ai].id, Attrs: a})
		}
		return dst
	}
	sortCands := func(c []rib.Candidate) {
		slices.SortFunc(c, func(a, b rib.Candidate) int {
			if x := rib.CompareAttrs(a.Attrs, b.Attrs); x != 0 {
				return x
			}
			return cmp.Compare(a.Appliance, b.Appliance)
		})
	}
	for pi, p := range w.Prefixes {
		r.bits[pi] = uint8(p.Prefix.Bits())
		r.bt.Insert(p.Prefix, int32(pi))
		m := int(p.Metro)
		home := int32(-1)
		nets := byASN[p.ASN]
		if len(nets) > 0 {
			var local []int
			for _, si := range nets {
				if s.sites[si].metro == m {
					local = append(local, si)
				}
			}
			if len(local) > 0 {
				home = int32(local[prefixSpread(p.Prefix)%uint64(len(local))])
			} else {
				home = int32(nearestSite(s, m, nets, -1))
			}
		}
		k := gkey{p.ASN, p.Metro, home}
		if home < 0 {
			k.asn = 0 // only IXP routes: the same for every network of the metro
		}
		g, ok := groupOf[k]
		if !ok {
			g = int32(len(r.groups))
			groupOf[k] = g
			var grp ribGroup
			var ixp []rib.Candidate
			for _, xi := range nearIXP[m] {
				ixp = addSite(ixp, xi, intern(1, p.ASN, 0))
			}
			grp.nIXPs = len(nearIXP[m])
			all := slices.Clone(ixp)
			if home >= 0 {
				all = addSite(all, int(home), intern(0, p.ASN, 0))
				grp.routedSites = 1
				used := []int{int(home)}
				for b := 0; b < rt.EmbeddedBackupSites; b++ {
					bi := nearestSite(s, m, nets, -1, used...)
					if bi < 0 {
						break
					}
					used = append(used, bi)
					med := 10 + uint32(math.Round(s.metroKm(m, s.sites[bi].metro)*rt.MEDPerKm))
					all = addSite(all, bi, intern(0, p.ASN, med))
					grp.routedSites++
				}
			}
			sortCands(all)
			sortCands(ixp)
			grp.all, grp.ixpOnly = slices.Clip(all), slices.Clip(ixp)
			grp.bestAll, grp.bestIXP = s.siteOfCand(grp.all), s.siteOfCand(grp.ixpOnly)
			r.groups = append(r.groups, grp)
		}
		r.group[pi] = g
	}
	return r
}

// nearestSite is the site of sites nearest metro m that is not in skip,
// or -1.
func nearestSite(s *state, m int, sites []int, best int, skip ...int) int {
	bestKm := math.Inf(1)
	for _, si := range sites {
		if slices.Contains(skip, si) {
			continue
		}
		km := s.metroKm(m, s.sites[si].metro)
		if km < bestKm || (km == bestKm && best >= 0 && s.sites[si].id < s.sites[best].id) {
			best, bestKm = si, km
		}
	}
	return best
}

// prefixSpread is a stable hash of a prefix for choosing among equals.
func prefixSpread(p netip.Prefix) uint64 {
	b := p.Addr().As16()
	var x uint64
	for _, v := range b {
		x = x*1099511628211 ^ uint64(v)
	}
	return mix(x ^ uint64(p.Bits()))
}
