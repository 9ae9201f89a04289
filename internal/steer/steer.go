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
	ID      string
	Site    string
	Kind    config.SiteKind
	BaseURL string // scheme://host:port, no trailing slash
	// BaseURL6 is a dual-stack appliance's base over IPv6 (its
	// address6); BaseURL is then its base over IPv4.
	BaseURL6 string
	// BaseFamily is the family BaseURL reaches the appliance over when
	// BaseURL6 is empty: FamilyIPv4 or FamilyIPv6, or FamilyClient when
	// unknown (the simulator's appliances), which serves every client.
	BaseFamily Family
	Location   config.Location
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

// Family is an address family a client wants URLs for.
type Family uint8

const (
	// FamilyClient is the family of the client's own address.
	FamilyClient Family = iota
	FamilyIPv4
	FamilyIPv6
	// FamilyBoth asks for every family the appliance has: for a
	// dual-stack client that races them (Happy Eyeballs).
	FamilyBoth
)

// ParseFamily reads a steering request's family: "", "ipv4", "ipv6" or
// "both".
func ParseFamily(s string) (Family, bool) {
	switch s {
	case "":
		return FamilyClient, true
	case "ipv4":
		return FamilyIPv4, true
	case "ipv6":
		return FamilyIPv6, true
	case "both":
		return FamilyBoth, true
	}
	return 0, false
}

func (f Family) String() string {
	return [...]string{"client", "ipv4", "ipv6", "both"}[min(f, FamilyBoth)]
}

// For resolves FamilyClient to the family of client's address.
func (f Family) For(client netip.Addr) Family {
	if f != FamilyClient {
		return f
	}
	if client.Unmap().Is4() {
		return FamilyIPv4
	}
	return FamilyIPv6
}

// Base is the appliance's URL base over family f (FamilyIPv4 or
// FamilyIPv6), or "" when it has no address of that family.
func (a *Appliance) Base(f Family) string {
	switch {
	case a.BaseURL6 != "" && f == FamilyIPv6:
		return a.BaseURL6
	case a.BaseURL6 != "" || a.BaseFamily == FamilyClient || a.BaseFamily == f:
		return a.BaseURL
	}
	return ""
}

// base is the URL base of the answer's url for a client wanting f
// (already resolved with For): that family's, or with FamilyBoth the
// client's own family's when the appliance has it, else its other.
func (a *Appliance) base(client netip.Addr, f Family) string {
	if f != FamilyBoth {
		return a.Base(f)
	}
	own := FamilyClient.For(client)
	if b := a.Base(own); b != "" {
		return b
	}
	return a.Base(FamilyIPv4 + FamilyIPv6 - own)
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
	// Measured, when set, may put a site that measurements prefer for the
	// client's routed prefix first, among the sites eligible by BGP and
	// operator policy (see Measurements).
	Measured Measurements
}

// Eligibility says which candidates measurements may put ahead of BGP's
// choice: BGP and operator policy decide what is eligible, measurements
// only rank inside that set.
type Eligibility uint8

const (
	// EligibleLocalPref: routed candidates whose route has the same
	// local-pref as the best route (the operator's and the ISP's policy
	// is expressed in local-pref; AS-path length, origin, MED and router
	// id are the tie-breaks measurements may override).
	EligibleLocalPref Eligibility = iota
	// EligibleEmbeddedIXP: those, and IXP candidates without a route
	// (for clients of an ISP that allows its traffic to leave its
	// embedded site for an exchange point).
	EligibleEmbeddedIXP
)

// Preference is what measurements choose for one client.
type Preference struct {
	// Site is to be ranked first, if it has an eligible candidate.
	Site   string
	Policy Eligibility
	// Note explains the choice for explain=1 (evidence, step); it is
	// read only there.
	Note string
}

// Measurements choose, per routed prefix group, a site clients of the
// group measurably reach better than BGP's choice.
type Measurements interface {
	// Prefer returns the site to rank first for client, whose routed
	// prefix is group, or false to leave BGP's order. It decides which
	// clients take part (an experiment's arm, the share of a group moved
	// so far) and is called on every decision, so it must not allocate
	// or block.
	Prefer(group netip.Prefix, client netip.Addr) (Preference, bool)
}

// Choice is one ranked URL.
type Choice struct {
	URL string `json:"url"`
	// URLIPv4 and URLIPv6 are the appliance's URLs per family, in answers
	// to family=both only.
	URLIPv4   string `json:"url_ipv4,omitempty"`
	URLIPv6   string `json:"url_ipv6,omitempty"`
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
	// Measured says why measurements moved this candidate ahead of BGP's
	// choice, or that they moved another ahead of it.
	Measured string `json:"measured,omitempty"`
}

// Engine makes decisions; its exported fields are read-only after first
// use.
type Engine struct {
	// Keys signs URLs; nil leaves the token segment as "-" (for analysis
	// and simulation, where no URL is fetched).
	Keys     func() *urlsign.KeySet
	TokenTTL time.Duration
	Now      func() time.Time

	// tokens caches one token per title and experiment arm: a token
	// covers the whole title and no particular client, so every client
	// of an arm steered to the title within a minute can share it, which
	// takes HMAC off the hot path.
	tokens sync.Map // tokenKey → cachedToken
}

// Arm is what a token says of the experiment arm its client is in (see
// urlsign.Grant): the zero Arm outside an experiment.
type Arm struct {
	Experiment, Name, CongestionControl string
}

type tokenKey struct {
	title string
	arm   Arm
}

type cachedToken struct {
	token   string
	keys    *urlsign.KeySet
	expires time.Time
}

// token returns a token for title valid for at least TokenTTL minus a
// sixtieth of it (a minute of an hour).
func (e *Engine) token(title string, arm Arm) (string, error) {
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	t := now()
	keys := e.Keys()
	key := tokenKey{title, arm}
	if v, ok := e.tokens.Load(key); ok {
		c := v.(cachedToken)
		if c.keys == keys && c.expires.Sub(t) > e.TokenTTL-e.TokenTTL/60 {
			return c.token, nil
		}
	}
	exp := t.Add(e.TokenTTL)
	tok, err := keys.Sign(urlsign.Grant{Scope: title + "/", Expires: exp,
		Experiment: arm.Experiment, Arm: arm.Name, CongestionControl: arm.CongestionControl})
	if err != nil {
		return "", fmt.Errorf("sign url: %w", err)
	}
	e.tokens.Store(key, cachedToken{token: tok, keys: keys, expires: exp})
	return tok, nil
}

type candidate struct {
	a        *Appliance
	route    *rib.Attrs // nil for global candidates
	distance float64
	spread   uint64
	// measured is set on the candidates measurements moved to the front.
	measured bool
}

// Steer ranks appliances for client and path and returns up to n choices
// spanning at least two sites when two exist. With explain it also
// returns every candidate considered. It takes no lock and allocates only
// the answer.
func (e *Engine) Steer(s *Snapshot, client netip.Addr, path string, n int, explain bool) ([]Choice, []Considered, error) {
	return e.steer(s, client, FamilyClient, path, n, explain)
}

// SteerFamily is Steer for a client that wants URLs of family f: an
// appliance without an address of that family is left out, and with
// FamilyBoth each choice also carries its URL of each family.
func (e *Engine) SteerFamily(s *Snapshot, client netip.Addr, f Family, path string, n int, explain bool) ([]Choice, []Considered, error) {
	return e.steer(s, client, f, path, n, explain)
}

// Ranked is one appliance of a decision, as a Choice before its URL is
// written.
type Ranked struct {
	Appliance *Appliance
	Reason    string
	// Base is the URL base of the choice's url: of the family asked for.
	Base string
}

// AppendRanked is Steer without explanations or URLs, appending to dst in
// the manner of the strconv.Append functions, for a caller that writes
// the URLs straight into its answer with Token and AppendURL (the control
// plane's /v1/steer): with a reused dst a decision allocates nothing.
func (e *Engine) AppendRanked(dst []Ranked, s *Snapshot, client netip.Addr, path string, n int) []Ranked {
	return e.AppendRankedFamily(dst, s, client, FamilyClient, path, n)
}

// AppendRankedFamily is AppendRanked for a client that wants URLs of
// family f (see SteerFamily).
func (e *Engine) AppendRankedFamily(dst []Ranked, s *Snapshot, client netip.Addr, f Family, path string, n int) []Ranked {
	var buf [16]candidate
	f = f.For(client)
	cands, _, _, _ := rank(buf[:0], s, client, f, path, false, true)
	for _, c := range pick(cands, n) {
		dst = append(dst, Ranked{Appliance: c.a, Reason: reason(c), Base: c.a.base(client, f)})
	}
	return dst
}

func (e *Engine) steer(s *Snapshot, client netip.Addr, f Family, path string, n int, explain bool) ([]Choice, []Considered, error) {
	var buf [16]candidate
	f = f.For(client)
	cands, why, pfx, pref := rank(buf[:0], s, client, f, path, explain, true)
	var bgpFirst string
	if explain && len(cands) > 0 && cands[0].measured {
		// What BGP alone would have put first, for the explanation.
		var buf2 [16]candidate
		if base, _, _, _ := rank(buf2[:0], s, client, f, path, false, false); len(base) > 0 {
			bgpFirst = base[0].a.ID
		}
	}
	choices, err := e.choices(pick(cands, n), client, f, path)
	if err != nil {
		return nil, nil, err
	}
	if explain {
		for i, c := range cands {
			r := Considered{Appliance: c.a.ID, Site: c.a.Site, Rank: i + 1, Tier: string(c.a.Kind), Distance: math.Round(c.distance)}
			if c.route != nil {
				r.Route = describeRoute(pfx, c.route)
			}
			switch {
			case c.measured:
				r.Measured = "moved ahead of BGP's choice by measurements: " + pref.Note
			case c.a.ID == bgpFirst:
				r.Measured = "BGP's choice; measurements prefer site " + pref.Site + " for this client"
			}
			why = append(why, r)
		}
	}
	return choices, why, nil
}

// Baseline returns, for client and path, the site BGP and the steering
// order put first (measurements aside) and the other sites with a
// candidate eligible under policy: the sites measurements may choose
// between. It is for the control plane's periodic evaluation, not the
// request path.
func (e *Engine) Baseline(s *Snapshot, client netip.Addr, path string, policy Eligibility) (first string, eligible []string) {
	var buf [16]candidate
	// Every family: measurements compare sites, whichever address a
	// client reaches them by.
	cands, _, _, _ := rank(buf[:0], s, client, FamilyBoth, path, false, false)
	if len(cands) == 0 {
		return "", nil
	}
	first = cands[0].a.Site
	for _, c := range cands[1:] {
		if c.a.Site != first && eligibleBehind(c, cands[0], policy) && !slices.Contains(eligible, c.a.Site) {
			eligible = append(eligible, c.a.Site)
		}
	}
	return first, eligible
}

// rank appends to cands every appliance that may serve client the file at
// path, best first, and returns them with the client's routed prefix;
// with explain, also why each other appliance was left out. With
// measured, a site the measurements prefer is moved first (see promote)
// and its preference is returned when it moved anything (else a zero
// Preference).
func rank(cands []candidate, s *Snapshot, client netip.Addr, f Family, path string, explain, measured bool) ([]candidate, []Considered, netip.Prefix, Preference) {
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
		case f != FamilyBoth && a.Base(f) == "":
			if explain {
				why = append(why, Considered{Appliance: a.ID, Site: a.Site, Excluded: "no " + f.String() + " address", Tier: string(a.Kind)})
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
	slices.SortFunc(cands, compare)
	if measured && s.Measured != nil && pfx.IsValid() && len(cands) > 1 {
		if p, ok := s.Measured.Prefer(pfx, client); ok && p.Site != cands[0].a.Site && promote(cands, p) {
			return cands, why, pfx, p
		}
	}
	return cands, why, pfx, Preference{}
}

// promote moves the candidates of site p.Site that are eligible under
// p.Policy to the front, keeping their order and that of the others, and
// reports whether it moved any. cands is in the steering order.
func promote(cands []candidate, p Preference) bool {
	best := cands[0]
	k := 0
	for i := range cands {
		c := cands[i]
		if c.a.Site != p.Site || !eligibleBehind(c, best, p.Policy) {
			continue
		}
		c.measured = true
		copy(cands[k+1:i+1], cands[k:i])
		cands[k] = c
		k++
	}
	return k > 0
}

// eligibleBehind says whether c may be put ahead of best, the first
// candidate in the steering order, under policy: a routed candidate when
// its route has best's local-pref, and with EligibleEmbeddedIXP also an
// IXP candidate without a route. Private peering and fallback sites
// without a route, and routes the ISP ranked lower, never are.
func eligibleBehind(c, best candidate, policy Eligibility) bool {
	if c.route != nil {
		return best.route != nil && c.route.LocalPref == best.route.LocalPref
	}
	return policy == EligibleEmbeddedIXP && c.a.Kind == config.SiteIXP
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
	return e.ArmToken(path, Arm{})
}

// ArmToken is Token for a client in an experiment arm: the token names
// the arm and its congestion control, which the appliance applies.
func (e *Engine) ArmToken(path string, arm Arm) (string, error) {
	if e.Keys == nil {
		return "-", nil
	}
	title, _, _ := strings.Cut(path, "/")
	return e.token(title, arm)
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
func (e *Engine) choices(picked []candidate, client netip.Addr, f Family, path string) ([]Choice, error) {
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
		url = AppendURL(url[:0], c.a.base(client, f), token, path)
		out[i] = Choice{URL: string(url), Appliance: c.a.ID, Site: c.a.Site, Reason: reason(c)}
		if f == FamilyBoth {
			if b := c.a.Base(FamilyIPv4); b != "" {
				out[i].URLIPv4 = string(AppendURL(nil, b, token, path))
			}
			if b := c.a.Base(FamilyIPv6); b != "" {
				out[i].URLIPv6 = string(AppendURL(nil, b, token, path))
			}
		}
	}
	return out, nil
}

// URL returns a signed URL of path on appliance a, as a steering answer
// would carry it (over its BaseURL's family).
func (e *Engine) URL(a *Appliance, path string) (string, error) {
	f := a.BaseFamily
	if f == FamilyClient {
		f = FamilyIPv4
	}
	return e.URLFamily(a, f, path)
}

// URLFamily is URL over family f (FamilyIPv4 or FamilyIPv6); with no
// address of f the URL has an empty base.
func (e *Engine) URLFamily(a *Appliance, f Family, path string) (string, error) {
	cs, err := e.choices([]candidate{{a: a}}, netip.Addr{}, f, path)
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

// measuredReasons are the reasons of candidates measurements moved ahead
// of BGP's choice.
var measuredReasons = [4][2]string{
	{"embedded site with a BGP route to the client, measured better than BGP's choice", "embedded site, measured better than BGP's choice"},
	{"private-peering site with a BGP route to the client, measured better than BGP's choice", "private-peering site, measured better than BGP's choice"},
	{"IXP site with a BGP route to the client, measured better than BGP's choice", "IXP site, measured better than BGP's choice"},
	{"fallback site with a BGP route to the client, measured better than BGP's choice", "fallback site, measured better than BGP's choice"},
}

func reason(c candidate) string {
	r := &reasons[c.a.Kind.Tier()]
	if c.measured {
		r = &measuredReasons[c.a.Kind.Tier()]
	}
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
