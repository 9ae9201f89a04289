package console

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/analyze"
)

// TestMeasurePageRendersArms: the measurements page with a result for
// every experiment metric (pulse and playback ones, named by column)
// renders each with its title and figures in the title's unit. A
// template's fields are checked only when it runs, so the page is run
// here with arms, which a console just started has none of.
func TestMeasurePageRendersArms(t *testing.T) {
	pages, err := parseTemplates()
	if err != nil {
		t.Fatal(err)
	}
	var results []analyze.ArmResult
	for _, m := range analyze.ExperimentMetrics {
		results = append(results, analyze.ArmResult{Arm: "measured", Metric: m, Clients: 4, N: 40, P50: 25e6, Lo: 20e6, Hi: 30e6, OK: true,
			Control: "bgp", Diff: 5e6, DiffLo: 1e6, DiffHi: 9e6, DiffOK: true})
	}
	v := measureView{Enabled: true, Trail: time.Minute, HasArms: true, Arms: armsView{At: time.Unix(1e9, 0), Rows: 40, Results: results}}
	var buf bytes.Buffer
	if err := pages["measure"].ExecuteTemplate(&buf, "layout", pageData{Title: "Measurements", Page: "measure", Data: v}); err != nil {
		t.Fatalf("rendering the measurements page with arms: %v", err)
	}
	out := buf.String()
	for _, want := range []string{"Throughput (Mbit/s)", "Time to first byte (ms)", "Startup delay (ms)", "Rebuffering", "Average bitrate (kbit/s)",
		"25.00 [20.00, 30.00]", "&#43;5.00 [&#43;1.00, &#43;9.00]", "25000000.00", "Difference from bgp"} {
		if !strings.Contains(out, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}
