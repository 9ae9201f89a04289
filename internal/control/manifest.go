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

// place computes every appliance's manifest: each site is one manifest
// cluster holding as much of the catalog as fits, Replicas copies a file.
func (s *Server) place() map[string][]content.File {
	bySite := map[string][]placement.Node{}
	for _, a := range s.cfg.Inventory.Appliances {
		bySite[a.Site] = append(bySite[a.Site], placement.Node{ID: a.ID, Capacity: int64(a.Capacity)})
	}
	out := map[string][]content.File{}
	for _, nodes := range bySite {
		for id, files := range placement.Cluster(s.cfg.Catalog.Files, nodes, s.cfg.Replicas) {
			out[id] = files
		}
	}
	return out
}

// ManifestSize is how many files appliance id should hold.
func (s *Server) ManifestSize(id string) int { return len(s.manifests[id]) }

func (s *Server) handleManifest(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("appliance")
	files, ok := s.manifests[id]
	if !ok {
		http.Error(w, fmt.Sprintf("appliance=%q: unknown appliance", id), http.StatusNotFound)
		return
	}
	writeJSON(w, api.Manifest{Appliance: id, Version: manifestVersion(files), Origin: s.cfg.OriginURL, Files: files})
}

func manifestVersion(files []content.File) string {
	h := xxhash.New()
	for _, f := range files {
		h.WriteString(f.Path + "\x00" + f.SHA256 + "\n")
	}
	return strconv.FormatUint(h.Sum64(), 36)
}
