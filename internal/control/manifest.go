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
	s.fill.plan.Store(s.planAll(nil))
}

// planAll places the catalog on every site (one manifest cluster each):
// files ranked by the site's predicted demand per byte, Replicas copies at
// least, more for popular files, capacity filled (placement.Plan). prev is
// the plan it replaces, so that small popularity changes move few files.
func (s *Server) planAll(prev *fillPlan) *fillPlan {
	bySite := map[string][]placement.Node{}
	for _, a := range s.cfg.Inventory.Appliances {
		bySite[a.Site] = append(bySite[a.Site], placement.Node{ID: a.ID, Capacity: int64(a.Capacity)})
	}
	now := s.cfg.Now()
	p := &fillPlan{manifests: map[string][]content.File{}, versions: map[string]string{}, holders: map[string][]string{}, copies: map[string]map[string]int{}}
	if prev != nil {
		p.seq = prev.seq
	}
	p.seq++
	for site, nodes := range bySite {
		pred := s.fill.pop.Region(site, now)
		items := make([]placement.Item, len(s.cfg.Catalog.Files))
		for i, f := range s.cfg.Catalog.Files {
			items[i] = placement.Item{File: f, Demand: pred[f.Path]}
		}
		var prevCopies map[string]int
		if prev != nil {
			prevCopies = prev.copies[site]
		}
		res := placement.Plan(items, nodes, placement.Options{MinReplicas: s.cfg.Replicas, Epsilon: s.fill.cfg.Epsilon, Hysteresis: s.fill.cfg.Hysteresis, Prev: prevCopies})
		p.copies[site] = res.Copies
		for id, files := range res.Nodes {
			p.manifests[id] = files
		}
	}
	for _, a := range s.cfg.Inventory.Appliances {
		p.versions[a.ID] = strconv.Itoa(p.seq) + "-" + manifestVersion(p.manifests[a.ID])
		for _, f := range p.manifests[a.ID] {
			p.holders[f.Path] = append(p.holders[f.Path], a.ID)
		}
	}
	return p
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
