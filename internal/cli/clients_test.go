package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/cpclient/cptest"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/player"
	"github.com/ocdn/ocdn/internal/probe"
	"github.com/ocdn/ocdn/internal/steer"
)

// clientPlane is a control plane of two replicas for the client commands:
// a one-second title, steering to one appliance serving the catalog's
// synthetic bytes, and a recipe probing that appliance.
func clientPlane(t *testing.T) (*cptest.Plane, *content.Catalog) {
	t.Helper()
	cat, err := content.Synth(content.SynthSpec{Titles: 1, LadderKbps: []int{400, 800}, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/c/"), "/", 2)
		f, err := cat.Lookup(parts[len(parts)-1])
		if err != nil {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, content.SynthReader(f.Path, f.Size))
	}))
	t.Cleanup(app.Close)
	pl := cptest.New(t, cptest.Config{Catalog: cat, Steer: func(_ int, file string) []steer.Choice {
		return []steer.Choice{{URL: app.URL + "/c/tok/" + file, Appliance: "oca1", Site: "s1"}}
	}})
	probeFile := cat.Files[0].Path
	pl.Handle("GET /v1/recipe", probe.RecipeHandler(func(netip.Addr, bool) ([]probe.Target, error) {
		return []probe.Target{{ID: "oca1", Appliance: "oca1", Site: "s1", URL: app.URL + "/c/tok/" + probeFile, Steered: true}}, nil
	}, probe.RecipeConfig{Pulses: 1, PulseDelay: time.Millisecond, Types: []string{measure.TypeTCPConnect, measure.TypeHTTPTTFB}}))
	return pl, cat
}

func TestControlFlagTakesAListAndRepeats(t *testing.T) {
	got, err := parseControl([]string{"http://127.0.0.1:1", " http://127.0.0.1:2/", "", "http://127.0.0.1:3"})
	if want := []string{"http://127.0.0.1:1", "http://127.0.0.1:2/", "http://127.0.0.1:3"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("parseControl = %v, %v; want %v", got, err, want)
	}
	for _, bad := range [][]string{{"127.0.0.1:8080"}, {"http://127.0.0.1:8080/v1"}, {" , "}} {
		if _, err := parseControl(bad); err == nil || !strings.Contains(err.Error(), "--control") {
			t.Errorf("parseControl(%q) = %v, want an error naming --control", bad, err)
		}
	}
	_, _, err = runCLI(t, "play", "--control", "10.0.0.1:8080", "--title", "t0000")
	if err == nil || !strings.Contains(err.Error(), "--control") {
		t.Errorf("ocdn play with a control URL lacking its scheme = %v, want an error naming --control", err)
	}
}

// TestClientCommandsFailOver runs play, probe and speedtest with the
// first of two replicas dead (given as a comma list and as a repeated
// flag): each completes through the second, and the probe's report is
// stored once.
func TestClientCommandsFailOver(t *testing.T) {
	pl, cat := clientPlane(t)
	a, b := pl.Replica(0), pl.Replica(1)
	a.Kill()
	title := cat.Titles()[0]

	out, _, err := runCLI(t, "play", "--control", a.URL+","+b.URL, "--title", title, "--segment", "500ms", "--json")
	if err != nil {
		t.Fatalf("ocdn play with the first replica dead: %v\n%s", err, out)
	}
	var s player.Session
	if err := json.Unmarshal([]byte(out), &s); err != nil || !s.Completed || s.ControlWaits != 0 {
		t.Errorf("ocdn play = %+v (%v), want a session completed without waiting for the control plane", s, err)
	}

	spool := t.TempDir()
	out, _, err = runCLI(t, "probe", "--control", a.URL, "--control", b.URL, "--spool", spool, "--json")
	if err != nil {
		t.Fatalf("ocdn probe with the first replica dead: %v\n%s", err, out)
	}
	var rep measure.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Pulses) != 2 {
		t.Fatalf("ocdn probe printed %q (%v), want a report of 2 pulses", out, err)
	}
	uploads, stored := pl.Reports()
	if uploads[rep.ID] != 1 || stored[rep.ID] != 1 {
		t.Errorf("report %s: %d uploads, stored %d times; want 1 and 1", rep.ID, uploads[rep.ID], stored[rep.ID])
	}
	if left, _ := filepath.Glob(filepath.Join(spool, "*.json")); len(left) != 0 {
		t.Errorf("spool holds %v after the upload, want nothing", left)
	}

	out, _, err = runCLI(t, "speedtest", "--control", a.URL+","+b.URL, "--title", title, "--max-duration", "500ms", "--json")
	if err != nil {
		t.Fatalf("ocdn speedtest with the first replica dead: %v\n%s", err, out)
	}
	var res struct {
		Bytes   int64    `json:"bytes"`
		Targets []string `json:"targets"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Bytes == 0 || len(res.Targets) != 1 {
		t.Errorf("ocdn speedtest printed %q (%v), want bytes from the one steered target", out, err)
	}
	if b.Hits("/v1/titles/"+title) != 2 || b.Hits("/v1/steer") != 2 || b.Hits("/v1/recipe") != 1 || b.Hits("/v1/reports") != 1 {
		t.Errorf("live replica saw titles %d, steer %d, recipe %d, reports %d; want 2, 2, 1, 1",
			b.Hits("/v1/titles/"+title), b.Hits("/v1/steer"), b.Hits("/v1/recipe"), b.Hits("/v1/reports"))
	}
}
