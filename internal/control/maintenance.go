package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/health"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// TurnUp are the checks a new (or re-enabled) appliance must pass before
// it receives clients: its BGP sessions established with routes (if it
// has BGP), its manifest filled to FillShare, and a verified test
// download (the control plane fetches a small range of a held file with a
// signed URL and compares the bytes with the origin's).
type TurnUp struct {
	// FillShare is the share of the manifest's files it must hold (0..1).
	FillShare float64
	// SkipDownload turns off the test download (tests without servers).
	SkipDownload bool
}

// turnUpState records which appliances passed turn-up. With a store, a
// pass is shared (cpstore's turned_up_ns): an appliance passes once for
// the whole control plane, and a replica that restarts, or starts beside
// the others, does not hold clients back from appliances that serve.
type turnUpState struct {
	mu       sync.Mutex
	passed   map[string]bool
	reason   map[string]string
	checking map[string]bool
}

// pass records that id passed; it reports whether that is news.
func (t *turnUpState) pass(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.passed[id] {
		return false
	}
	if t.passed == nil {
		t.checking, t.passed, t.reason = map[string]bool{}, map[string]bool{}, map[string]string{}
	}
	t.passed[id], t.reason[id] = true, ""
	return true
}

// onHealthChange publishes a new snapshot after id's health changed.
func (s *Server) onHealthChange(id string) { s.rebuild() }

// recordReports keeps queued heartbeat records (persisted when a store is
// configured).
func (s *Server) recordReports(id string, hbs []api.Heartbeat) {}

// turnUpBlocked says why id may not receive clients yet.
func (s *Server) turnUpBlocked(id string) (string, bool) {
	if s.cfg.TurnUp == nil {
		return "", false
	}
	t := &s.turnUp
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.passed[id] {
		return "", false
	}
	if r := t.reason[id]; r != "" {
		return "turn-up: " + r, true
	}
	return "turn-up: checks pending", true
}

// turnUpTick starts the checks of appliances that have not passed and are
// otherwise healthy; Run calls it every half interval.
func (s *Server) turnUpTick(ctx context.Context) {
	if s.cfg.TurnUp == nil {
		return
	}
	now := s.cfg.Now()
	for _, a := range s.cfg.Inventory.Appliances {
		if !s.health.Status(a.ID, now).Serving() {
			continue
		}
		t := &s.turnUp
		t.mu.Lock()
		skip := t.passed[a.ID] || t.checking[a.ID]
		if !skip {
			if t.checking == nil {
				t.checking, t.passed, t.reason = map[string]bool{}, map[string]bool{}, map[string]string{}
			}
			t.checking[a.ID] = true
		}
		t.mu.Unlock()
		if skip {
			continue
		}
		go func() {
			err := s.checkTurnUp(ctx, a.ID)
			t.mu.Lock()
			delete(t.checking, a.ID)
			if err != nil {
				t.reason[a.ID] = err.Error()
			}
			t.mu.Unlock()
			if err == nil && t.pass(a.ID) {
				s.log.Info("appliance passed turn-up", "appliance", a.ID)
				s.persistTurnUp(a.ID, now)
				s.rebuild()
			}
		}()
	}
}

// checkTurnUp runs the turn-up checks of id once.
func (s *Server) checkTurnUp(ctx context.Context, id string) error {
	hb, _ := s.Latest(id)
	for _, b := range hb.BGP {
		if !strings.EqualFold(b.State, "established") {
			return fmt.Errorf("bgp session with %s (%s) is %s", b.Neighbor, b.Family, b.State)
		}
	}
	if len(hb.BGP) > 0 && s.routes.Prefixes(id) == 0 {
		return fmt.Errorf("bgp established but no routes reported")
	}
	want := s.Manifest(id)
	s.mu.Lock()
	held := s.held[id]
	s.mu.Unlock()
	have := 0
	var sample string
	for _, f := range want {
		if held[f.Path] {
			have++
			if sample == "" {
				sample = f.Path
			}
		}
	}
	if len(want) > 0 && float64(have) < s.cfg.TurnUp.FillShare*float64(len(want)) {
		return fmt.Errorf("manifest %d of %d files filled, below the %.0f%% turn-up share", have, len(want), 100*s.cfg.TurnUp.FillShare)
	}
	if s.cfg.TurnUp.SkipDownload || sample == "" {
		return nil
	}
	return s.testDownload(ctx, id, sample)
}

// testDownload fetches the first KiB of path from the appliance with a
// signed URL and from the origin, and compares them.
func (s *Server) testDownload(ctx context.Context, id, path string) error {
	base := s.eps[id].base
	tok, err := s.signingKeys().Sign(urlsign.Grant{Scope: path, Expires: s.cfg.Now().Add(time.Minute)})
	if err != nil {
		return err
	}
	get := func(u string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Range", "bytes=0-1023")
		// A check, not a client: not demand.
		req.Header.Set(api.MeasurementHeader, "turn-up")
		resp, err := s.checkClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent && resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("answered %s", resp.Status)
		}
		return io.ReadAll(io.LimitReader(resp.Body, 1024))
	}
	got, err := get(base + "/c/" + tok + "/" + path)
	if err != nil {
		return fmt.Errorf("test download of %s: %v", path, err)
	}
	want, err := get(s.cfg.OriginURL + "/o/" + path)
	if err != nil {
		return fmt.Errorf("test download: origin copy of %s: %v", path, err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("test download of %s: bytes differ from the origin's", path)
	}
	return nil
}

// DrainRequest is the body of POST /v1/admin/drain and /v1/admin/enable:
// one appliance or a whole site; At and Until bound a scheduled window
// (zero At: now; zero Until: until enabled).
type DrainRequest struct {
	Appliance string    `json:"appliance,omitempty"`
	Site      string    `json:"site,omitempty"`
	At        time.Time `json:"at,omitzero"`
	Until     time.Time `json:"until,omitzero"`
	Reason    string    `json:"reason,omitempty"`
	// Actor is who asked, for the audit log ("operator" when empty, as
	// for the API's admin token). Callers in this process set it (the
	// console names its session's role); it is never read from JSON, so
	// an API caller cannot pose as someone else.
	Actor string `json:"-"`
}

// targets resolves a request to appliance ids.
func (s *Server) targets(req DrainRequest) ([]string, error) {
	var ids []string
	switch {
	case (req.Appliance == "") == (req.Site == ""):
		return nil, fmt.Errorf("name either appliance or site")
	case req.Appliance != "":
		if _, ok := s.applianceSite[req.Appliance]; !ok {
			return nil, fmt.Errorf("unknown appliance %q", req.Appliance)
		}
		ids = []string{req.Appliance}
	default:
		for _, a := range s.cfg.Inventory.Appliances {
			if a.Site == req.Site {
				ids = append(ids, a.ID)
			}
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("unknown site %q (or it has no appliances)", req.Site)
		}
	}
	return ids, nil
}

// Drain drains appliances now or in a window.
func (s *Server) Drain(req DrainRequest) ([]string, error) {
	ids, err := s.targets(req)
	if err != nil {
		return nil, err
	}
	if !req.Until.IsZero() && !req.Until.After(req.At) {
		return nil, fmt.Errorf("until %v is not after at %v", req.Until, req.At)
	}
	for _, id := range ids {
		w := &health.Window{At: req.At, Until: req.Until, Reason: req.Reason}
		s.health.SetDrain(id, w)
		s.persistDrain(id, w)
	}
	s.logAdmin(req.Actor, "drain", req)
	s.log.Info("drain", "appliances", ids, "at", req.At, "until", req.Until, "reason", req.Reason)
	s.rebuild()
	return ids, nil
}

// Enable ends the drain of appliances whose turn-up checks pass; it
// refuses (and leaves every target drained) with the reason otherwise.
func (s *Server) Enable(ctx context.Context, req DrainRequest) ([]string, error) {
	ids, err := s.targets(req)
	if err != nil {
		return nil, err
	}
	if s.cfg.TurnUp != nil {
		for _, id := range ids {
			if err := s.checkTurnUp(ctx, id); err != nil {
				return nil, fmt.Errorf("%w: %s fails turn-up: %v", errRefused, id, err)
			}
		}
	}
	for _, id := range ids {
		s.health.SetDrain(id, nil)
		s.persistDrain(id, nil)
	}
	s.logAdmin(req.Actor, "enable", req)
	s.log.Info("enable", "appliances", ids)
	s.rebuild()
	return ids, nil
}

var errRefused = errors.New("refused")

func (s *Server) handleAdmin(enable bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.isAdmin(r) {
			http.Error(w, "admin: needs an operator token (Authorization: Bearer)", http.StatusUnauthorized)
			return
		}
		var req DrainRequest
		if err := decodeLimited(w, r, maxSmallBody, &req); err != nil {
			http.Error(w, "admin: "+err.Error(), http.StatusBadRequest)
			return
		}
		var ids []string
		var err error
		if enable {
			ids, err = s.Enable(r.Context(), req)
		} else {
			ids, err = s.Drain(req)
		}
		switch {
		case err == nil:
			writeJSON(w, map[string]any{"appliances": ids})
		case enable && errors.Is(err, errRefused):
			http.Error(w, err.Error(), http.StatusConflict)
		default:
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	}
}
