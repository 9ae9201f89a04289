package console

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ocdn/ocdn/internal/api"
)

// TestRecordReplans: the control plane lists its recent replans at every
// sample; each becomes one event, at the control plane's time, however
// many samples list it, and a replan that scrolled out of the list is not
// recorded again.
func TestRecordReplans(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	r := func(seq int, reason string, added int64) api.Replan {
		return api.Replan{Seq: seq, At: t0.Add(time.Duration(seq) * time.Second), Reason: reason, AddedBytes: added}
	}
	h := newHistory(10, 1)
	h.recordReplans(nil)
	h.recordReplans([]api.Replan{r(2, "interval", 0), r(3, "admin", 1500)})
	h.recordReplans([]api.Replan{r(2, "interval", 0), r(3, "admin", 1500)})
	h.recordReplans([]api.Replan{r(3, "admin", 1500), r(4, "feed", 2e6)})
	h.recordReplans([]api.Replan{r(4, "feed", 2e6)}) // 3 scrolled out
	got := h.recentEvents(10, "replan")
	want := []event{
		{At: t0.Add(4 * time.Second), Kind: "replan", Target: "placement", From: "replan 4 (feed)", To: "2.0 MB added"},
		{At: t0.Add(3 * time.Second), Kind: "replan", Target: "placement", From: "replan 3 (admin)", To: "1.5 kB added"},
		{At: t0.Add(2 * time.Second), Kind: "replan", Target: "placement", From: "replan 2 (interval)", To: "0 B added"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("recentEvents after the samples (-want +got):\n%s", d)
	}
	// A control plane that restarted numbers its replans from the start
	// again; they are new.
	h.recordReplans([]api.Replan{r(2, "ranking", 10)})
	h.recordReplans([]api.Replan{r(2, "ranking", 10)})
	got = h.recentEvents(10, "replan")
	want = []event{
		{At: t0.Add(2 * time.Second), Kind: "replan", Target: "placement", From: "replan 2 (ranking)", To: "10 B added"},
		{At: t0.Add(4 * time.Second), Kind: "replan", Target: "placement", From: "replan 4 (feed)", To: "2.0 MB added"},
		{At: t0.Add(3 * time.Second), Kind: "replan", Target: "placement", From: "replan 3 (admin)", To: "1.5 kB added"},
		{At: t0.Add(2 * time.Second), Kind: "replan", Target: "placement", From: "replan 2 (interval)", To: "0 B added"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("recentEvents after the samples (-want +got):\n%s", d)
	}
}

// TestReplanRow: the replans table shows the site a replan churned most
// and every site the bound capped; a replan that added nothing names no
// site.
func TestReplanRow(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sites  []api.SiteChurn
		site   string
		share  float64
		capped []string
	}{
		{"nothing added", []api.SiteChurn{{Site: "a"}, {Site: "b"}}, "", 0, nil},
		{"largest share, not the largest bytes", []api.SiteChurn{{Site: "a", AddedBytes: 900, Share: 0.05}, {Site: "b", AddedBytes: 100, Share: 0.1, Capped: true},
			{Site: "c", AddedBytes: 50, Share: 0.1, Capped: true}}, "b", 0.1, []string{"b", "c"}},
	} {
		row := replanRowOf(api.Replan{Seq: 5, Sites: tc.sites})
		if row.MaxSite != tc.site || row.MaxShare != tc.share || !cmp.Equal(row.Capped, tc.capped) {
			t.Errorf("%s: replanRowOf = %q %v capped %v, want %q %v capped %v", tc.name, row.MaxSite, row.MaxShare, row.Capped, tc.site, tc.share, tc.capped)
		}
	}
}
