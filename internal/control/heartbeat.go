package control

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/ocdn/ocdn/internal/api"
)

func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	var hb api.Heartbeat
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hb); err != nil {
		http.Error(w, "heartbeat: "+err.Error(), http.StatusBadRequest)
		return
	}
	if _, ok := s.manifests[hb.Appliance]; !ok {
		http.Error(w, fmt.Sprintf("heartbeat: unknown appliance %q", hb.Appliance), http.StatusForbidden)
		return
	}
	for i, p := range hb.Held {
		if _, err := s.cfg.Catalog.Lookup(p); err != nil {
			http.Error(w, fmt.Sprintf("heartbeat: held[%d]: %v", i, err), http.StatusBadRequest)
			return
		}
	}
	s.metrics.heartbeats.Inc()
	prev := s.health.State(hb.Appliance, s.cfg.Now())
	s.health.Beat(hb.Appliance, s.cfg.Now(), hb.Draining)
	changed := prev != s.health.State(hb.Appliance, s.cfg.Now())
	s.mu.Lock()
	if hb.Held != nil {
		set := make(map[string]bool, len(hb.Held))
		for _, p := range hb.Held {
			set[p] = true
		}
		s.held[hb.Appliance] = set
		s.gen[hb.Appliance] = hb.ContentGen
		changed = true
	}
	known := s.gen[hb.Appliance]
	s.mu.Unlock()
	if changed {
		s.rebuild()
	}
	writeJSON(w, api.HeartbeatReply{KnownContentGen: known, ManifestVersion: manifestVersion(s.manifests[hb.Appliance])})
}
