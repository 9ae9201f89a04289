package lab

import (
	"context"
	"strings"
	"testing"
	"time"
)

// testScenario is the built-in scenario shrunk to run in seconds, on its
// own addresses so it never collides with a lab started elsewhere.
func testScenario(t *testing.T) *Scenario {
	t.Helper()
	y := strings.NewReplacer(
		"duration: 60s", "duration: 16s",
		"titles: 12", "titles: 4",
		"at: 50%", "at: 40%",
		"127.1.0.1:", "127.1.50.1:", "127.1.0.2:", "127.1.50.2:",
		"127.1.1.1:", "127.1.51.1:", "127.1.1.2:", "127.1.51.2:",
		"127.1.2.1:", "127.1.52.1:",
	).Replace(string(DefaultScenario))
	var sc Scenario
	if err := decodeScenario("test scenario", []byte(y), &sc); err != nil {
		t.Fatal(err)
	}
	return &sc
}

func TestLabRunFailsOverAndReports(t *testing.T) {
	sc := testScenario(t)
	rep, err := New(sc, Options{}).Run(context.Background())
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	s := rep.Sessions
	if s.Completed < 10 || s.Failed != 0 {
		t.Errorf("sessions = %+v, want ≥ 10 completed and none failed", s)
	}
	if s.Failovers < 1 {
		t.Errorf("failovers = %d, want ≥ 1 after killing an appliance mid-stream", s.Failovers)
	}
	sites := 0
	for _, st := range rep.Sites {
		if st.BytesServed > 0 {
			sites++
		}
	}
	if sites < 2 {
		t.Errorf("bytes served from %d sites, want ≥ 2: %+v", sites, rep.Sites)
	}
	if len(rep.Events) != 1 || rep.Events[0].Kind != "kill_appliance" || rep.Events[0].Target != "ams-a-1" {
		t.Errorf("events = %+v, want one kill_appliance of ams-a-1", rep.Events)
	}
	var killed ApplianceReport
	for _, a := range rep.Appliances {
		if a.ID == "ams-a-1" {
			killed = a
		}
	}
	if killed.State != "killed" {
		t.Errorf("killed appliance state = %q, want killed", killed.State)
	}
	if rep.Origin.BytesServed == 0 {
		t.Errorf("origin served nothing; appliances must fill from it")
	}
}

func TestLabStopsOnCancel(t *testing.T) {
	sc := testScenario(t)
	sc.Duration = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(4*time.Second, cancel)
	start := time.Now()
	rep, err := New(sc, Options{}).Run(ctx)
	if err != nil {
		t.Fatalf("Run = %v, want a report marked interrupted", err)
	}
	if !rep.Interrupted {
		t.Errorf("report.Interrupted = false after cancel")
	}
	if el := time.Since(start); el > 15*time.Second {
		t.Errorf("Run took %v after cancel at 4s", el)
	}
}
