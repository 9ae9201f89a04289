package measure

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestObserveAndAssignedArm: the observer sees each durable report once
// (not its duplicate) with the annotation, and the stored context carries
// the server's arm beside the one the report names.
func TestObserveAndAssignedArm(t *testing.T) {
	dir := t.TempDir()
	var seen []Observed
	annot := FuncAnnotator(func(netip.Addr, string) Annotation {
		return Annotation{PrefixGroup: "198.51.100.0/24", Site: "site-b", Arm: "bgp"}
	})
	in, err := Open(dir, annot, Options{Observe: func(o Observed) { seen = append(seen, o) }})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r := testReport("0123456789abcdef01", 2, now)
	r.Context = map[string]string{"arm": "measured"}
	for range 2 {
		if _, err := in.Ingest(context.Background(), testClient, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0].AssignedArm != "bgp" || seen[0].PrefixGroup != "198.51.100.0/24" || seen[0].Sites[0] != "site-b" || seen[0].Client != testClient {
		t.Fatalf("observed %+v, want one report with arm bgp, group and site", seen)
	}
	rows := readTable[PulseRow](t, dir, "pulses")
	if len(rows) != 2 || !strings.Contains(rows[0].Context, `"arm":"measured"`) || !strings.Contains(rows[0].Context, `"assigned_arm":"bgp"`) {
		t.Errorf("stored context = %q, want both arms", rows[0].Context)
	}
}
