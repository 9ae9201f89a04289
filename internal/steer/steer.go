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
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/rendezvous"
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
	// Weight, when between 0 and 1, is the share of new clients a serving
	// appliance gets (health: overloaded); 0 means no reduction.
	Weight float64
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
	// Measured, when set, re-ranks candidates whose routes BGP cannot
	// tell apart by what clients of the same routed prefix measured.
	Measured Measurements
}

// Measurements compare sites by what a group of clients measured.
type Measurements interface {
	// Compare returns a negative number when clients of group reach site
	// a measurably better than site b (with the confidence and margin the
	// implementation requires), positive when b is better, and 0 when
	// the data cannot tell: too few samples, overlapping intervals, or a
	// difference below the margin.
	Compare(group netip.Prefix, a, b string) int
	// Applies says whether client takes part (an experiment's arm).
	Applies(client netip.Addr) bool
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

// Engine makes decisions; its exported fields are read-only after first
// use.
type Engine struct {
	// Keys signs URLs; nil leaves the token segment as "-" (for analysis
	// and simulation, where no URL is fetched).
	Keys     func() *urlsign.KeySet
	TokenTTL time.Duration
	Now      func() time.Time

	// tokens caches one token per title: a token covers the whole title
	// and no particular client, so every client steered to the title
	// within a minute can share it, which takes HMAC off the hot path.
	tokens sync.Map // title → cachedToken
}

type cachedToken struct {
	token   string
	keys    *urlsign.KeySet
	expires time.Time
}

// token returns a token for title valid for at least TokenTTL minus a
// sixtieth of it (a minute of an hour).
func (e *Engine) token(title string) (string, error) {
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	t := now()
	keys := e.Keys()
	if v, ok := e.tokens.Load(title); ok {
		c := v.(cachedToken)
		if c.keys == keys && c.expires.Sub(t) > e.TokenTTL-e.TokenTTL/60 {
			return c.token, nil
		}
	}
	exp := t.Add(e.TokenTTL)
	tok, err := keys.Sign(urlsign.Grant{Scope: title + "/", Expires: exp})
	if err != nil {
		return "", fmt.Errorf("sign url: %w", err)
	}
	e.tokens.Store(title, cachedToken{token: tok, keys: keys, expires: exp})
	return tok, nil
}

type candidate struct {
	a        *Appliance
	route    *rib.Attrs // nil for global candidates
	distance float64
	spread   uint64
}

// Steer ranks appliances for client and path and returns up to n choices
// spanning at least two sites when two exist. With explain it also
// returns every candidate considered. It takes no lock and allocates only
// the answer.
func (e *Engine) Steer(s *Snapshot, client netip.Addr, path string, n int, explain bool) ([]Choice, []Considered, error) {
	return e.steer(s, client, path, n, explain)
}

// Ranked is one appliance of a decision, as a Choice before its URL is
// written.
type Ranked struct {
	Appliance *Appliance
	Reason    string
}

// AppendRanked is Steer without explanations or URLs, appending to dst in
// the manner of the strconv.Append functions, for a caller that writes
// the URLs straight into its answer with Token and AppendURL (the control
// plane's /v1/steer): with a reused dst a decision allocates nothing.
func (e *Engine) AppendRanked(dst []Ranked, s *Snapshot, client netip.Addr, path string, n int) []Ranked {
	var buf [16]candidate
	cands, _, _ := rank(buf[:0], s, client, path, false)
	for _, c := range pick(cands, n) {
		dst = append(dst, Ranked{Appliance: c.a, Reason: reason(c)})
	}
	return dst
}

func (e *Engine) steer(s *Snapshot, client netip.Addr, path string, n int, explain bool) ([]Choice, []Considered, error) {
	var buf [16]candidate
	cands, why, pfx := rank(buf[:0], s, client, path, explain)
	choices, err := e.choices(pick(cands, n), path)
	if err != nil {
		return nil, nil, err
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

// rank appends to cands every appliance that may serve client the file at
// path, best first, and returns them with the client's routed prefix;
// with explain, also why each other appliance was left out.
func rank(cands []candidate, s *Snapshot, client netip.Addr, path string, explain bool) ([]candidate, []Considered, netip.Prefix) {
	client = client.Unmap()
	var why []Considered
	var loc config.Location
	haveLoc := false
	if s.Locate != nil {
		loc, haveLoc = s.Locate(client)
	}
	spread := spreadSeed(client, path)
	add := func(a *Appliance, r *rib.Attrs) {
		switch {
		case !a.Serving:
			if explain {
				why = append(why, Considered{Appliance: a.ID, Site: a.Site, Excluded: "state " + a.State, Tier: string(a.Kind)})
			}
		case a.Weight > 0 && a.Weight < 1 && float64(rendezvous.Mix(spread^xxhash.Sum64String(a.ID)^0x5eed)>>11)/(1<<53) >= a.Weight:
			if explain {
				why = append(why, Considered{Appliance: a.ID, Site: a.Site, Excluded: fmt.Sprintf("state %s: this client is outside its %.0f%% share", a.State, 100*a.Weight), Tier: string(a.Kind)})
			}
		case !a.Holds[path]:
			if explain {
				why = append(why, Considered{Appliance: a.ID, Site: a.Site, Excluded: "does not hold the file", Tier: string(a.Kind)})
			}
		default:
			c := candidate{a: a, route: r, spread: rendezvous.Mix(spread ^ xxhash.Sum64String(a.ID))}
			if haveLoc {
				c.distance = distanceKm(loc, a.Location)
			}
			cands = append(cands, c)
		}
	}
	var pfx netip.Prefix
	var routed []rib.Candidate
	if s.Routes != nil {
		var ok bool
		if pfx, routed, ok = s.Routes.Lookup(client); ok {
			for i := range routed {
				if a := s.Appliances[routed[i].Appliance]; a != nil {
					add(a, routed[i].Attrs)
				}
			}
		}
	}
	for _, id := range s.Global {
		// An IXP appliance that heard a route to the client (the ISP
		// peers with it at the exchange) is a routed candidate already.
		if a := s.Appliances[id]; a != nil && !heard(routed, id) {
			add(a, nil)
		}
	}
	if s.Measured != nil && pfx.IsValid() && s.Measured.Applies(client) {
		slices.SortFunc(cands, func(a, b candidate) int { return compareMeasured(a, b, s.Measured, pfx) })
	} else {
		slices.SortFunc(cands, compare)
	}
	return cands, why, pfx
}

// heard reports whether appliance id is among the routed candidates (a
// handful: a loop allocates nothing).
func heard(routed []rib.Candidate, id string) bool {
	for i := range routed {
		if routed[i].Appliance == id {
			return true
		}
	}
	return false
}

// Token returns the URL token for the title of path: one token covers
// the whole title, whichever appliance serves it. Without Keys it is "-".
func (e *Engine) Token(path string) (string, error) {
	if e.Keys == nil {
		return "-", nil
	}
	title, _, _ := strings.Cut(path, "/")
	return e.token(title)
}

// AppendURL appends the URL of path on the appliance at base, with token.
func AppendURL(b []byte, base, token, path string) []byte {
	b = append(b, base...)
	b = append(b, "/c/"...)
	b = append(b, token...)
	b = append(b, '/')
	return append(b, path...)
}

// choices builds the answer's URLs, with one token for the whole list.
func (e *Engine) choices(picked []candidate, path string) ([]Choice, error) {
	if len(picked) == 0 {
		return nil, nil
	}
	token, err := e.Token(path)
	if err != nil {
		return nil, err
	}
	out := make([]Choice, len(picked))
	var url []byte
	for i, c := range picked {
		url = AppendURL(url[:0], c.a.BaseURL, token, path)
		out[i] = Choice{URL: string(url), Appliance: c.a.ID, Site: c.a.Site, Reason: reason(c)}
	}
	return out, nil
}

// URL returns a signed URL of path on appliance a, as a steering answer
// would carry it.
func (e *Engine) URL(a *Appliance, path string) (string, error) {
	cs, err := e.choices([]candidate{{a: a}}, path)
	if err != nil {
		return "", err
	}
	return cs[0].URL, nil
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
		if c := rib.CompareAttrs(a.route, b.route); c != 0 {
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

// compareMeasured is compare with one more key: where BGP leaves two
// routed candidates of different sites equal, the site the client's
// prefix measured better comes first; tier, distance and spread follow.
func compareMeasured(a, b candidate, m Measurements, group netip.Prefix) int {
	if a.route != nil && b.route != nil && a.a.Site != b.a.Site && rib.CompareAttrs(a.route, b.route) == 0 {
		if c := m.Compare(group, a.a.Site, b.a.Site); c != 0 {
			return c
		}
	}
	return compare(a, b)
}

// pick takes the first n candidates, but if n ≥ 2 and they all share one
// site while another site has a candidate, the last slot goes to the best
// candidate of another site: a client whose first site fails must have
// somewhere else to go.
func pick(cands []candidate, n int) []candidate {
	if n <= 0 || len(cands) == 0 {
		return nil
	}
	out := cands[:min(n, len(cands)):min(n, len(cands))]
	if n < 2 {
		return out
	}
	first := out[0].a.Site
	for _, c := range out[1:] {
		if c.a.Site != first {
			return out
		}
	}
	for i, c := range cands[len(out):] {
		if c.a.Site != first {
			// out is full here (otherwise cands had no more candidates),
			// so the best of another site takes the last slot; the
			// candidates it passes move down one, so cands stays the
			// answer's order followed by every other candidate.
			last := len(out) - 1
			copy(cands[last+1:len(out)+i+1], cands[last:len(out)+i])
			cands[last] = c
			break
		}
	}
	return out
}

// reasons are fixed strings, by site tier, so that answering allocates
// nothing for them; explain=1 gives the route behind each.
var reasons = [4][2]string{
	{"embedded site with a BGP route to the client", "embedded site, no route to the client"},
	{"private-peering site with a BGP route to the client", "private-peering site, no route to the client"},
	{"IXP site with a BGP route to the client", "IXP site, no route to the client: global fallback"},
	{"fallback site with a BGP route to the client", "fallback site, no route to the client: global fallback"},
}

func reason(c candidate) string {
	r := reasons[c.a.Kind.Tier()]
	if c.route == nil {
		return r[1]
	}
	return r[0]
}

func describeRoute(pfx netip.Prefix, r *rib.Attrs) string {
	return fmt.Sprintf("route %s local-pref %d as-path-len %d med %d", pfx, r.LocalPref, len(r.ASPath), r.MED)
}

// spreadSeed hashes the client's /24 (IPv4) or /48 (IPv6) with the file:
// clients behind one such prefix share a home appliance per file, which
// keeps caches and TCP state warm and makes the choice stable across
// requests, while different files spread over equal appliances.
func spreadSeed(a netip.Addr, path string) uint64 {
	var key uint64
	if a.Is4() {
		b := a.As4()
		key = uint64(b[0])<<16 | uint64(b[1])<<8 | uint64(b[2])
	} else {
		b := a.As16()
		for _, x := range b[:6] {
			key = key<<8 | uint64(x)
		}
		key |= 1 << 63
	}
	return rendezvous.Mix(key ^ xxhash.Sum64String(path))
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
