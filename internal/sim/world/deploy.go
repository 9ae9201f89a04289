package world

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/rendezvous"
)

// generateDeployment places the CDN in w (replacing its sites and
// appliances) by the rules of w.Deployment:
//
//   - Embedded sites go to the largest access networks of each country
//     (by subscribers, at most networks_per_country, each with at least
//     min_network_subscribers and min_network_share of the country). A
//     network gets ⌈subscribers / subscribers_per_site⌉ sites, spread over
//     its metros by subscribers (largest remainder), each with
//     subscribers / subscribers_per_appliance appliances, clamped.
//   - IXP sites go to the metros with the most subscribers; each serves
//     the metros nearest to it and gets appliances for their subscribers.
//   - Each appliance's hardware class is drawn by share from a hash of
//     its id, so the same world file always gives the same deployment.
func generateDeployment(w *World, st *BuildStats) {
	d := w.Deployment
	w.Sites, w.Appliances = nil, nil
	access := map[uint32]bool{}
	for _, a := range w.ASes {
		access[a.ASN] = a.Access
	}
	type netKey struct {
		asn     uint32
		country string
	}
	perMetro := map[netKey]map[int]float64{}
	metroSubs := make([]float64, len(w.Metros))
	for _, p := range w.Prefixes {
		m := int(p.Metro)
		metroSubs[m] += float64(p.Subscribers)
		if !access[p.ASN] {
			continue
		}
		k := netKey{p.ASN, w.Metros[m].Country}
		if perMetro[k] == nil {
			perMetro[k] = map[int]float64{}
		}
		perMetro[k][m] += float64(p.Subscribers)
	}
	byCountry := map[string][]netKey{}
	totals := map[netKey]float64{}
	for k, ms := range perMetro {
		for _, s := range ms {
			totals[k] += s
		}
		byCountry[k.country] = append(byCountry[k.country], k)
	}
	e := d.Embedded
	addAppliances := func(site string, n int) {
		for j := 1; j <= n; j++ {
			id := fmt.Sprintf("%s-%d", site, j)
			c := pickClass(d.Classes, xxhash.Sum64String(id)^d.Seed)
			w.Appliances = append(w.Appliances, Appliance{ID: id, Site: site, Class: c.Name, Storage: c.Storage, ThroughputGbps: c.ThroughputGbps})
		}
	}
	clampN := func(x float64, lo, hi int) int { return min(max(int(math.Round(x)), lo), hi) }
	for _, c := range w.Countries {
		nets := byCountry[c.Code]
		slices.SortFunc(nets, func(a, b netKey) int {
			if x := cmp.Compare(totals[b], totals[a]); x != 0 {
				return x
			}
			return cmp.Compare(a.asn, b.asn)
		})
		taken := 0
		for _, k := range nets {
			total := totals[k]
			if taken >= e.NetworksPerCountry || total < e.MinNetworkSubscribers || total < e.MinNetworkShare*c.Subscribers || total <= 0 {
				continue
			}
			taken++
			nSites := min(max(int(math.Ceil(total/e.SubscribersPerSite)), 1), max(e.MaxSitesPerNetwork, 1))
			metros := make([]int, 0, len(perMetro[k]))
			for m := range perMetro[k] {
				metros = append(metros, m)
			}
			slices.SortFunc(metros, func(a, b int) int {
				if x := cmp.Compare(perMetro[k][b], perMetro[k][a]); x != 0 {
					return x
				}
				return cmp.Compare(w.Metros[a].ID, w.Metros[b].ID)
			})
			alloc := largestRemainder(nSites, len(metros), func(i int) float64 { return perMetro[k][metros[i]] })
			for i, m := range metros {
				for j := 0; j < alloc[i]; j++ {
					id := fmt.Sprintf("e%d-%s-%d", k.asn, w.Metros[m].ID, j+1)
					w.Sites = append(w.Sites, Site{ID: id, Kind: config.SiteEmbedded, ASN: k.asn, Metro: w.Metros[m].ID})
					st.EmbeddedSites++
					addAppliances(id, clampN(perMetro[k][m]/float64(alloc[i])/e.SubscribersPerAppliance, e.MinAppliances, e.MaxAppliances))
				}
			}
		}
	}
	// IXP sites in the biggest metros, sized for the metros nearest them.
	order := make([]int, len(w.Metros))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if x := cmp.Compare(metroSubs[b], metroSubs[a]); x != 0 {
			return x
		}
		return cmp.Compare(w.Metros[a].ID, w.Metros[b].ID)
	})
	ixps := order[:min(d.IXP.Metros, len(order))]
	load := make([]float64, len(ixps))
	for m := range w.Metros {
		best, bestKm := -1, math.Inf(1)
		for i, x := range ixps {
			if km := DistanceKm(w.Metros[m].Lat, w.Metros[m].Lon, w.Metros[x].Lat, w.Metros[x].Lon); km < bestKm {
				best, bestKm = i, km
			}
		}
		if best >= 0 {
			load[best] += metroSubs[m]
		}
	}
	for i, m := range ixps {
		id := "x-" + w.Metros[m].ID
		w.Sites = append(w.Sites, Site{ID: id, Kind: config.SiteIXP, Metro: w.Metros[m].ID})
		st.IXPSites++
		addAppliances(id, clampN(load[i]/d.IXP.SubscribersPerAppliance, d.IXP.MinAppliances, d.IXP.MaxAppliances))
	}
	st.Appliances = len(w.Appliances)
}

// largestRemainder splits n into len parts proportional to weight.
func largestRemainder(n, parts int, weight func(int) float64) []int {
	out := make([]int, parts)
	total := 0.0
	for i := 0; i < parts; i++ {
		total += weight(i)
	}
	if parts == 0 || total <= 0 {
		return out
	}
	type rem struct {
		i int
		r float64
	}
	rs := make([]rem, parts)
	left := n
	for i := 0; i < parts; i++ {
		x := float64(n) * weight(i) / total
		out[i] = int(x)
		left -= out[i]
		rs[i] = rem{i, x - float64(out[i])}
	}
	slices.SortStableFunc(rs, func(a, b rem) int { return cmp.Compare(b.r, a.r) })
	for k := 0; k < left; k++ {
		out[rs[k%parts].i]++
	}
	return out
}

func pickClass(classes []ApplianceClass, h uint64) ApplianceClass {
	if len(classes) == 0 {
		return ApplianceClass{Name: "default", Share: 1, Storage: 1e12, ThroughputGbps: 20}
	}
	x := float64(rendezvous.Mix(h)>>11) / (1 << 53)
	for _, c := range classes {
		if x -= c.Share; x < 0 {
			return c
		}
	}
	return classes[len(classes)-1]
}
