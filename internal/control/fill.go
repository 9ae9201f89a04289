package control

import (
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/health"
	"github.com/ocdn/ocdn/internal/placement"
	"github.com/ocdn/ocdn/internal/steer"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// FillConfig tunes popularity, placement and fill at the control plane.
// The zero value is usable.
type FillConfig struct {
	// StartHour and EndHour are the fill window in each site's local time
	// (default 02:00–14:00).
	StartHour, EndHour int
	// EscalateAfter is how long an appliance waits for a closer source
	// (a peer, then another site, that is to fetch the file first) before
	// it may use a farther one (default 60s).
	EscalateAfter time.Duration
	// Feed predicts demand of new releases.
	Feed content.Feed
	// HalfLife and Day shape the demand EWMA (content.Popularity).
	HalfLife, Day time.Duration
	// Epsilon is placement's bounded-load slack (default 0.1).
	Epsilon float64
	// Hysteresis keeps a file's copy count while its demand stays within
	// this share of the boundary (placement.Options; default 0.1).
	Hysteresis float64
	// ReplanInterval is how often Run recomputes the manifests from
	// demand (0: only when the ranking changes, see CheckInterval).
	ReplanInterval time.Duration
	// CheckInterval is how often Run folds the steering answers counted
	// since the last check into popularity and checks whether the
	// ranking moved by more than RankingChange of a site's placed bytes
	// since the last plan (or the last plan was held back by MaxChurn);
	// if so it replans at once (default: ReplanInterval, at most 1m).
	CheckInterval time.Duration
	// RankingChange is that share (default 0.05).
	RankingChange float64
	// MaxChurn bounds the bytes one replan adds to a site's appliances,
	// as a share of the site's capacity (default 0.1): fill downloads at
	// most that much per site per replan, and the rest of a big change
	// follows in later replans, hottest files first.
	MaxChurn float64
	// TokenTTL is how long fill URLs stay valid (default 1h).
	TokenTTL time.Duration
}

// fillPlan is one version of every appliance's manifest.
type fillPlan struct {
	seq       int
	manifests map[string][]content.File
	versions  map[string]string
	holders   map[string][]string       // path → appliances whose manifest lists it
	copies    map[string]map[string]int // site → path → copies
}

// fillState is the control plane's side of fill: popularity, manifests,
// fill progress, bad copies and miss classification.
type fillState struct {
	cfg    FillConfig
	demand *demandState
	plan   atomic.Pointer[fillPlan]
	replan replanState

	mu sync.Mutex
	// urgent files are filled outside the window (from the feed).
	urgent   map[string]bool
	waitFrom map[string]time.Time // appliance \x00 path → first told to wait
	bad      map[string]map[string]bool
	progress map[string]api.FillProgress
	misses   api.Misses
}

func (s *Server) initFill() {
	cfg := s.cfg.Fill
	if cfg.StartHour == 0 && cfg.EndHour == 0 {
		cfg.StartHour, cfg.EndHour = 2, 14
	}
	if cfg.EscalateAfter <= 0 {
		cfg.EscalateAfter = time.Minute
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = time.Minute
		if cfg.ReplanInterval > 0 {
			cfg.CheckInterval = min(cfg.ReplanInterval, time.Minute)
		}
	}
	if cfg.RankingChange <= 0 {
		cfg.RankingChange = 0.05
	}
	if cfg.MaxChurn <= 0 {
		cfg.MaxChurn = 0.1
	}
	for _, f := range s.cfg.Catalog.Files {
		s.maxFileSize = max(s.maxFileSize, f.Size)
	}
	sites := make([]string, len(s.cfg.Inventory.Sites))
	for i, site := range s.cfg.Inventory.Sites {
		sites[i] = site.ID
	}
	f := &fillState{cfg: cfg, demand: newDemandState(cfg, sites, s.cfg.Catalog),
		waitFrom: map[string]time.Time{}, bad: map[string]map[string]bool{}, progress: map[string]api.FillProgress{}}
	f.setFeed(cfg.Feed)
	s.fill = f
}

// setFeed makes feed the release predictions and its urgent files the
// ones appliances fill outside their window.
func (f *fillState) setFeed(feed content.Feed) {
	urgent := map[string]bool{}
	for _, p := range feed.Predictions {
		if p.Urgent {
			urgent[p.Path] = true
		}
	}
	f.demand.steered.SetFeed(feed)
	f.mu.Lock()
	f.urgent = urgent
	f.mu.Unlock()
}

// Demand is the predicted bytes per day of every file with demand from
// clients whose home site is site.
func (s *Server) Demand(site string) map[string]float64 {
	return s.fill.demand.region(site, s.cfg.Now())
}

// mountFill adds GET /v1/fill, POST /v1/fill/progress and POST /v1/demand.
func (s *Server) mountFill(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/fill", s.handleFill)
	mux.HandleFunc("POST /v1/fill/progress", s.handleFillProgress)
	mux.HandleFunc("POST /v1/demand", s.handleDemand)
	s.mountPlacement(mux)
	mux.HandleFunc("GET /v1/fill/status", s.adminOnly("fill status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.FillStatus()) }))
	mux.HandleFunc("GET /v1/admin/fill", s.adminOnly("fill summary", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.FillSummary()) }))
}

// handleFill answers the fill plan of one appliance: every manifest file
// it is not known to hold, with sources ranked peers (same site, holding
// the file, serving) → other sites holding it → the origin, each peer and
// site URL signed with a fill token for that file. Escalation: while no
// peer holds the file and the site's designated fetcher (the first of
// the site's appliances listing it, in rendezvous order) is another
// appliance that is up, the answer says wait; likewise while no site holds
// it and the CDN's designated fetcher is elsewhere. After EscalateAfter of
// waiting the appliance may use the farther sources anyway. So each file
// normally leaves the origin once and spreads between sites and peers.
func (s *Server) handleFill(w http.ResponseWriter, r *http.Request) {
	id, p, files, ok := s.applianceRequest(w, r)
	if !ok {
		return
	}
	now := s.cfg.Now()
	snap := s.snap.Load()
	mySite := s.applianceSiteOf(id)
	s.mu.Lock()
	held := map[string]map[string]bool{}
	for a, set := range s.held {
		held[a] = set
	}
	s.mu.Unlock()
	s.fill.mu.Lock()
	defer s.fill.mu.Unlock()
	// A fill source must be healthy, not necessarily turned up for
	// clients: turn-up waits for the fill this source makes possible.
	up := func(a string) bool {
		st := s.health.Status(a, now).State
		return snap.Appliances[a] != nil && (st == health.Up || st == health.Degraded)
	}
	alive := func(a string) bool {
		sa := snap.Appliances[a]
		return sa != nil && (sa.Serving || sa.State == "unknown")
	}
	plan := api.FillPlan{Appliance: id, Version: p.versions[id], Files: []api.FillFile{},
		Window: api.FillWindow{TimeZone: s.sites[mySite].TimeZone, StartHour: s.fill.cfg.StartHour, EndHour: s.fill.cfg.EndHour}}
	for _, f := range files {
		if held[id][f.Path] {
			continue
		}
		var peers, tiers []api.FillSource
		var siteListers, allListers []placement.Node
		for _, a := range p.holders[f.Path] {
			if a != id && alive(a) {
				allListers = append(allListers, placement.Node{ID: a, Capacity: 1})
				if s.applianceSiteOf(a) == mySite {
					siteListers = append(siteListers, placement.Node{ID: a, Capacity: 1})
				}
			}
		}
		var holders []placement.Node
		for a, set := range held {
			if a != id && set[f.Path] && up(a) && !s.fill.bad[f.Path][a] {
				holders = append(holders, placement.Node{ID: a, Capacity: 1})
			}
		}
		for _, n := range placement.Rank(f.Path, holders) {
			src, err := s.fillSource(s.eps[n.ID].peer, f.Path, now)
			if err != nil {
				s.log.Error("sign fill url", "err", err)
				http.Error(w, "internal error", http.StatusInternalServerError)
				return
			}
			src.Appliance, src.Site = n.ID, s.applianceSiteOf(n.ID)
			if src.Site == mySite {
				src.Tier = api.TierPeer
				peers = append(peers, src)
			} else {
				src.Tier = api.TierSite
				tiers = append(tiers, src)
			}
		}
		ff := api.FillFile{File: f, Urgent: s.fill.urgent[f.Path]} // under fill.mu
		ff.Sources = append(append(peers, tiers...), api.FillSource{URL: s.cfg.OriginURL + "/o/" + f.Path, Tier: api.TierOrigin})
		// Escalation: who should fetch from farther away first.
		me := placement.Node{ID: id, Capacity: 1}
		wait := false
		if len(peers) == 0 {
			if first := placement.Rank(f.Path, append(siteListers, me))[0]; first.ID != id {
				wait = true // a peer will fetch it; take it from the peer
			} else if len(tiers) == 0 {
				if first := placement.Rank(f.Path, append(allListers, me))[0]; first.ID != id {
					wait = true // another site will fetch it from the origin
				}
			}
		}
		key := id + "\x00" + f.Path
		if wait {
			since, ok := s.fill.waitFrom[key]
			if !ok {
				since = now
				s.fill.waitFrom[key] = now
			}
			if left := s.fill.cfg.EscalateAfter - now.Sub(since); left > 0 {
				ff.WaitSeconds = max(left.Seconds(), 0.001)
			}
		} else {
			delete(s.fill.waitFrom, key)
		}
		plan.Files = append(plan.Files, ff)
	}
	writeJSON(w, plan)
}

func (s *Server) applianceSiteOf(id string) string {
	for _, a := range s.cfg.Inventory.Appliances {
		if a.ID == id {
			return a.Site
		}
	}
	return ""
}

// fillSource signs a URL for path on the appliance at base.
func (s *Server) fillSource(base, path string, now time.Time) (api.FillSource, error) {
	tok, err := s.cfg.Keys.Sign(urlsign.Grant{Scope: path, Expires: now.Add(s.fill.cfg.TokenTTL)})
	if err != nil {
		return api.FillSource{}, err
	}
	return api.FillSource{URL: base + "/c/" + tok + "/" + path}, nil
}

func (s *Server) handleFillProgress(w http.ResponseWriter, r *http.Request) {
	var p api.FillProgress
	if !s.readApplianceBody(w, r, "fill progress", maxSmallBody, &p, func() string { return p.Appliance }) {
		return
	}
	if _, ok := s.fill.plan.Load().manifests[p.Appliance]; !ok {
		http.Error(w, fmt.Sprintf("fill progress: unknown appliance %q", p.Appliance), http.StatusForbidden)
		return
	}
	s.fill.mu.Lock()
	s.fill.progress[p.Appliance] = p
	for _, b := range p.Bad {
		src := b.Appliance
		if src == "" {
			src = b.Tier
		}
		if s.fill.bad[b.Path] == nil {
			s.fill.bad[b.Path] = map[string]bool{}
		}
		s.fill.bad[b.Path][src] = true
	}
	s.fill.mu.Unlock()
	writeJSON(w, struct{}{})
}

// FillStatus is every appliance's last fill progress report.
func (s *Server) FillStatus() []api.FillProgress {
	s.fill.mu.Lock()
	defer s.fill.mu.Unlock()
	out := make([]api.FillProgress, 0, len(s.fill.progress))
	for _, p := range s.fill.progress {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Appliance < out[j].Appliance })
	return out
}

// BadCopies is how many distinct (file, source) copies fill agents have
// rejected: each is a source that served bytes failing verification.
func (s *Server) BadCopies() int {
	s.fill.mu.Lock()
	defer s.fill.mu.Unlock()
	n := 0
	for _, m := range s.fill.bad {
		n += len(m)
	}
	return n
}

// FillSummary is fill and placement across the CDN.
func (s *Server) FillSummary() api.FillSummary {
	p := s.fill.plan.Load()
	sum := api.FillSummary{BadCopies: s.BadCopies(), Misses: s.Misses(), Progress: s.FillStatus(), Manifests: map[string]api.ManifestSummary{}}
	for id, files := range p.manifests {
		ms := api.ManifestSummary{Version: p.versions[id], Files: len(files)}
		for _, f := range files {
			ms.Bytes += f.Size
		}
		sum.Manifests[id] = ms
	}
	return sum
}

// FillFetcher is the appliance designated to fetch path from the origin
// for the whole CDN.
func (s *Server) FillFetcher(path string) string {
	return OriginFetcher(path, s.fill.plan.Load().holders[path])
}

// OriginFetcher is, of the appliances whose manifests list path, the one
// that fetches it from the origin for the whole CDN: the first in
// rendezvous order, so every control-plane replica agrees.
func OriginFetcher(path string, holders []string) string {
	if len(holders) == 0 {
		return ""
	}
	nodes := make([]placement.Node, len(holders))
	for i, a := range holders {
		nodes[i] = placement.Node{ID: a, Capacity: 1}
	}
	return placement.Rank(path, nodes)[0].ID
}

// Manifest is appliance id's current manifest.
func (s *Server) Manifest(id string) []content.File { return s.fill.plan.Load().manifests[id] }

// handleDemand takes what an appliance served since its last report. The
// bytes served to each client prefix count as demand at the prefix's home
// site (steer.Home), wherever they were served, and are classified as
// local or a miss (classify). A report without client prefixes counts its
// per-file bytes at the appliance's own site.
func (s *Server) handleDemand(w http.ResponseWriter, r *http.Request) {
	var d api.DemandReport
	if !s.readApplianceBody(w, r, "demand", maxDemandBody, &d, func() string { return d.Appliance }) {
		return
	}
	site := s.applianceSiteOf(d.Appliance)
	if site == "" {
		http.Error(w, fmt.Sprintf("demand: unknown appliance %q", d.Appliance), http.StatusForbidden)
		return
	}
	for p, n := range d.Files {
		if _, err := s.cfg.Catalog.Lookup(p); err != nil || n < 0 {
			http.Error(w, fmt.Sprintf("demand: files[%q]: unknown file or negative bytes", p), http.StatusBadRequest)
			return
		}
	}
	type served struct {
		addr  netip.Addr
		bytes int64
		path  string
	}
	clients := make([]served, len(d.Clients))
	for i, c := range d.Clients {
		addr, err := netip.ParseAddr(c.Client)
		if err != nil || c.Bytes < 0 {
			http.Error(w, fmt.Sprintf("demand: clients[%d]: bad client address or bytes", i), http.StatusBadRequest)
			return
		}
		if _, err := s.cfg.Catalog.Lookup(c.Path); err != nil {
			http.Error(w, fmt.Sprintf("demand: clients[%d].path: %v", i, err), http.StatusBadRequest)
			return
		}
		clients[i] = served{addr, c.Bytes, c.Path}
	}
	now := s.cfg.Now()
	pop := s.fill.demand.served
	if len(clients) == 0 {
		for p, n := range d.Files {
			pop.Observe(site, p, n, now)
		}
	}
	snap := s.snap.Load()
	for _, c := range clients {
		home, ok := steer.Home(snap, c.addr)
		if ok && c.bytes > 0 {
			pop.Observe(home, c.path, c.bytes, now)
			s.fill.demand.servedAny.Store(true)
		}
		kind := classify(snap, home, c.path, site)
		s.fill.mu.Lock()
		m := &s.fill.misses
		switch kind {
		case "local":
			m.Local += c.bytes
		case "content":
			m.Content += c.bytes
			if m.ContentByHome == nil {
				m.ContentByHome = map[string]map[string]int64{}
			}
			if m.ContentByHome[home] == nil {
				m.ContentByHome[home] = map[string]int64{}
			}
			title, _, _ := strings.Cut(c.path, "/")
			m.ContentByHome[home][title] += c.bytes
		case "health":
			m.Health += c.bytes
		default:
			m.Other += c.bytes
		}
		s.fill.mu.Unlock()
	}
	writeJSON(w, struct{}{})
}

// classify says why bytes of path served to a client from servedBy were
// (or were not) served from the client's home site (steer.Home: its best
// site by BGP and tier; "" when no appliance may serve it). Bytes from the
// home site are "local". Otherwise, judged on the current steering
// snapshot (bytes are reported within a heartbeat interval of being
// served): "health" when none of the home site's appliances is serving,
// "content" when none of its serving appliances holds the file, "other"
// (load spreading, failover, route changes) when the file was there to be
// had.
func classify(snap *steer.Snapshot, home, path, servedBy string) string {
	if home == "" || home == servedBy {
		return "local"
	}
	serving, holding := false, false
	for _, a := range snap.Appliances {
		if a.Site != home || !a.Serving {
			continue
		}
		serving = true
		if a.Holds[path] {
			holding = true
		}
	}
	switch {
	case !serving:
		return "health"
	case !holding:
		return "content"
	default:
		return "other"
	}
}

// Misses is the running classification of served bytes.
func (s *Server) Misses() api.Misses {
	s.fill.mu.Lock()
	defer s.fill.mu.Unlock()
	m := s.fill.misses
	m.ContentByHome = make(map[string]map[string]int64, len(m.ContentByHome))
	for home, titles := range s.fill.misses.ContentByHome {
		m.ContentByHome[home] = maps.Clone(titles)
	}
	return m
}
