package soak

import (
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/api"
)

// TestAgreeCheck: a disagreement shorter than the bound is counted, one
// longer is a violation naming what each replica said, and a round in
// which a replica does not answer restarts the clock.
func TestAgreeCheck(t *testing.T) {
	view := func(serving ...bool) map[string]api.ApplianceStatus {
		m := map[string]api.ApplianceStatus{}
		for i, s := range serving {
			id := string(rune('a' + i))
			st := api.ApplianceStatus{ID: id, Serving: s, State: "up"}
			if !s {
				st.State, st.Reason = "unknown", "turn-up: manifest 16 of 23 files filled"
			}
			m[id] = st
		}
		return m
	}
	const bound = 30 * time.Second
	var a agreeCheck
	t0 := time.Unix(1_800_000_000, 0)
	round := func(at time.Duration, views ...map[string]api.ApplianceStatus) { a.compare(views, t0.Add(at), bound) }
	round(0, view(true, true), view(true, true))
	round(2*time.Second, view(true, true), view(true, false)) // b: brief
	round(12*time.Second, view(true, true), view(true, false))
	round(14*time.Second, view(true, true), view(true, true))
	round(16*time.Second, view(true, true), view(false, true)) // a: long, but…
	round(40*time.Second, nil...)                              // …a replica is down: the clock restarts
	round(42*time.Second, view(true, true), view(false, true)) // from here
	round(70*time.Second, view(true, true), view(false, true)) // 28 s: within
	if inv := a.invariant(Config{AgreeBound: bound}); !inv.Held || a.brief != 1 {
		t.Fatalf("after a brief disagreement and one cut by a silent replica: %+v (brief %d), want held, 1 brief", inv, a.brief)
	}
	round(74*time.Second, view(true, true), view(false, true)) // 32 s
	round(76*time.Second, view(true, true), view(false, true)) // reported once
	inv := a.invariant(Config{AgreeBound: bound})
	if inv.Held || len(inv.Violations) != 1 || !strings.Contains(inv.Violations[0], "a: replicas disagree for 32s") ||
		!strings.Contains(inv.Violations[0], "replica 2 holds it back (unknown: turn-up") {
		t.Errorf("after 32s of disagreement: %+v, want one violation naming a and what replica 2 said", inv)
	}
	if a.rounds != 9 || !strings.Contains(inv.Detail, "longest 34s (a)") {
		t.Errorf("rounds %d, detail %q; want 9 rounds and the longest, 34s of a", a.rounds, inv.Detail)
	}
	var none agreeCheck
	if inv := none.invariant(Config{AgreeBound: bound}); inv.Held {
		t.Errorf("a check that compared nothing: %+v, want not held", inv)
	}
}
