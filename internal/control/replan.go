package control

import (
	"cmp"
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/placement"
)

// Replanning closes the loop from demand to manifests. Every
// CheckInterval the control plane folds the steering answers counted
// since the last check into popularity and measures, per site, how far
// the ranking has moved since the last plan: the files the plan does not
// place that now rank within the site's capacity (displacing, see
// displacing) and did not at the last plan. It replans when ReplanInterval
// has passed, when those newcomers add up to RankingChange of a site's
// placed bytes (once demand has been counted for a half-life: before, the
// ranking is a few plays), when the last plan was held back by the churn
// bound, and when a new release feed arrives. Each plan
// keeps files where they are unless demand moved enough (placement
// hysteresis) and adds at most MaxChurn of a site's capacity to its
// appliances; a new manifest version then reaches each appliance in its
// next heartbeat reply, and it fills the delta in its next window (urgent
// release files at once, under a lower rate cap). An appliance stops
// advertising a file it is about to delete and deletes it only after the
// control plane has acknowledged that (internal/fill), so no client is
// steered to a file that is going away.

// replanState is the replan bookkeeping.
type replanState struct {
	mu       sync.Mutex // held through a replan
	last     time.Time
	baseline map[string]map[string]bool // site → files displacing right after the last plan
	capped   bool                       // the last plan held back files for the churn bound
	// firstDemand is when demand was first counted: an average of less
	// than a half-life of observations is its first few plays, so the
	// ranking is not acted on before then (interval replans still run).
	firstDemand time.Time
	count       int
	recent      []api.Replan

	replans *prometheus.CounterVec
	added   prometheus.Counter
}

// maxRecentReplans bounds the history GET /v1/admin/placement shows.
const maxRecentReplans = 50

func (r *replanState) initMetrics() []prometheus.Collector {
	r.replans = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ocdn_control_replans_total",
		Help: "Placement replans by reason (interval, ranking, feed, admin)."}, []string{"reason"})
	r.added = prometheus.NewCounter(prometheus.CounterOpts{Name: "ocdn_control_replan_added_bytes_total",
		Help: "Bytes replans added to appliances' manifests (what fill must download)."})
	return []prometheus.Collector{r.replans, r.added}
}

// Replan recomputes every manifest from current popularity now; reason
// ("interval", "ranking", "feed", "admin") is recorded with it. It
// returns what the new plan changed.
func (s *Server) Replan(reason string) api.Replan {
	f := s.fill
	rs := &f.replan
	rs.mu.Lock()
	defer rs.mu.Unlock()
	now := s.cfg.Now()
	f.demand.fold(now)
	old := f.plan.Load()
	p, sites := s.planAll(old)
	f.plan.Store(p)
	added, placed := placement.Churn(old.manifests, p.manifests)
	rec := api.Replan{Seq: p.seq, At: now, Reason: reason, AddedBytes: added, PlacedBytes: placed, Sites: sites}
	rs.last = now
	rs.capped = slices.ContainsFunc(sites, func(c api.SiteChurn) bool { return c.Capped })
	rs.baseline = s.displacingBySite(p, now)
	rs.count++
	rs.recent = append(rs.recent, rec)
	if len(rs.recent) > maxRecentReplans {
		rs.recent = slices.Delete(rs.recent, 0, len(rs.recent)-maxRecentReplans)
	}
	if rs.replans != nil {
		rs.replans.WithLabelValues(reason).Inc()
		rs.added.Add(float64(added))
	}
	s.log.Info("replanned placement", "reason", reason, "seq", p.seq, "bytes_added", added, "bytes_placed", placed, "capped", rs.capped)
	return rec
}

// replanLoop checks demand every CheckInterval and replans when due (see
// the comment at the top of this file), until ctx ends.
func (s *Server) replanLoop(ctx context.Context) {
	f := s.fill
	t := time.NewTicker(f.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if reason := s.replanDue(); reason != "" {
			s.Replan(reason)
		}
	}
}

// replanDue folds the demand counted since the last check and says why a
// replan is due ("" when none is).
func (s *Server) replanDue() string {
	f := s.fill
	now := s.cfg.Now()
	f.demand.fold(now)
	rs := &f.replan
	rs.mu.Lock()
	if rs.firstDemand.IsZero() && f.demand.seen() {
		rs.firstDemand = now
	}
	last, capped, baseline, first := rs.last, rs.capped, rs.baseline, rs.firstDemand
	rs.mu.Unlock()
	if f.cfg.ReplanInterval > 0 && now.Sub(last) >= f.cfg.ReplanInterval {
		return "interval"
	}
	if capped {
		return "ranking"
	}
	if first.IsZero() || now.Sub(first) < f.demand.steered.HalfLife() {
		return "" // too little history to trust the ranking
	}
	p := f.plan.Load()
	for site, files := range s.displacingBySite(p, now) {
		var placed, fresh int64
		for path := range p.copies[site] {
			placed += s.fileSize(path)
		}
		for path := range files {
			if !baseline[site][path] {
				fresh += s.fileSize(path)
			}
		}
		if placed > 0 && float64(fresh) >= f.cfg.RankingChange*float64(placed) {
			return "ranking"
		}
	}
	return ""
}

func (s *Server) fileSize(path string) int64 {
	f, _ := s.cfg.Catalog.Lookup(path)
	return f.Size
}

// displacingBySite is displacing for every site under plan p.
func (s *Server) displacingBySite(p *fillPlan, now time.Time) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, site := range s.cfg.Inventory.Sites {
		out[site.ID] = displacing(s.cfg.Catalog.Files, s.fill.demand.region(site.ID, now), p.copies[site.ID], s.fill.cfg.Hysteresis)
	}
	return out
}

// displacing is the files a site's plan does not place that the current
// predictions rank within its placed bytes (one copy of each file): the
// files a plan made now would want. It ranks as placement.Plan selects:
// demand per byte stored, placed files with the hysteresis edge, then
// placed before unplaced, then path.
func displacing(files []content.File, pred map[string]float64, placed map[string]int, hysteresis float64) map[string]bool {
	if hysteresis <= 0 {
		hysteresis = 0.1
	}
	type ranked struct {
		density float64
		placed  bool
		size    int64
		path    string
	}
	list := make([]ranked, 0, len(files))
	var placedBytes int64
	for _, f := range files {
		if f.Size <= 0 {
			continue
		}
		r := ranked{density: pred[f.Path] / float64(f.Size), placed: placed[f.Path] > 0, size: f.Size, path: f.Path}
		if r.placed {
			r.density *= 1 + hysteresis
			placedBytes += f.Size
		}
		list = append(list, r)
	}
	slices.SortFunc(list, func(a, b ranked) int {
		if c := cmp.Compare(b.density, a.density); c != 0 {
			return c
		}
		if a.placed != b.placed {
			if a.placed {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.path, b.path)
	})
	out := map[string]bool{}
	var taken int64
	for _, r := range list {
		if taken >= placedBytes {
			break
		}
		taken += r.size
		if !r.placed {
			out[r.path] = true
		}
	}
	return out
}

// mountPlacement adds the operator's placement endpoints.
func (s *Server) mountPlacement(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/admin/placement", s.adminOnly("placement", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.PlacementStatus(10)) }))
	mux.HandleFunc("POST /v1/admin/replan", s.adminOnly("replan", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Replan("admin")) }))
	mux.HandleFunc("PUT /v1/admin/popularity-feed", s.adminOnly("popularity feed", s.handleFeed))
}

// handleFeed takes a new release feed (the format of the config's
// popularity_feed file), which replaces the current one, and replans: the
// files it predicts are placed, and its urgent ones filled outside the
// window. A feed naming unknown files, negative demand or a file twice is
// refused (400) with the line of the bad entry, and nothing changes.
func (s *Server) handleFeed(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFeedBody))
	if err != nil {
		http.Error(w, "popularity feed: "+err.Error(), http.StatusBadRequest)
		return
	}
	feed, err := content.ParseFeed(data, s.cfg.Catalog)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.fill.setFeed(feed)
	writeJSON(w, s.Replan("feed"))
}

// PlacementStatus is the replans so far and, per site, the top files by
// predicted demand; top ≤ 0 leaves Top out, which spares copying every
// site's demand for a caller that polls the replans only (the console).
func (s *Server) PlacementStatus(top int) api.PlacementStatus {
	rs := &s.fill.replan
	rs.mu.Lock()
	st := api.PlacementStatus{ChurnBound: s.fill.cfg.MaxChurn, Replans: rs.count, Recent: slices.Clone(rs.recent)}
	rs.mu.Unlock()
	if top <= 0 {
		return st
	}
	st.Top = map[string][]api.FileDemand{}
	p := s.fill.plan.Load()
	now := s.cfg.Now()
	for _, site := range s.cfg.Inventory.Sites {
		var fs []api.FileDemand
		for path, v := range s.fill.demand.region(site.ID, now) {
			fs = append(fs, api.FileDemand{Path: path, BytesPerDay: v, Placed: p.copies[site.ID][path]})
		}
		slices.SortFunc(fs, func(a, b api.FileDemand) int {
			if c := cmp.Compare(b.BytesPerDay, a.BytesPerDay); c != 0 {
				return c
			}
			return cmp.Compare(a.Path, b.Path)
		})
		st.Top[site.ID] = fs[:min(top, len(fs))]
	}
	return st
}
