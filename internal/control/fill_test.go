package control

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/api"
)

func fillPlanOf(t *testing.T, s *Server, id string) map[string]api.FillFile {
	t.Helper()
	w := do(t, s.Handler(), "GET", "/v1/fill?appliance="+id, "", "127.1.0.1:5000", "")
	if w.Code != 200 {
		t.Fatalf("GET /v1/fill?appliance=%s = %d %s", id, w.Code, w.Body)
	}
	var p api.FillPlan
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	out := map[string]api.FillFile{}
	for _, f := range p.Files {
		out[f.File.Path] = f
	}
	return out
}

// TestFillEscalation: the appliance designated to fetch a file from the
// origin gets it at once; the other waits, then fills from the first
// (another site: tier) once it holds the file, or from the origin after
// EscalateAfter if it never does.
func TestFillEscalation(t *testing.T) {
	s, clk, cat := newTestServer(t)
	h := s.Handler()
	f, g := cat.Files[0].Path, cat.Files[1].Path
	fetcher := s.FillFetcher(f)
	other := map[string]string{"e1": "x1", "x1": "e1"}[fetcher]
	beat(t, h, "e1", 1, []string{})
	beat(t, h, "x1", 1, []string{})
	if ff := fillPlanOf(t, s, fetcher)[f]; ff.WaitSeconds != 0 || ff.Sources[len(ff.Sources)-1].Tier != api.TierOrigin {
		t.Errorf("fetcher %s's plan for %s = %+v, want no wait and the origin", fetcher, f, ff)
	}
	ff := fillPlanOf(t, s, other)[f]
	if ff.WaitSeconds <= 0 || len(ff.Sources) != 1 {
		t.Errorf("other %s's plan for %s = %+v, want to wait with only the origin listed", other, f, ff)
	}
	beat(t, h, fetcher, 2, []string{f})
	ff = fillPlanOf(t, s, other)[f]
	if ff.WaitSeconds != 0 || len(ff.Sources) != 2 || ff.Sources[0].Tier != api.TierSite || ff.Sources[0].Appliance != fetcher ||
		!strings.Contains(ff.Sources[0].URL, "/c/") || !strings.HasSuffix(ff.Sources[0].URL, "/"+f) {
		t.Errorf("after %s holds %s: plan = %+v, want %s's signed URL (tier) then the origin, no wait", fetcher, f, ff, fetcher)
	}
	// A file the other must wait for escalates to the origin in time.
	var waiter string
	for _, id := range []string{"e1", "x1"} {
		if fillPlanOf(t, s, id)[g].WaitSeconds > 0 {
			waiter = id
		}
	}
	if waiter == "" {
		t.Fatalf("nobody waits for %s", g)
	}
	clk.t = clk.t.Add(61 * time.Second)
	if ff := fillPlanOf(t, s, waiter)[g]; ff.WaitSeconds != 0 {
		t.Errorf("after EscalateAfter, %s still waits for %s: %+v", waiter, g, ff)
	}
	// Bad copies reported by a fill agent are no longer offered.
	body, _ := json.Marshal(api.FillProgress{Appliance: other, State: "filling", Bad: []api.BadCopy{{Path: f, Appliance: fetcher, Tier: api.TierSite}}})
	if w := do(t, h, "POST", "/v1/fill/progress", string(body), "127.1.0.1:5000", ""); w.Code != 200 {
		t.Fatalf("POST /v1/fill/progress = %d %s", w.Code, w.Body)
	}
	if ff := fillPlanOf(t, s, other)[f]; len(ff.Sources) != 1 || s.BadCopies() != 1 {
		t.Errorf("after a bad copy report: sources %+v, bad copies %d; want the origin only and 1", ff.Sources, s.BadCopies())
	}
	if w := do(t, h, "GET", "/v1/fill?appliance=nope", "", "127.1.0.1:5000", ""); w.Code != 404 {
		t.Errorf("GET /v1/fill for an unknown appliance = %d, want 404", w.Code)
	}
}

// TestReplanChurn: re-planning with unchanged popularity moves nothing.
func TestReplanChurn(t *testing.T) {
	s, _, _ := newTestServer(t)
	if r := s.Replan("admin"); r.AddedBytes != 0 || r.PlacedBytes == 0 {
		t.Errorf("Replan() = %+v, want 0 bytes added of > 0 placed", r)
	}
}
