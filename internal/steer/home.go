package steer

import (
	"math"
	"net/netip"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/rib"
)

// Home is the client's home site: the site of the best appliance in the
// steering order — BGP (the routes the client's prefix was heard on, best
// first), then site tier, then distance, then the site id — among every
// appliance that may serve the client, whether or not it is serving and
// whatever it holds. Demand is attributed to it, so that a site learns
// what its own clients want even while it lacks the file or is down, and
// misses are judged against it. ok is false when no appliance may serve
// the client (no route and no IXP or fallback site).
//
// It is a pure function of the snapshot, takes no lock and allocates
// nothing: the control plane calls it on every steering answer.
func Home(s *Snapshot, client netip.Addr) (site string, ok bool) {
	client = client.Unmap()
	var best *Appliance
	var bestAttrs *rib.Attrs
	dist := homeDistance{s: s, client: client}
	if s.Routes != nil {
		if _, routed, found := s.Routes.Lookup(client); found {
			for i := range routed {
				a := s.Appliances[routed[i].Appliance]
				if a == nil {
					continue
				}
				if best == nil {
					best, bestAttrs = a, routed[i].Attrs
					continue
				}
				// Candidates come best route first: once BGP prefers
				// the best one, the rest are worse.
				if rib.CompareAttrs(routed[i].Attrs, bestAttrs) > 0 {
					break
				}
				if dist.better(a, best) {
					best = a
				}
			}
		}
	}
	if best == nil {
		for _, id := range s.Global {
			if a := s.Appliances[id]; a != nil && (best == nil || dist.better(a, best)) {
				best = a
			}
		}
	}
	if best == nil {
		return "", false
	}
	return best.Site, true
}

// homeDistance compares appliances BGP leaves equal: tier, then distance
// (in the 50 km bands of compare, computed only when tiers tie between two
// sites), then site id.
type homeDistance struct {
	s      *Snapshot
	client netip.Addr
	// loc is the client's location, looked up at the first tie.
	loc     config.Location
	located bool
	haveLoc bool
}

func (h *homeDistance) better(a, b *Appliance) bool {
	if a.Site == b.Site {
		return false
	}
	if ta, tb := a.Kind.Tier(), b.Kind.Tier(); ta != tb {
		return ta < tb
	}
	if !h.located {
		h.located = true
		if h.s.Locate != nil {
			h.loc, h.haveLoc = h.s.Locate(h.client)
		}
	}
	if h.haveLoc {
		da, db := math.Floor(distanceKm(h.loc, a.Location)/50), math.Floor(distanceKm(h.loc, b.Location)/50)
		if da != db {
			return da < db
		}
	}
	return a.Site < b.Site
}
