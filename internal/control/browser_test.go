package control

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/probe"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// TestRecipeContextsAreSignedForBrowsers: a recipe's context carries the
// control plane's signature; a page (Origin header) reporting with that
// context unchanged is stored, one that altered it gets 400 naming the
// field; another replica with the same key file verifies it too.
func TestRecipeContextsAreSignedForBrowsers(t *testing.T) {
	keys := urlsign.Generate()
	var servers []*Server
	for range 2 {
		s, _, cat := newTestServerWith(t, func(c *Config) { c.MeasureDir, c.Keys = t.TempDir(), keys })
		f := cat.Files[0].Path
		beat(t, s.Handler(), "e1", 1, []string{f})
		beat(t, s.Handler(), "x1", 1, []string{f})
		t.Cleanup(func() { s.measure.Close() })
		servers = append(servers, s)
	}
	w := do(t, servers[0].Handler(), "GET", "/v1/recipe", "", "10.64.1.2:5000", "")
	var rec probe.Recipe
	if err := json.Unmarshal(w.Body.Bytes(), &rec); err != nil || w.Code != 200 {
		t.Fatalf("recipe: %d %s %v", w.Code, w.Body, err)
	}
	if rec.Context[measure.ContextSigKey] == "" {
		t.Fatalf("recipe context %v has no signature", rec.Context)
	}
	post := func(s *Server, rep measure.Report) (int, string) {
		b, _ := json.Marshal(rep)
		req := httptest.NewRequest("POST", "/v1/reports", strings.NewReader(string(b)))
		req.RemoteAddr = "10.64.1.2:5001"
		req.Header.Set("Origin", "http://127.0.0.1:18000")
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		return w.Code, w.Body.String()
	}
	rep := func(id string, ctx map[string]string) measure.Report {
		now := time.Now()
		return measure.Report{ID: id, Recipe: rec.ID, Context: ctx, ClientTime: now, Pulses: []measure.Pulse{{
			Target: rec.Targets[0].ID, Appliance: rec.Targets[0].Appliance, Type: measure.TypeHTTPTTFB, Start: now,
			TTFBMs: 3, DurationMs: 4, Status: measure.StatusOK}}}
	}
	if code, body := post(servers[1], rep("browser-report-0001", rec.Context)); code != 200 {
		t.Errorf("report with the issued context, to the other replica = %d %s, want 200", code, body)
	}
	forged := map[string]string{}
	for k, v := range rec.Context {
		forged[k] = v
	}
	forged["steered_site"] = "elsewhere"
	if code, body := post(servers[0], rep("browser-report-0002", forged)); code != 400 || !strings.Contains(body, `context["sig"]`) {
		t.Errorf("report with an altered context = %d %s, want 400 naming context[\"sig\"]", code, body)
	}
	if code, body := post(servers[0], rep("browser-report-0003", nil)); code != 400 || !strings.Contains(body, "context: missing") {
		t.Errorf("report without context = %d %s, want 400 naming context", code, body)
	}
}

// TestRecipeCarriesIssueTime: every recipe's context says when the
// control plane issued it, on the clock its measured steering records
// moves with, so an analysis can leave out reports of recipes issued
// before a move (internal/lab/measured.go).
func TestRecipeCarriesIssueTime(t *testing.T) {
	s, clk, cat := newTestServerWith(t, func(c *Config) { c.MeasureDir = t.TempDir() })
	t.Cleanup(func() { s.measure.Close() })
	f := cat.Files[0].Path
	beat(t, s.Handler(), "e1", 1, []string{f})
	beat(t, s.Handler(), "x1", 1, []string{f})
	for _, at := range []time.Time{clk.t, clk.t.Add(90 * time.Second)} {
		clk.t = at
		w := do(t, s.Handler(), "GET", "/v1/recipe", "", "10.64.1.2:5000", "")
		var rec probe.Recipe
		if err := json.Unmarshal(w.Body.Bytes(), &rec); err != nil || w.Code != 200 {
			t.Fatalf("recipe: %d %s %v", w.Code, w.Body, err)
		}
		got, err := time.Parse(time.RFC3339Nano, rec.Context[measure.ContextIssuedAt])
		if err != nil || !got.Equal(at) {
			t.Errorf("recipe context issued_at = %q, want %s (the server's clock)", rec.Context[measure.ContextIssuedAt], at.UTC().Format(time.RFC3339Nano))
		}
	}
}
