package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/health"
)

// maxHeartbeatBody bounds a heartbeat (with the appliance's file list) and
// a batch of queued ones.

// maxBatch bounds the records of one POST /v1/heartbeats.
const maxBatch = 20000

// healthState is the control plane's heartbeat bookkeeping beyond the
// tracker: the latest heartbeat of each appliance and report counters.
// The zero value is ready.
type healthState struct {
	mu     sync.Mutex
	latest map[string]api.Heartbeat // without Held
	// queuedReceived counts heartbeat records that arrived late (queued
	// by their appliance during an outage) and were recorded.
	queuedReceived int64
	// authFailures counts requests refused for a bad appliance token.
	authFailures atomic.Int64
}

func (h *healthState) setLatest(hb api.Heartbeat) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.latest == nil {
		h.latest = map[string]api.Heartbeat{}
	}
	hb.Held = nil
	if old, ok := h.latest[hb.Appliance]; ok && !hb.SentAt.IsZero() && hb.SentAt.Before(old.SentAt) {
		return // a queued record older than what we have
	}
	h.latest[hb.Appliance] = hb
}

// Latest is the last heartbeat id sent (without its file list).
func (s *Server) Latest(id string) (api.Heartbeat, bool) {
	s.hs.mu.Lock()
	defer s.hs.mu.Unlock()
	hb, ok := s.hs.latest[id]
	return hb, ok
}

// QueuedReportsReceived counts late (queued) heartbeat records recorded.
func (s *Server) QueuedReportsReceived() int64 {
	s.hs.mu.Lock()
	defer s.hs.mu.Unlock()
	return s.hs.queuedReceived
}

// errHeartbeat marks a heartbeat that is malformed; the handler answers 400.
var errHeartbeat = errors.New("heartbeat")

// checkHeartbeat validates a decoded heartbeat and names the problem.
func (s *Server) checkHeartbeat(hb *api.Heartbeat) (status int, err error) {
	if hb.Appliance == "" {
		return http.StatusBadRequest, fmt.Errorf("%w: appliance: missing", errHeartbeat)
	}
	if _, ok := s.applianceSite[hb.Appliance]; !ok {
		return http.StatusForbidden, fmt.Errorf("heartbeat: unknown appliance %q", hb.Appliance)
	}
	for i, p := range hb.Held {
		if _, err := s.cfg.Catalog.Lookup(p); err != nil {
			return http.StatusBadRequest, fmt.Errorf("%w: held[%d]: %v", errHeartbeat, i, err)
		}
	}
	bad := func(v float64) bool { return v < 0 || math.IsNaN(v) || math.IsInf(v, 0) }
	if l := hb.Load; l != nil {
		switch {
		case bad(l.BitsPerSec):
			return http.StatusBadRequest, fmt.Errorf("%w: load.bits_per_sec: %v is not a rate", errHeartbeat, l.BitsPerSec)
		case bad(l.RequestsPerSec):
			return http.StatusBadRequest, fmt.Errorf("%w: load.requests_per_sec: %v is not a rate", errHeartbeat, l.RequestsPerSec)
		case bad(l.CPU) || l.CPU > 1:
			return http.StatusBadRequest, fmt.Errorf("%w: load.cpu: %v is not a share from 0 to 1", errHeartbeat, l.CPU)
		case l.Connections < 0:
			return http.StatusBadRequest, fmt.Errorf("%w: load.connections: %d is negative", errHeartbeat, l.Connections)
		case bad(l.CapacityBitsPerSec):
			return http.StatusBadRequest, fmt.Errorf("%w: load.capacity_bits_per_sec: %v is not a rate", errHeartbeat, l.CapacityBitsPerSec)
		}
	}
	if d := hb.Disk; d != nil && (d.UsedBytes < 0 || d.CapacityBytes < 0 || d.FailedDisks < 0 || d.FailedDisks > max(d.Disks, 0)) {
		return http.StatusBadRequest, fmt.Errorf("%w: disk: %+v is inconsistent (negative, or more failed disks than disks)", errHeartbeat, *d)
	}
	if len(hb.State) > 200 || len(hb.Software) > 200 || len(hb.ManifestVersion) > 200 {
		return http.StatusBadRequest, fmt.Errorf("%w: state, software or manifest_version longer than 200 bytes", errHeartbeat)
	}
	return 0, nil
}

// healthReport turns a heartbeat into what the tracker needs.
func healthReport(hb *api.Heartbeat) health.Report {
	r := health.Report{SelfDraining: hb.Draining}
	if l := hb.Load; l != nil {
		r.Utilization = l.CPU
		if l.CapacityBitsPerSec > 0 {
			r.Utilization = max(r.Utilization, l.BitsPerSec/l.CapacityBitsPerSec)
		}
		r.Transfers = l.Connections
	}
	if hb.Disk != nil {
		r.FailedDisks = hb.Disk.FailedDisks
	}
	return r
}

// decodeLimited decodes at most limit bytes of strict JSON (no unknown
// fields, nothing after the object) into v.
func decodeLimited(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("body too large: more than %d bytes: %w", tooBig.Limit, err)
		}
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	// The credential first: nothing from an unauthenticated sender is
	// even parsed, let alone recorded.
	var hb api.Heartbeat
	if !s.readApplianceBody(w, r, "heartbeat", maxHeartbeatBody, &hb, func() string { return hb.Appliance }) {
		return
	}
	if code, err := s.checkHeartbeat(&hb); err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	s.metrics.heartbeats.Inc()
	now := s.cfg.Now()
	prev := s.health.Status(hb.Appliance, now)
	s.health.Report(hb.Appliance, now, healthReport(&hb))
	cur := s.health.Status(hb.Appliance, now)
	changed := prev.State != cur.State || prev.Serving() != cur.Serving()
	s.hs.setLatest(hb)
	s.persistBeat(hb, now)
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
		s.onHealthChange(hb.Appliance)
	}
	writeJSON(w, api.HeartbeatReply{KnownContentGen: known, ManifestVersion: s.fill.plan.Load().versions[hb.Appliance],
		KeysVersion: keysVersion(s.signingKeys())})
}

// handleHeartbeats records heartbeat records an appliance queued while it
// could not reach the control plane. They carry counters for history; they
// do not make an appliance live (the current heartbeat that follows does).
func (s *Server) handleHeartbeats(w http.ResponseWriter, r *http.Request) {
	var b api.HeartbeatBatch
	first := func() string {
		if len(b.Heartbeats) == 0 {
			return ""
		}
		return b.Heartbeats[0].Appliance
	}
	if !s.readApplianceBody(w, r, "heartbeats", maxHeartbeatBody, &b, first) {
		return
	}
	if len(b.Heartbeats) > maxBatch {
		http.Error(w, fmt.Sprintf("heartbeats: %d records; at most %d per request", len(b.Heartbeats), maxBatch), http.StatusBadRequest)
		return
	}
	if len(b.Heartbeats) == 0 {
		writeJSON(w, api.HeartbeatBatchReply{})
		return
	}
	id := b.Heartbeats[0].Appliance
	for i := range b.Heartbeats {
		hb := &b.Heartbeats[i]
		if hb.Appliance != id {
			http.Error(w, fmt.Sprintf("heartbeats[%d]: appliance %q differs from the batch's %q", i, hb.Appliance, id), http.StatusBadRequest)
			return
		}
		if code, err := s.checkHeartbeat(hb); err != nil {
			http.Error(w, fmt.Sprintf("heartbeats[%d]: %v", i, err), code)
			return
		}
	}
	for _, hb := range b.Heartbeats {
		s.hs.setLatest(hb)
	}
	s.hs.mu.Lock()
	s.hs.queuedReceived += int64(len(b.Heartbeats))
	s.hs.mu.Unlock()
	s.recordReports(id, b.Heartbeats)
	writeJSON(w, api.HeartbeatBatchReply{Recorded: len(b.Heartbeats)})
}

// applianceHealth is what steering needs of an appliance's health.
func (s *Server) applianceHealth(id string, now time.Time) (serving bool, st health.Status) {
	st = s.health.Status(id, now)
	serving = st.Serving()
	if serving {
		if reason, ok := s.turnUpBlocked(id); ok {
			serving = false
			st.State, st.Reason = health.Unknown, reason
		}
	}
	return serving, st
}

// healthKey summarizes what of an appliance's health steering sees, so
// Run rebuilds only when it changed.
func (s *Server) healthKey(id string, now time.Time) string {
	serving, st := s.applianceHealth(id, now)
	if serving {
		return string(st.State) + "+"
	}
	return string(st.State)
}
