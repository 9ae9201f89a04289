package control

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/cespare/xxhash/v2"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/placement"
)

// place computes every appliance's first manifest (see planAll) and sets
// up the fill state; it runs once, from New. The plan it stores is the one
// source of every manifest: /v1/manifest, fill plans, heartbeat replies
// and turn-up read it, and Replan replaces it.
func (s *Server) place() {
	s.initFill()
	if reg := s.cfg.Registry; reg != nil {
		reg.MustRegister(s.fill.replan.initMetrics()...)
	} else {
		s.fill.replan.initMetrics()
	}
	p, _ := s.planAll(nil)
	s.fill.plan.Store(p)
	s.fill.replan.last = s.cfg.Now()
	s.fill.replan.baseline = s.displacingBySite(p, s.cfg.Now())
}

// planAll places the catalog on every site (one manifest cluster each):
// files ranked by the predicted demand of the site's own clients per byte,
// Replicas copies at least, more for popular files, capacity filled
// (placement.Plan). prev is the plan it replaces: files stay on the
// appliances that hold them unless demand moved enough, and what the new
// plan adds to a site's appliances is bounded by MaxChurn of its capacity.
// It returns each site's churn too.
func (s *Server) planAll(prev *fillPlan) (*fillPlan, []api.SiteChurn) {
	bySite := map[string][]placement.Node{}
	capacity := map[string]int64{}
	for _, a := range s.cfg.Inventory.Appliances {
		bySite[a.Site] = append(bySite[a.Site], placement.Node{ID: a.ID, Capacity: int64(a.Capacity)})
		capacity[a.Site] += int64(a.Capacity)
	}
	now := s.cfg.Now()
	p := &fillPlan{manifests: map[string][]content.File{}, versions: map[string]string{}, holders: map[string][]string{}, copies: map[string]map[string]int{}}
	if prev != nil {
		p.seq = prev.seq
	}
	p.seq++
	var churn []api.SiteChurn
	for _, site := range s.cfg.Inventory.Sites {
		nodes := bySite[site.ID]
		if len(nodes) == 0 {
			continue
		}
		pred := s.fill.demand.region(site.ID, now)
		items := make([]placement.Item, len(s.cfg.Catalog.Files))
		for i, f := range s.cfg.Catalog.Files {
			items[i] = placement.Item{File: f, Demand: pred[f.Path]}
		}
		opt := placement.Options{MinReplicas: s.cfg.Replicas, Epsilon: s.fill.cfg.Epsilon, Hysteresis: s.fill.cfg.Hysteresis}
		if prev != nil {
			opt.PrevNodes = map[string][]string{}
			for _, n := range nodes {
				for _, f := range prev.manifests[n.ID] {
					opt.PrevNodes[f.Path] = append(opt.PrevNodes[f.Path], n.ID)
				}
			}
			// At least the largest file: a bound below it would stop
			// placement from ever following demand.
			opt.MaxAdded = max(int64(s.fill.cfg.MaxChurn*float64(capacity[site.ID])), s.maxFileSize)
		}
		res := placement.Plan(items, nodes, opt)
		p.copies[site.ID] = res.Copies
		for id, files := range res.Nodes {
			p.manifests[id] = files
		}
		if prev != nil {
			churn = append(churn, api.SiteChurn{Site: site.ID, AddedBytes: res.Added, CapacityBytes: capacity[site.ID],
				Share: float64(res.Added) / float64(max(capacity[site.ID], 1)), Capped: res.Capped})
		}
	}
	for _, a := range s.cfg.Inventory.Appliances {
		p.versions[a.ID] = strconv.Itoa(p.seq) + "-" + manifestVersion(p.manifests[a.ID])
		for _, f := range p.manifests[a.ID] {
			p.holders[f.Path] = append(p.holders[f.Path], a.ID)
		}
	}
	return p, churn
}

// ManifestSize is how many files appliance id should hold.
func (s *Server) ManifestSize(id string) int { return len(s.fill.plan.Load().manifests[id]) }

// applianceRequest reads ?appliance=ID of a request only that appliance
// may make, checks its credential and finds its manifest in the current
// plan; on failure it has answered (401, 403 or 404) and ok is false.
func (s *Server) applianceRequest(w http.ResponseWriter, r *http.Request) (id string, p *fillPlan, files []content.File, ok bool) {
	id = r.URL.Query().Get("appliance")
	if !s.authorizeAppliance(w, r, id) {
		return "", nil, nil, false
	}
	p = s.fill.plan.Load()
	if files, ok = p.manifests[id]; !ok {
		http.Error(w, fmt.Sprintf("appliance=%q: unknown appliance", id), http.StatusNotFound)
	}
	return id, p, files, ok
}

func (s *Server) handleManifest(w http.ResponseWriter, r *http.Request) {
	id, p, files, ok := s.applianceRequest(w, r)
	if !ok {
		return
	}
	if files == nil {
		files = []content.File{}
	}
	writeJSON(w, api.Manifest{Appliance: id, Version: p.versions[id], Origin: s.cfg.OriginURL, Files: files})
}

func manifestVersion(files []content.File) string {
	h := xxhash.New()
	for _, f := range files {
		h.WriteString(f.Path + "\x00" + f.SHA256 + "\n")
	}
	return strconv.FormatUint(h.Sum64(), 36)
}
