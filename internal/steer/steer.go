// Package steer provides the steering engine: for a client address and a
// file it ranks the appliances that may serve the client and returns signed
// URLs, best first. The order is documented in docs/steering.md; the
// simulator and the control plane both call this code.
package steer

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/rib"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// Appliance is what steering knows of one appliance at decision time.
type Appliance struct {
	ID       string
	Site     string
	Kind     config.SiteKind
	BaseURL  string // scheme://host:port, no trailing slash
	Location config.Location
	// Serving is false when the appliance is down, draining or otherwise
	// out of rotation; State says which.
	Serving bool
	State   string
	// Holds is the set of files the appliance has verified and serves.
	Holds map[string]bool
}

// Routes answers which appliances heard a route to a client address, best
// route first; *rib.Table implements it.
type Routes interface {
	Lookup(netip.Addr) (netip.Prefix, []rib.Candidate, bool)
}

// Snapshot is an immutable view of the CDN that decisions read without
// locks. Build a new one to change anything.
type Snapshot struct {
	// Routes maps client prefixes to the appliances that heard them.
	Routes Routes
	// Appliances by id.
	Appliances map[string]*Appliance
	// Global lists appliances at IXP and fallback sites: they serve any
	// client, after every routed candidate.
	Global []string
	// Locate gives a client's approximate location for the distance
	// tie-break; nil or !ok means distance is not used.
	Locate func(netip.Addr) (config.Location, bool)
}

// Choice is one ranked URL.
type Choice struct {
	URL       string `json:"url"`
	Appliance string `json:"appliance"`
	Site      string `json:"site"`
	Reason    string `json:"reason"`
}

// Considered explains one candidate for explain=1.
type Considered struct {
	Appliance string  `json:"appliance"`
	Site      string  `json:"site"`
	Rank      int     `json:"rank"` // 1-based; 0 when excluded
	Excluded  string  `json:"excluded,omitempty"`
	Route     string  `json:"route,omitempty"`
	Tier      string  `json:"tier"`
	Distance  float64 `json:"distance_km"`
}

// Engine makes decisions; its fields are read-only after construction.
type Engine struct {
	// Keys signs URLs; nil leaves the token segment as "-" (for analysis
	// and simulation, where no URL is fetched).
	Keys     func() *urlsign.KeySet
	TokenTTL time.Duration
	Now      func() time.Time
}

type candidate struct {
	a        *Appliance
	route    *rib.Route // nil for global candidates
	distance float64
	spread   uint64
}

// Steer ranks appliances for client and path and returns up to n choices
// spanning at least two sites when two exist. With explain it also
// returns every candidate considered.
func (e *Engine) Steer(s *Snapshot, client netip.Addr, path string, n int, explain bool) ([]Choice, []Considered, error) {
	client = client.Unmap()
	var cands []candidate
	var why []Considered
	exclude := func(a *Appliance, reason string) {
		if explain {
			why = append(why, Considered{Appliance: a.ID, Site: a.Site, Excluded: reason, Tier: string(a.Kind)})
		}
	}
	var loc config.Location
	haveLoc := false
	if s.Locate != nil {
		loc, haveLoc = s.Locate(client)
	}
	spreadKey := spreadPrefix(client).String() + "\x00" + path + "\x00"
	add := func(a *Appliance, r *rib.Route) {
		switch {
		case !a.Serving:
			exclude(a, "state "+a.State)
		case !a.Holds[path]:
			exclude(a, "does not hold the file")
		default:
			c := candidate{a: a, route: r, spread: xxhash.Sum64String(spreadKey + a.ID)}
			if haveLoc {
				c.distance = distanceKm(loc, a.Location)
			}
			cands = append(cands, c)
		}
	}
	var pfx netip.Prefix
	if s.Routes != nil {
		var routed []rib.Candidate
		var ok bool
		if pfx, routed, ok = s.Routes.Lookup(client); ok {
			for i := range routed {
				if a := s.Appliances[routed[i].Appliance]; a != nil {
					add(a, &routed[i].Route)
				}
			}
		}
	}
	for _, id := range s.Global {
		if a := s.Appliances[id]; a != nil {
			add(a, nil)
		}
	}
	slices.SortFunc(cands, compare)
	picked := pick(cands, n)
	choices := make([]Choice, len(picked))
	for i, c := range picked {
		u, err := e.url(c.a, path, client)
		if err != nil {
			return nil, nil, err
		}
		choices[i] = Choice{URL: u, Appliance: c.a.ID, Site: c.a.Site, Reason: reason(c, pfx)}
	}
	if explain {
		for i, c := range cands {
			r := Considered{Appliance: c.a.ID, Site: c.a.Site, Rank: i + 1, Tier: string(c.a.Kind), Distance: math.Round(c.distance)}
			if c.route != nil {
				r.Route = describeRoute(pfx, c.route)
			}
			why = append(why, r)
		}
	}
	return choices, why, nil
}

// compare is the steering order: a candidate with a route to the client
// beats one without; among routed ones, BGP's order; then site tier, then
// distance, then the rendezvous spread so equal appliances share clients
// and each client keeps hitting the same one.
func compare(a, b candidate) int {
	if (a.route == nil) != (b.route == nil) {
		if a.route != nil {
			return -1
		}
		return 1
	}
	if a.route != nil {
		if c := rib.Compare(*a.route, *b.route); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(a.a.Kind.Tier(), b.a.Kind.Tier()); c != 0 {
		return c
	}
	// Distances within 50 km are treated as equal so the spread decides
	// among appliances of one metro.
	if c := cmp.Compare(math.Floor(a.distance/50), math.Floor(b.distance/50)); c != 0 {
		return c
	}
	return cmp.Compare(b.spread, a.spread)
}

// pick takes the first n candidates, but if n ≥ 2 and they all share one
// site while another site has a candidate, the last slot goes to the best
// candidate of another site: a client whose first site fails must have
// somewhere else to go.
func pick(cands []candidate, n int) []candidate {
	if n <= 0 || len(cands) == 0 {
		return nil
	}
	out := slices.Clone(cands[:min(n, len(cands))])
	if n < 2 {
		return out
	}
	first := out[0].a.Site
	for _, c := range out[1:] {
		if c.a.Site != first {
			return out
		}
	}
	for _, c := range cands[len(out):] {
		if c.a.Site != first {
			if len(out) == n {
				out[len(out)-1] = c
			} else {
				out = append(out, c)
			}
			break
		}
	}
	return out
}

func (e *Engine) url(a *Appliance, path string, client netip.Addr) (string, error) {
	token := "-"
	if e.Keys != nil {
		title, _, _ := strings.Cut(path, "/")
		now := time.Now
		if e.Now != nil {
			now = e.Now
		}
		var err error
		token, err = e.Keys().Sign(urlsign.Grant{Scope: title + "/", Expires: now().Add(e.TokenTTL)})
		if err != nil {
			return "", fmt.Errorf("sign url: %w", err)
		}
	}
	return a.BaseURL + "/c/" + token + "/" + path, nil
}

func reason(c candidate, pfx netip.Prefix) string {
	if c.route == nil {
		return string(c.a.Kind) + " site, no route to the client: global fallback"
	}
	return string(c.a.Kind) + " site, " + describeRoute(pfx, c.route)
}

func describeRoute(pfx netip.Prefix, r *rib.Route) string {
	return fmt.Sprintf("route %s local-pref %d as-path-len %d med %d", pfx, r.LocalPref, len(r.ASPath), r.MED)
}

// spreadPrefix is the client's /24 (IPv4) or /48 (IPv6): clients behind
// one such prefix share a home appliance, which keeps caches and TCP state
// warm and makes the choice stable across requests.
func spreadPrefix(a netip.Addr) netip.Prefix {
	bits := 24
	if a.Is6() {
		bits = 48
	}
	p, _ := a.Prefix(bits)
	return p
}

// distanceKm is the great-circle distance.
func distanceKm(a, b config.Location) float64 {
	const r = 6371.0
	la1, la2 := a.Lat*math.Pi/180, b.Lat*math.Pi/180
	dla := la2 - la1
	dlo := (b.Lon - a.Lon) * math.Pi / 180
	h := math.Sin(dla/2)*math.Sin(dla/2) + math.Cos(la1)*math.Cos(la2)*math.Sin(dlo/2)*math.Sin(dlo/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(h)))
}
