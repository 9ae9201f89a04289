package control

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/rib"
)

// loopServer is the test server with six titles, an embedded site (e1)
// with room for about two of them and an IXP site (x1) holding all; e1
// has a route to the ISP's clients (10.64.0.0/16) and both report what
// their manifests list.
func loopServer(t *testing.T, mutate func(*Config)) (*Server, *clock, *content.Catalog) {
	t.Helper()
	cat, err := content.Synth(content.SynthSpec{Titles: 6, LadderKbps: []int{100}, Duration: 8 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	title := cat.TitleFiles(cat.Titles()[0])
	var titleBytes int64
	for _, f := range title {
		titleBytes += f.Size
	}
	s, clk, _ := newTestServerWith(t, func(c *Config) {
		c.Catalog = cat
		c.Replicas = 1
		c.Inventory.Appliances[0].Capacity = config.ByteSize(titleBytes*2 + titleBytes/2)
		c.Fill.MaxChurn = 0.5
		c.Fill.HalfLife = 10 * time.Minute
		if mutate != nil {
			mutate(c)
		}
	})
	h := s.Handler()
	report(t, h, api.RouteReport{Appliance: "e1", Epoch: "a", Seq: 1, Snapshot: true, Announce: []rib.Route{route("10.64.0.0/16")}})
	holdManifests(t, s, 1)
	return s, clk, cat
}

// holdManifests makes every appliance report holding its manifest.
func holdManifests(t *testing.T, s *Server, gen uint64) {
	t.Helper()
	for _, id := range []string{"e1", "x1"} {
		var held []string
		for _, f := range s.Manifest(id) {
			held = append(held, f.Path)
		}
		beat(t, s.Handler(), id, gen, held)
	}
}

func titleOf(p string) string { t, _, _ := strings.Cut(p, "/"); return t }

// steerN asks for every file of title n times from client.
func steerN(t *testing.T, s *Server, cat *content.Catalog, title, client string, n int) []string {
	t.Helper()
	var paths []string
	for _, f := range cat.TitleFiles(title) {
		paths = append(paths, f.Path)
	}
	var sites []string
	for range n {
		w := do(t, s.Handler(), "GET", "/v1/steer?files="+strings.Join(paths, ","), "", client+":4000", "")
		if w.Code != 200 {
			t.Fatalf("steer: %d %s", w.Code, w.Body)
		}
		var resp api.SteerResponse
		json.Unmarshal(w.Body.Bytes(), &resp)
		if len(resp.Files[0].URLs) > 0 {
			sites = append(sites, resp.Files[0].URLs[0].Site)
		}
	}
	return sites
}

func placedTitles(s *Server, id string) []string {
	var out []string
	for _, f := range s.Manifest(id) {
		if t := titleOf(f.Path); !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// TestDemandCountedWhereTheClientLives: an ISP's clients steered to the
// IXP for a title their embedded site lacks count as demand at the
// embedded site (their home), both as steering answers and as bytes the
// IXP reports serving them; the bytes are a content miss of that title.
func TestDemandCountedWhereTheClientLives(t *testing.T) {
	s, _, cat := loopServer(t, nil)
	titles := cat.Titles()
	cold := titles[len(titles)-1]
	if slices.Contains(placedTitles(s, "e1"), cold) {
		t.Fatalf("test set-up: e1 already holds %s (%v)", cold, placedTitles(s, "e1"))
	}
	if sites := steerN(t, s, cat, cold, "10.64.3.4", 5); len(sites) != 5 || sites[0] != "ix" {
		t.Fatalf("steering for %s = %v, want the IXP site 5 times", cold, sites)
	}
	steerN(t, s, cat, titles[0], "192.0.2.7", 3) // a client without a route: home is the IXP
	s.fill.demand.fold(s.cfg.Now())
	f := cat.TitleFiles(cold)[0]
	if got := s.Demand("emb")[f.Path]; got <= 0 {
		t.Errorf("demand at emb for %s = %g after 5 steering answers, want > 0 (the client's home)", f.Path, got)
	}
	if ix := s.Demand("ix")[f.Path]; ix != 0 {
		t.Errorf("demand at ix for %s = %g, want 0: the IXP only served it", f.Path, ix)
	}
	if got := s.Demand("ix")[cat.TitleFiles(titles[0])[0].Path]; got <= 0 {
		t.Errorf("demand at ix of a client without routes = %g, want > 0 (its home is the IXP)", got)
	}
	// The IXP reports the bytes it served: demand at emb, a content miss.
	b, _ := json.Marshal(api.DemandReport{Appliance: "x1", Files: map[string]int64{f.Path: 1000},
		Clients: []api.ClientDemand{{Client: "10.64.3.0", Path: f.Path, Bytes: 1000}}})
	if w := do(t, s.Handler(), "POST", "/v1/demand", string(b), "127.1.0.2:5000", ""); w.Code != 200 {
		t.Fatalf("POST /v1/demand = %d %s", w.Code, w.Body)
	}
	if got := s.fill.demand.served.Predict("emb", f.Path, s.cfg.Now()); got <= 0 {
		t.Errorf("served demand at emb = %g after the IXP served emb's client, want > 0", got)
	}
	if got := s.fill.demand.served.Predict("ix", f.Path, s.cfg.Now()); got != 0 {
		t.Errorf("served demand at ix = %g, want 0", got)
	}
	if m := s.Misses(); m.Content != 1000 || m.ContentByHome["emb"][cold] != 1000 {
		t.Errorf("misses = %+v, want 1000 content bytes, all of %s at home site emb", m, cold)
	}
}

// TestReplanMovesContentToDemand: a cold title turns hot among the
// embedded site's clients; the check finds the ranking moved, the replan
// puts the title on e1 within the churn bound, the heartbeat reply
// carries the new manifest version, and a file e1 no longer lists stays
// steerable until e1 stops reporting it.
func TestReplanMovesContentToDemand(t *testing.T) {
	s, clk, cat := loopServer(t, nil)
	titles := cat.Titles()
	hot := titles[len(titles)-1]
	if why := s.replanDue(); why != "" {
		t.Errorf("replanDue() before any demand = %q, want none", why)
	}
	before := s.fill.plan.Load().versions["e1"]
	oldTitles := placedTitles(s, "e1")
	// A steady demand for the first placed titles, then the shift.
	for range 3 {
		steerN(t, s, cat, oldTitles[0], "10.64.3.4", 2)
		steerN(t, s, cat, oldTitles[1], "10.64.3.4", 1)
		clk.t = clk.t.Add(time.Minute)
	}
	if why := s.replanDue(); why != "" {
		t.Errorf("replanDue() with demand for what e1 holds = %q, want none", why)
	}
	// Within a half-life of the first demand the ranking is not acted on.
	steerN(t, s, cat, hot, "10.64.3.4", 20)
	if why := s.replanDue(); why != "" {
		t.Errorf("replanDue() within a half-life of the first demand = %q, want none", why)
	}
	clk.t = clk.t.Add(10 * time.Minute)
	steerN(t, s, cat, hot, "10.64.3.4", 20)
	why := s.replanDue()
	if why != "ranking" {
		t.Fatalf("replanDue() after %s turned hot = %q, want ranking", hot, why)
	}
	rec := s.Replan(why)
	if !slices.Contains(placedTitles(s, "e1"), hot) {
		t.Errorf("after the replan e1 holds %v, want %s among them", placedTitles(s, "e1"), hot)
	}
	for _, c := range rec.Sites {
		if c.Share > s.fill.cfg.MaxChurn {
			t.Errorf("site %s: replan added %.2f of its capacity, bound %.2f", c.Site, c.Share, s.fill.cfg.MaxChurn)
		}
	}
	if rec.AddedBytes == 0 || rec.Reason != "ranking" {
		t.Errorf("replan = %+v, want bytes added for reason ranking", rec)
	}
	if st := s.PlacementStatus(3); st.Replans != 1 || len(st.Recent) != 1 || st.Top["emb"][0].Path == "" {
		t.Errorf("PlacementStatus = %+v, want one replan and emb's top files", st)
	}
	// The new version reaches e1 in its heartbeat reply and /v1/manifest.
	b, _ := json.Marshal(api.Heartbeat{Appliance: "e1", ContentGen: 1})
	w := do(t, s.Handler(), "POST", "/v1/heartbeat", string(b), "127.1.0.1:5000", "")
	var reply api.HeartbeatReply
	json.Unmarshal(w.Body.Bytes(), &reply)
	if reply.ManifestVersion == before || !strings.HasPrefix(reply.ManifestVersion, fmt.Sprint(rec.Seq)+"-") {
		t.Errorf("heartbeat reply manifest_version = %q (before %q), want the new plan's (seq %d)", reply.ManifestVersion, before, rec.Seq)
	}
	w = do(t, s.Handler(), "GET", "/v1/manifest?appliance=e1", "", "127.1.0.1:5000", "")
	var m api.Manifest
	json.Unmarshal(w.Body.Bytes(), &m)
	if m.Version != reply.ManifestVersion {
		t.Errorf("/v1/manifest version %q, heartbeat reply %q: want one source", m.Version, reply.ManifestVersion)
	}
	// A title e1 dropped is still steered to e1 while e1 reports holding
	// it (it is still there), and no longer once e1 stops reporting it.
	var dropped string
	for _, t0 := range oldTitles {
		if !slices.Contains(placedTitles(s, "e1"), t0) {
			dropped = t0
		}
	}
	if dropped == "" {
		t.Fatalf("replan dropped nothing from e1 (%v → %v)", oldTitles, placedTitles(s, "e1"))
	}
	if sites := steerN(t, s, cat, dropped, "10.64.3.4", 1); len(sites) != 1 || sites[0] != "emb" {
		t.Errorf("steering for %s while e1 still holds it = %v, want emb", dropped, sites)
	}
	var held []string
	for _, f := range s.Manifest("e1") {
		if titleOf(f.Path) != hot {
			held = append(held, f.Path)
		}
	}
	beat(t, s.Handler(), "e1", 2, held) // the retired files left its report
	beat(t, s.Handler(), "x1", 1, nil)  // (and x1 is alive)
	if sites := steerN(t, s, cat, dropped, "10.64.3.4", 1); len(sites) != 1 || sites[0] != "ix" {
		t.Errorf("steering for %s after e1 stopped reporting it = %v, want ix", dropped, sites)
	}
}

// TestChurnBoundHoldsBackAndReplansAgain: with a bound smaller than the
// change, a replan adds at most the bound, says it was capped, and the
// next check replans again until the ranking is met. A bound below the
// largest file still moves one file per replan.
func TestChurnBoundHoldsBackAndReplansAgain(t *testing.T) {
	for _, tc := range []struct {
		bound, maxShare float64
	}{{0.45, 0.45}, {0.1, 0.4}} { // a file is 0.4 of e1's capacity
		t.Run(fmt.Sprint(tc.bound), func(t *testing.T) { testChurnBound(t, tc.bound, tc.maxShare) })
	}
}

func testChurnBound(t *testing.T, bound, maxShare float64) {
	s, clk, cat := loopServer(t, func(c *Config) { c.Fill.MaxChurn = bound })
	titles := cat.Titles()
	steerN(t, s, cat, titles[0], "10.64.3.4", 1)
	s.replanDue() // the first demand
	clk.t = clk.t.Add(10 * time.Minute)
	for _, hot := range titles[len(titles)-2:] {
		steerN(t, s, cat, hot, "10.64.3.4", 20)
	}
	var recs []api.Replan
	for why := s.replanDue(); why != "" && len(recs) < 10; why = s.replanDue() {
		recs = append(recs, s.Replan(why))
	}
	if len(recs) < 2 {
		t.Fatalf("replans = %+v, want at least two: one capped, then the rest", recs)
	}
	for i, r := range recs {
		for _, c := range r.Sites {
			if c.Share > maxShare {
				t.Errorf("replan %d: site %s added %.2f of its capacity, want at most %.2f", i, c.Site, c.Share, maxShare)
			}
		}
	}
	if got := placedTitles(s, "e1"); !slices.Contains(got, titles[len(titles)-1]) || !slices.Contains(got, titles[len(titles)-2]) {
		t.Errorf("after %d replans e1 holds %v, want both hot titles; replans %+v", len(recs), got, recs)
	}
}

// TestFeedAPI: a bad feed is refused naming the line and changes nothing;
// a good one replans with the release placed and its urgent files marked
// for out-of-window fill.
func TestFeedAPI(t *testing.T) {
	s, _, cat := loopServer(t, nil)
	h := s.Handler()
	titles := cat.Titles()
	release := cat.TitleFiles(titles[len(titles)-1])[0].Path
	seq := s.fill.plan.Load().seq
	bad := "{\"predictions\": [\n  {\"path\": \"" + release + "\", \"bytes_per_day\": 1e12},\n  {\"path\": \"" + release + "\", \"bytes_per_day\": 5}\n]}"
	if w := do(t, h, "PUT", "/v1/admin/popularity-feed", bad, "127.0.0.1:1", "sekret"); w.Code != 400 || !strings.Contains(w.Body.String(), "line 3") {
		t.Errorf("PUT a feed listing a file twice = %d %q, want 400 naming line 3", w.Code, w.Body)
	}
	if w := do(t, h, "PUT", "/v1/admin/popularity-feed", "{}", "127.0.0.1:1", ""); w.Code != http.StatusUnauthorized {
		t.Errorf("PUT a feed without the admin token = %d, want 401", w.Code)
	}
	if got := s.fill.plan.Load().seq; got != seq {
		t.Errorf("plan seq = %d after refused feeds, want %d (nothing changed)", got, seq)
	}
	good := `{"predictions": [{"path": "` + release + `", "bytes_per_day": 1e12, "urgent": true}]}`
	w := do(t, h, "PUT", "/v1/admin/popularity-feed", good, "127.0.0.1:1", "sekret")
	var rec api.Replan
	if err := json.Unmarshal(w.Body.Bytes(), &rec); w.Code != 200 || err != nil || rec.Reason != "feed" {
		t.Fatalf("PUT a good feed = %d %s, want 200 and a replan for reason feed", w.Code, w.Body)
	}
	if !slices.ContainsFunc(s.Manifest("e1"), func(f content.File) bool { return f.Path == release }) {
		t.Errorf("e1's manifest after the feed lacks the release %s", release)
	}
	if ff := fillPlanOf(t, s, "e1")[release]; !ff.Urgent {
		t.Errorf("e1's fill plan for the release = %+v, want urgent", ff)
	}
}

// TestEmptyHeldListClearsHoldings: an appliance that retired its last
// file reports an empty list, and steering stops sending clients to it for
// that file; a heartbeat without a list changes nothing.
func TestEmptyHeldListClearsHoldings(t *testing.T) {
	s, _, cat := newTestServer(t)
	f := cat.Files[0].Path
	beat(t, s.Handler(), "e1", 1, []string{f})
	beat(t, s.Handler(), "e1", 1, nil)
	if !s.snap.Load().Appliances["e1"].Holds[f] {
		t.Fatalf("a heartbeat without a list dropped e1's holdings")
	}
	beat(t, s.Handler(), "e1", 2, []string{})
	if s.snap.Load().Appliances["e1"].Holds[f] {
		t.Errorf("after an empty list e1 still holds %s in the snapshot", f)
	}
}

// TestObserveSteerAllocatesNothing: counting a steering answer's demand
// takes no allocation (it runs on every answer).
func TestObserveSteerAllocatesNothing(t *testing.T) {
	s, _, cat := loopServer(t, nil)
	snap := s.snap.Load()
	client := netip.MustParseAddr("10.64.3.4")
	files := []steerFile{{path: cat.Files[0].Path, index: 0}, {path: cat.Files[1].Path, index: 1}}
	if n := testing.AllocsPerRun(1000, func() { s.observeSteer(snap, client, files) }); n != 0 {
		t.Errorf("observeSteer allocates %v times per answer, want 0", n)
	}
	s.fill.demand.fold(s.cfg.Now())
	if got := s.Demand("emb")[cat.Files[0].Path]; got <= 0 {
		t.Errorf("demand after 1001 counted answers = %g, want > 0", got)
	}
}

func TestDisplacing(t *testing.T) {
	files := []content.File{{Path: "a/x", Size: 100}, {Path: "b/x", Size: 100}, {Path: "c/x", Size: 100}, {Path: "d/x", Size: 100}}
	placed := map[string]int{"a/x": 1, "b/x": 1}
	for _, tc := range []struct {
		pred map[string]float64
		want string
	}{
		{nil, ""},
		{map[string]float64{"a/x": 10, "b/x": 9}, ""},
		{map[string]float64{"a/x": 10, "b/x": 9, "c/x": 9.5}, ""},    // within the hysteresis edge
		{map[string]float64{"a/x": 10, "b/x": 9, "c/x": 11}, "c/x"},  // c displaces b
		{map[string]float64{"c/x": 1, "d/x": 1}, "c/x,d/x"},          // both displaced
		{map[string]float64{"a/x": 10, "c/x": 1, "d/x": 0.5}, "c/x"}, // b (no demand) gives way to c
	} {
		got := slices.Sorted(maps.Keys(displacing(files, tc.pred, placed, 0.1)))
		if strings.Join(got, ",") != tc.want {
			t.Errorf("displacing(%v) = %v, want %s", tc.pred, got, tc.want)
		}
	}
}
