package soak

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/clock"
	"github.com/ocdn/ocdn/internal/lab"
)

// agreeCheck asks every control-plane replica, every 2 s, which appliances
// it steers to (ApplianceStatus.Serving). The replicas share their state
// through PostgreSQL, so they must agree within a few sync rounds; each
// also probes the appliances itself and hears some heartbeats first, so
// they may disagree briefly. An appliance that one replica steers to and
// another holds back for longer than Config.AgreeBound is a violation:
// the clients of one replica are sent elsewhere for no fault of the
// appliance. Rounds in which a replica does not answer (killed by the
// soak) compare nothing, and a disagreement is timed from the first round
// after every replica answers again.
type agreeCheck struct {
	mu      sync.Mutex
	rounds  int                  // rounds in which every replica answered
	since   map[string]time.Time // appliance → start of its current disagreement
	flagged map[string]bool      // its current disagreement is a violation already
	brief   int                  // disagreements that ended within the bound
	longest time.Duration
	worst   string
	wrong   limited
}

func (a *agreeCheck) run(ctx context.Context, c *lab.Chaos, bound time.Duration) {
	for clock.Sleep(ctx, 2*time.Second) == nil {
		views := make([]map[string]api.ApplianceStatus, c.ControlReplicas())
		for i := range views {
			sts, err := c.ReplicaApplianceStates(ctx, i)
			if err != nil {
				views = nil
				break
			}
			views[i] = make(map[string]api.ApplianceStatus, len(sts))
			for _, st := range sts {
				views[i][st.ID] = st
			}
		}
		a.compare(views, time.Now(), bound)
	}
}

// compare takes one round's answers (nil: a replica did not answer).
func (a *agreeCheck) compare(views []map[string]api.ApplianceStatus, now time.Time, bound time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.since == nil {
		a.since, a.flagged = map[string]time.Time{}, map[string]bool{}
	}
	if len(views) < 2 {
		clear(a.since)
		clear(a.flagged)
		return
	}
	a.rounds++
	for _, id := range sortedKeys(views[0]) {
		differ := false
		for _, v := range views[1:] {
			differ = differ || v[id].Serving != views[0][id].Serving
		}
		start, open := a.since[id]
		switch {
		case !differ && open:
			if !a.flagged[id] {
				a.brief++
			}
			delete(a.since, id)
			delete(a.flagged, id)
		case differ && !open:
			a.since[id] = now
		case differ:
			d := now.Sub(start)
			if d > a.longest {
				a.longest, a.worst = d, id
			}
			if d > bound && !a.flagged[id] {
				a.flagged[id] = true
				var says []string
				for i, v := range views {
					says = append(says, fmt.Sprintf("replica %d %s", i+1, steering(v[id])))
				}
				a.wrong.add("%s: replicas disagree for %v: %s", id, d.Round(time.Second), strings.Join(says, ", "))
			}
		}
	}
}

// steering says whether a replica steers to an appliance, and why not.
func steering(st api.ApplianceStatus) string {
	if st.Serving {
		return "steers to it"
	}
	return fmt.Sprintf("holds it back (%s: %s)", st.State, st.Reason)
}

func (a *agreeCheck) invariant(cfg Config) Invariant {
	a.mu.Lock()
	defer a.mu.Unlock()
	inv := Invariant{Name: "control-plane replicas agree on which appliances they steer to",
		Held: a.wrong.n == 0, Violations: a.wrong.list}
	inv.Detail = fmt.Sprintf("%d rounds compared (every 2s, every replica answering); %d disagreements over within %v", a.rounds, a.brief, cfg.AgreeBound)
	if a.longest > 0 {
		inv.Detail += fmt.Sprintf("; longest %v (%s)", a.longest.Round(time.Second), a.worst)
	}
	if a.rounds == 0 {
		inv.Held = false
		inv.Detail += "; no round compared: the check did not run"
	}
	return inv
}
