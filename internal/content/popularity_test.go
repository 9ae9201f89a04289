package content

import (
	"math"
	"strings"
	"testing"
	"time"
)

// TestPopularityEWMA plants a steady demand, then a shift, and checks the
// continuous-time average: a steady rate is predicted at that rate, a
// new file reaches half its rate after one half-life, and the old one
// falls to half.
func TestPopularityEWMA(t *testing.T) {
	const half = time.Hour
	p := NewPopularity(half, 24*time.Hour)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const perMinute = 1e6 // bytes demanded of a file every minute
	now := t0
	for i := 0; i < 20*60; i++ { // twenty half-lives of steady demand
		p.Observe("ams", "a/v.mp4", perMinute, now)
		now = now.Add(time.Minute)
	}
	want := perMinute * 60 * 24 // bytes per day
	if got := p.Predict("ams", "a/v.mp4", now); math.Abs(got-want) > 0.03*want {
		t.Errorf("steady demand: Predict = %.3g bytes/day, want %.3g", got, want)
	}
	if got := p.Predict("fra", "a/v.mp4", now); got != 0 {
		t.Errorf("Predict in a region without demand = %g, want 0", got)
	}
	// The demand moves to another file for one half-life.
	for i := 0; i < 60; i++ {
		p.Observe("ams", "b/v.mp4", perMinute, now)
		now = now.Add(time.Minute)
	}
	if got := p.Predict("ams", "b/v.mp4", now); math.Abs(got-want/2) > 0.03*want {
		t.Errorf("new file after one half-life: Predict = %.3g, want %.3g (half the rate)", got, want/2)
	}
	if got := p.Predict("ams", "a/v.mp4", now); math.Abs(got-want/2) > 0.03*want {
		t.Errorf("old file one half-life after its demand stopped: Predict = %.3g, want %.3g", got, want/2)
	}
	reg := p.Region("ams", now)
	if len(reg) != 2 || reg["b/v.mp4"] <= 0 {
		t.Errorf("Region = %v, want both files", reg)
	}
	// The feed covers files without history: the prediction is the max.
	p.SetFeed(Feed{Predictions: []Prediction{{Path: "c/v.mp4", BytesPerDay: 5e9}, {Path: "a/v.mp4", BytesPerDay: 1}}})
	if got := p.Predict("ams", "c/v.mp4", now); got != 5e9 {
		t.Errorf("feed-only file: Predict = %g, want 5e9", got)
	}
	if got := p.Predict("ams", "a/v.mp4", now); got < want/3 {
		t.Errorf("a file with history and a small feed entry: Predict = %g, want its observed rate", got)
	}
	// Long after, observed demand is forgotten; the feed stays.
	later := now.Add(100 * half)
	if reg := p.Region("ams", later); len(reg) != 2 || reg["c/v.mp4"] != 5e9 || reg["a/v.mp4"] != 1 {
		t.Errorf("Region 100 half-lives later = %v, want only the feed's two entries", reg)
	}
	// A clock that goes backwards does not inflate the average.
	q := NewPopularity(half, 0)
	q.Observe("r", "a/v.mp4", 100, t0.Add(time.Hour))
	q.Observe("r", "a/v.mp4", 100, t0)
	if got, max := q.Predict("r", "a/v.mp4", t0.Add(time.Hour)), 200*math.Ln2/float64(half)*float64(24*time.Hour); got > max*1.0001 {
		t.Errorf("after an out-of-order observation: Predict = %g, want at most %g", got, max)
	}
}

func TestParseFeed(t *testing.T) {
	cat, err := Synth(SynthSpec{Titles: 2, LadderKbps: []int{100}, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a, b := cat.Files[0].Path, cat.Files[1].Path
	good := `{"predictions": [
  {"path": "` + a + `", "bytes_per_day": 1e9, "urgent": true},
  {"path": "` + b + `", "bytes_per_day": 0}
]}`
	f, err := ParseFeed([]byte(good), cat)
	if err != nil || len(f.Predictions) != 2 || !f.Predictions[0].Urgent || f.Predictions[0].BytesPerDay != 1e9 {
		t.Fatalf("ParseFeed(good) = %+v, %v", f, err)
	}
	if f, err := ParseFeed([]byte(`{"predictions": null}`), cat); err != nil || len(f.Predictions) != 0 {
		t.Errorf("ParseFeed(null predictions) = %+v, %v; want an empty feed", f, err)
	}
	for _, tc := range []struct {
		name, feed string
		want       []string
	}{
		{"unknown file", "{\"predictions\": [\n  {\"path\": \"" + a + "\", \"bytes_per_day\": 1},\n  {\"path\": \"zz/nope.mp4\", \"bytes_per_day\": 1}\n]}",
			[]string{"line 3", "predictions[1]", "zz/nope.mp4", "not in catalog"}},
		{"negative demand", "{\"predictions\": [\n\n  {\"path\": \"" + a + "\", \"bytes_per_day\": -5}]}",
			[]string{"line 3", "predictions[0].bytes_per_day", "-5", "negative"}},
		{"duplicate", "{\"predictions\": [\n  {\"path\": \"" + a + "\", \"bytes_per_day\": 1},\n  {\"path\": \"" + b + "\", \"bytes_per_day\": 1},\n  {\"path\": \"" + a + "\", \"bytes_per_day\": 2}\n]}",
			[]string{"line 4", "predictions[2]", a, "listed twice", "first on line 2"}},
		{"unknown field of an entry", "{\"predictions\": [\n  {\"path\": \"" + a + "\", \"bytes_per_dya\": 1}]}",
			[]string{"line 2", "predictions[0]", "bytes_per_dya"}},
		{"unknown top-level field", "{\n\"predictons\": []}", []string{"line 2", "predictons"}},
		{"syntax error", "{\"predictions\": [\n  {\"path\": \"" + a + "\",, }]}", []string{"line 2"}},
		{"truncated", "{\"predictions\": [\n  {\"path\": \"" + a + "\"", []string{"line 2"}},
		{"not an object", "[]", []string{"line 1", "JSON object"}},
		{"trailing data", "{\"predictions\": []}\n{}", []string{"line 2", "trailing"}},
		{"wrong type", "{\"predictions\": [\n {\"path\": \"" + a + "\", \"bytes_per_day\": \"lots\"}]}", []string{"line 2", "predictions[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFeed([]byte(tc.feed), cat)
			if err == nil {
				t.Fatalf("ParseFeed(%s) = nil error, want one naming %v", tc.name, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseFeed(%s) error = %q, want it to contain %q", tc.name, err, w)
				}
			}
		})
	}
}

// FuzzParseFeed: any input is either refused with a line number or
// yields predictions for distinct catalog files with non-negative demand.
func FuzzParseFeed(f *testing.F) {
	cat, err := Synth(SynthSpec{Titles: 2, LadderKbps: []int{100}, Duration: time.Second})
	if err != nil {
		f.Fatal(err)
	}
	a := cat.Files[0].Path
	f.Add([]byte(`{"predictions": [{"path": "` + a + `", "bytes_per_day": 1e9, "urgent": true}]}`))
	f.Add([]byte(`{"predictions": [{"path": "` + a + `", "bytes_per_day": 1}, {"path": "` + a + `", "bytes_per_day": 1}]}`))
	f.Add([]byte(`{"predictions": null}`))
	f.Add([]byte(`{"predictions": [{"path": "x/y", "bytes_per_day": -1}]`))
	f.Add([]byte("{\n}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		feed, err := ParseFeed(data, cat)
		if err != nil {
			if !strings.Contains(err.Error(), "popularity feed: line ") {
				t.Fatalf("ParseFeed error %q names no line", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, p := range feed.Predictions {
			if _, err := cat.Lookup(p.Path); err != nil || p.BytesPerDay < 0 || math.IsNaN(p.BytesPerDay) || seen[p.Path] {
				t.Fatalf("ParseFeed accepted %+v", p)
			}
			seen[p.Path] = true
		}
	})
}
