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
	bt         *bart.Table[int32] // prefix → prefix index
	pfx        []ribPrefix        // by prefix index
	nWithdrawn int                // prefixes with pfxWithdrawn
	groups     []ribGroup
}

// ribPrefix is everything a session reads of its client's prefix, packed
// into a quarter of a cache line: a full-world run draws prefixes at
// random, and one array per field costs one cache miss each.
type ribPrefix struct {
	addr  [16]byte // the prefix's address; IPv4 in the first four bytes
	group int32
	as    int32 // the origin AS's index in Sim.ases, or -1 (set by the simulator)
	bits  uint8
	flags uint8
}

const (
	pfx4            = 1 << iota // an IPv4 prefix
	pfxWithdrawn                // embedded routes withdrawn by churn
	pfxOwn                      // the trie maps the prefix to this index (not so for a duplicate)
	pfxMoreSpecific             // a more specific prefix lies inside it
	pfxRepRouted                // Sim.repAddr's longest match is checked to be this prefix
)

func (p *ribPrefix) has(f uint8) bool { return p.flags&f != 0 }

func (p *ribPrefix) set(f uint8, on bool) {
	if on {
		p.flags |= f
	} else {
		p.flags &^= f
	}
}

// prefix is the prefix as netip has it.
func (p *ribPrefix) prefix() netip.Prefix {
	if p.has(pfx4) {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(p.addr[:4])), int(p.bits))
	}
	return netip.PrefixFrom(netip.AddrFrom16(p.addr), int(p.bits))
}

// setWithdrawn withdraws or restores prefix pi's embedded routes and
// says whether that changed anything.
func (r *worldRIB) setWithdrawn(pi int32, w bool) bool {
	p := &r.pfx[pi]
	if p.has(pfxWithdrawn) == w {
		return false
	}
	p.set(pfxWithdrawn, w)
	if w {
		r.nWithdrawn++
	} else {
		r.nWithdrawn--
	}
	return true
}

// ribGroup is one shared candidate list and the best site of it (the
// client's "local" site when classifying misses).
type ribGroup struct {
	all, ixpOnly       []rib.Candidate
	allApps, ixpApps   []int32 // the candidates' appliance indexes, in list order
	bestAll, bestIXP   int32   // site index; -1 when the list is empty
	routedSites, nIXPs int
}

// Lookup is steer.Routes: the longest prefix covering a and its
// candidates.
func (r *worldRIB) Lookup(a netip.Addr) (netip.Prefix, []rib.Candidate, bool) {
	pi, ok := r.bt.Lookup(a.Unmap())
	if !ok {
		return netip.Prefix{}, nil, false
	}
	pfx, _ := a.Unmap().Prefix(int(r.pfx[pi].bits))
	return pfx, r.candidates(pi), true
}

func (r *worldRIB) candidates(pi int32) []rib.Candidate {
	p := &r.pfx[pi]
	g := &r.groups[p.group]
	if p.has(pfxWithdrawn) {
		return g.ixpOnly
	}
	return g.all
}

// candidateApps is candidates(pi) as appliance indexes.
func (r *worldRIB) candidateApps(pi int32) []int32 {
	p := &r.pfx[pi]
	g := &r.groups[p.group]
	if p.has(pfxWithdrawn) {
		return g.ixpApps
	}
	return g.allApps
}

// bestSite is the site of prefix pi's best route, or -1.
func (r *worldRIB) bestSite(pi int32) int32 {
	p := &r.pfx[pi]
	g := &r.groups[p.group]
	if p.has(pfxWithdrawn) {
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
	r := &worldRIB{bt: new(bart.Table[int32]), pfx: make([]ribPrefix, len(w.Prefixes))}
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
		rp := &r.pfx[pi]
		rp.bits, rp.as = uint8(p.Prefix.Bits()), -1
		if a := p.Prefix.Addr(); a.Is4() {
			rp.set(pfx4, true)
			copy(rp.addr[:], a.AsSlice())
		} else {
			rp.addr = a.As16()
		}
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
			grp.allApps, grp.ixpApps = s.candApps(grp.all), s.candApps(grp.ixpOnly)
			grp.bestAll, grp.bestIXP = s.siteOfCand(grp.all), s.siteOfCand(grp.ixpOnly)
			r.groups = append(r.groups, grp)
		}
		rp.group = g
	}
	for pi, p := range w.Prefixes {
		got, ok := r.bt.Get(p.Prefix)
		r.pfx[pi].set(pfxOwn, ok && got == int32(pi))
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
