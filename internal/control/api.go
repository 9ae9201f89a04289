package control

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/content"
)

// maxBody bounds request bodies; the largest legitimate one is a
// heartbeat listing every file an appliance holds.
const maxBody = 8 << 20

// Handler returns the control plane's HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/steer", s.handleSteer)
	mux.HandleFunc("POST /v1/heartbeat", s.handleHeartbeat)
	mux.HandleFunc("GET /v1/manifest", s.handleManifest)
	mux.HandleFunc("GET /v1/titles/{title}", s.handleTitle)
	mux.HandleFunc("POST /v1/routes", s.handleRoutes)
	mux.HandleFunc("GET /v1/routes/consistency", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Consistency()) })
	mux.HandleFunc("GET /v1/appliances", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Appliances()) })
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return mux
}

func (s *Server) handleSteer(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.metrics.steerLatency.Observe(time.Since(start).Seconds()) }()
	q := r.URL.Query()
	fail := func(code int, format string, args ...any) {
		s.metrics.steerRequests.WithLabelValues("bad_request").Inc()
		http.Error(w, fmt.Sprintf(format, args...), code)
	}
	client, err := remoteAddr(r)
	if err != nil {
		fail(http.StatusBadRequest, "client address: %v", err)
		return
	}
	admin := s.isAdmin(r)
	if c := q.Get("client"); c != "" {
		if !admin {
			fail(http.StatusForbidden, "client=: needs an admin token")
			return
		}
		if client, err = netip.ParseAddr(c); err != nil {
			fail(http.StatusBadRequest, "client=%q: not an IP address", c)
			return
		}
	}
	explain := q.Get("explain") == "1"
	if explain && !admin {
		fail(http.StatusForbidden, "explain=1: needs an admin token")
		return
	}
	n := 5
	if v := q.Get("n"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 20 {
			fail(http.StatusBadRequest, "n=%q: want a number from 1 to 20", v)
			return
		}
	}
	raw := q.Get("files")
	if raw == "" {
		fail(http.StatusBadRequest, "files=: name at least one file as title/file")
		return
	}
	paths := strings.Split(raw, ",")
	if len(paths) > 100 {
		fail(http.StatusBadRequest, "files=: at most 100 files per request")
		return
	}
	for _, p := range paths {
		if err := content.ValidatePath(p); err != nil {
			fail(http.StatusBadRequest, "files=: %v", err)
			return
		}
		if _, err := s.cfg.Catalog.Lookup(p); err != nil {
			fail(http.StatusNotFound, "files=: %v", err)
			return
		}
	}
	snap := s.snap.Load()
	resp := api.SteerResponse{Client: client.String(), Files: make([]api.FileSteer, len(paths))}
	for i, p := range paths {
		choices, why, err := s.engine.Steer(snap, client, p, n, explain)
		if err != nil {
			s.log.Error("steer", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		resp.Files[i] = api.FileSteer{Path: p, URLs: choices, Explanation: why}
	}
	s.metrics.steerRequests.WithLabelValues("ok").Inc()
	writeJSON(w, resp)
}

func (s *Server) isAdmin(r *http.Request) bool {
	if s.cfg.AdminToken == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.AdminToken)) == 1
}

func remoteAddr(r *http.Request) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr().Unmap(), nil
}

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

func (s *Server) handleTitle(w http.ResponseWriter, r *http.Request) {
	files := s.cfg.Catalog.TitleFiles(r.PathValue("title"))
	if len(files) == 0 {
		http.Error(w, fmt.Sprintf("title %q: not in the catalog", r.PathValue("title")), http.StatusNotFound)
		return
	}
	writeJSON(w, files)
}

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

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		// The client went away; nothing to tell it.
		return
	}
}
