package lab

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	"github.com/ocdn/ocdn/internal/analyze"
	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/config"
)

// MeasuredReport is what measured steering did during the run, per arm
// and per prefix group, and the effect of each degrade_link event.
type MeasuredReport struct {
	Experiment string  `json:"experiment,omitempty"`
	MaxStep    float64 `json:"max_step"`
	// Arms counts, per experiment arm, the steps that moved more of a
	// group's clients, QoE-watch rollbacks and reverts to BGP.
	Arms   map[string]api.ArmCounts `json:"arms"`
	Groups []MeasuredGroup          `json:"groups"`
	// LargestStep is the largest growth of any group's moved share in one
	// step: the guardrail holds when it is at most MaxStep.
	LargestStep float64 `json:"largest_step"`
	// Mismatches are reports that named an arm other than their client's.
	Mismatches int             `json:"mismatches"`
	Effects    []DegradeEffect `json:"effects,omitempty"`
}

// MeasuredGroup is one prefix group's measured steering at the end.
type MeasuredGroup struct {
	Group     string  `json:"group"`
	BGPSite   string  `json:"bgp_site"`
	Site      string  `json:"site,omitempty"`
	Share     float64 `json:"share"`
	Steps     int     `json:"steps"`
	Rollbacks int     `json:"rollbacks"`
	Reverts   int     `json:"reverts"`
	// FirstMoveSeconds is when (from the start of streaming) the group
	// first moved; 0 when it never did.
	FirstMoveSeconds float64 `json:"first_move_seconds,omitempty"`
}

// DegradeEffect compares the arms after a degrade_link event on what the
// affected prefix groups' clients got at the site they were steered to
// (the steering metric: probe throughput in the built-in scenario), from
// the stored measurements of recipes the control plane issued from each
// group's start (FromSeconds is the earliest) to the end of the run. A
// recipe's context names the site steering chose for the client when it
// was issued, and its report may arrive long after (a run of pulses over a
// degraded link takes seconds): counting by the time a report was
// received would credit the measured arm with pulses steered before its
// group moved.
type DegradeEffect struct {
	Link      string   `json:"link"`
	AtSeconds float64  `json:"at_seconds"`
	Groups    []string `json:"groups"`
	// ReactionSeconds is how long after the event measurements first
	// moved an affected group (0: they never did); FromSeconds is where
	// the comparison starts for the first group, from the start of
	// streaming (each group from the event, or its own first move if
	// later): only recipes issued from then on count.
	ReactionSeconds float64 `json:"reaction_seconds"`
	FromSeconds     float64 `json:"from_seconds"`
	Metric          string  `json:"metric"`
	// Arms are the arms' medians with their 95% intervals; Diff is
	// measured − control with its cluster-bootstrap 95% interval.
	Arms        []ArmFigure `json:"arms"`
	Diff        float64     `json:"diff"`
	DiffLo      float64     `json:"diff_ci_lo"`
	DiffHi      float64     `json:"diff_ci_hi"`
	Significant bool        `json:"significant"`
	Note        string      `json:"note,omitempty"`
}

// ArmFigure is one arm's median.
type ArmFigure struct {
	Arm     string  `json:"arm"`
	Clients int     `json:"clients"`
	N       int     `json:"n"`
	P50     float64 `json:"p50"`
	Lo      float64 `json:"ci_lo"`
	Hi      float64 `json:"ci_hi"`
}

// measuredReport reads the control plane's measured-steering status.
func (l *Lab) measuredReport(ctx context.Context) *MeasuredReport {
	st, err := l.view.measured(ctx)
	if err != nil || (!st.Enabled && st.Experiment == nil) {
		return nil
	}
	r := &MeasuredReport{MaxStep: st.MaxStep, Arms: st.Arms, Mismatches: st.Mismatches, Groups: []MeasuredGroup{}}
	if st.Experiment != nil {
		r.Experiment = st.Experiment.Name
	}
	for _, g := range st.Groups {
		mg := MeasuredGroup{Group: g.Group, BGPSite: g.BGPSite, Site: g.Site, Share: g.Share, Steps: g.Steps, Rollbacks: g.Rollbacks, Reverts: g.Reverts}
		prev := 0.0
		for _, h := range g.History {
			if h.Share > prev {
				r.LargestStep = max(r.LargestStep, h.Share-prev)
				if mg.FirstMoveSeconds == 0 {
					mg.FirstMoveSeconds = h.At.Sub(l.start).Seconds()
				}
			}
			prev = h.Share
		}
		r.Groups = append(r.Groups, mg)
	}
	return r
}

// degradeEffects compares the arms after each degrade_link event, from the
// Parquet files in dir (complete once the control plane has stopped).
func (l *Lab) degradeEffects(r *MeasuredReport, dir string) {
	if r == nil || r.Experiment == "" {
		return
	}
	for _, e := range l.sc.Events {
		if e.Kind != "degrade_link" {
			continue
		}
		at, _ := e.When(l.sc.Duration)
		eff := DegradeEffect{Link: e.Link.ISP + "→" + e.Link.Site, AtSeconds: at.Seconds(), Metric: l.sc.steering().Metric}
		if eff.Metric == "" {
			eff.Metric = "ttfb_ms"
		}
		// The affected groups are the ISP's prefixes whose BGP choice is
		// the degraded site.
		isp := l.isp(e.Link.ISP)
		for _, g := range r.Groups {
			p, err := netip.ParsePrefix(g.Group)
			if err == nil && g.BGPSite == e.Link.Site && slices.ContainsFunc(isp.Prefixes, func(ip config.Prefix) bool { return ip.Overlaps(p) }) {
				eff.Groups = append(eff.Groups, g.Group)
			}
		}
		// Each group's comparison takes the recipes issued from the event
		// on, or from when measurements first moved it if that is later,
		// so that it compares the arms once the loop has reacted for that
		// group (an ISP's IPv4 and IPv6 groups gather evidence apart and
		// move at different times); how long the first took to react is
		// reported beside it. By issue time, not by when reports arrived:
		// a report received after the move may carry pulses of a recipe
		// issued before it (or before the event, or queued through a
		// control-plane outage), steered as the client was then.
		fromOf := map[string]time.Time{}
		first := time.Duration(-1)
		for _, g := range r.Groups {
			if !slices.Contains(eff.Groups, g.Group) {
				continue
			}
			from := at
			if g.FirstMoveSeconds > at.Seconds() {
				move := time.Duration(g.FirstMoveSeconds * float64(time.Second))
				if eff.ReactionSeconds == 0 || move.Seconds()-at.Seconds() < eff.ReactionSeconds {
					eff.ReactionSeconds = move.Seconds() - at.Seconds()
				}
				from = max(from, move)
			}
			fromOf[g.Group] = l.start.Add(from)
			if first < 0 || from < first {
				first = from
			}
		}
		eff.FromSeconds = max(first, 0).Seconds()
		r.Effects = append(r.Effects, l.effect(eff, dir, fromOf))
	}
}

// effect compares the arms over the pulses of each affected group's
// recipes issued from fromOf[group] on.
func (l *Lab) effect(eff DegradeEffect, dir string, fromOf map[string]time.Time) DegradeEffect {
	if len(eff.Groups) == 0 {
		eff.Note = "no prefix group of the ISP is steered to the site by BGP"
		return eff
	}
	rows, _, err := analyze.Load(dir, analyze.Filter{IssuedSince: l.start.Add(time.Duration(eff.FromSeconds * float64(time.Second)))}, nil)
	if err != nil {
		eff.Note = err.Error()
		return eff
	}
	kept := rows[:0]
	for _, row := range rows {
		if from, ok := fromOf[row.PrefixGroup]; ok && !row.Issued.Before(from) {
			kept = append(kept, row)
		}
	}
	for _, e := range analyze.Experiments(kept, nil, 0.95, 1000, rand.New(rand.NewPCG(1, 14))) {
		for _, a := range e.Results {
			if a.Metric != eff.Metric {
				continue
			}
			eff.Arms = append(eff.Arms, ArmFigure{Arm: a.Arm, Clients: a.Clients, N: a.N, P50: num(a.P50), Lo: num(a.Lo), Hi: num(a.Hi)})
			if a.Arm == "measured" {
				eff.Diff, eff.DiffLo, eff.DiffHi, eff.Significant, eff.Note = num(a.Diff), num(a.DiffLo), num(a.DiffHi), a.Significant, a.Note
			}
		}
	}
	return eff
}

// measureDataDir is where the control plane stores measurements.
func (l *Lab) measureDataDir() string {
	if l.opts.DataDir != "" {
		if abs, err := filepath.Abs(l.opts.DataDir); err == nil {
			return abs
		}
		return l.opts.DataDir
	}
	return filepath.Join(l.etc, measureDir)
}

// print writes the measured-steering section of the report.
func (r *MeasuredReport) print(w io.Writer) {
	if r == nil {
		return
	}
	fmt.Fprintf(w, "\nMeasured steering")
	if r.Experiment != "" {
		fmt.Fprintf(w, " (experiment %s)", r.Experiment)
	}
	fmt.Fprintf(w, ": guardrail step %.0f%%, largest step taken %.0f%%; %d reports named another arm than their client's.\n",
		100*r.MaxStep, 100*r.LargestStep, r.Mismatches)
	for _, arm := range slices.Sorted(maps.Keys(r.Arms)) {
		a := r.Arms[arm]
		fmt.Fprintf(w, "  arm %-9s moves %d, rollbacks %d, reverts %d\n", arm, a.Steps, a.Rollbacks, a.Reverts)
	}
	for _, g := range r.Groups {
		fmt.Fprintf(w, "  group %-16s BGP site %-10s", g.Group, g.BGPSite)
		if g.Steps > 0 {
			fmt.Fprintf(w, " moved to %s: %.0f%% of its measured clients (first at %.1f s), %d steps, %d rollbacks, %d reverts\n",
				orNone(g.Site), 100*g.Share, g.FirstMoveSeconds, g.Steps, g.Rollbacks, g.Reverts)
		} else {
			fmt.Fprintln(w, " not moved")
		}
	}
	for _, e := range r.Effects {
		fmt.Fprintf(w, "  degrade_link %s at %.1f s: groups %v affected; ", e.Link, e.AtSeconds, e.Groups)
		if e.ReactionSeconds > 0 {
			fmt.Fprintf(w, "measurements moved the first %.1f s after it", e.ReactionSeconds)
		} else {
			fmt.Fprintf(w, "measurements moved none of them after it")
		}
		fmt.Fprintf(w, "; %s at the steered site, recipes issued from %.1f s on (each group from its first move):", e.Metric, e.FromSeconds)
		for _, a := range e.Arms {
			fmt.Fprintf(w, " %s p50 %s [%s, %s] (%d clients, n=%d);", a.Arm, metricNum(e.Metric, a.P50), metricNum(e.Metric, a.Lo), metricNum(e.Metric, a.Hi), a.Clients, a.N)
		}
		if e.Note != "" {
			fmt.Fprintf(w, " %s\n", e.Note)
			continue
		}
		sig := "not significant"
		if e.Significant {
			sig = "significant: the 95% CI excludes 0"
		}
		fmt.Fprintf(w, " measured − bgp %s [%s, %s], %s\n", metricNum(e.Metric, e.Diff), metricNum(e.Metric, e.DiffLo), metricNum(e.Metric, e.DiffHi), sig)
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none now)"
	}
	return s
}

func metricNum(metric string, v float64) string {
	if metric == "throughput_bps" {
		return fmt.Sprintf("%.1f Mbit/s", v/1e6)
	}
	return fmt.Sprintf("%.1f ms", v)
}

// num is v for the report's JSON: NaN (no interval) is not JSON, so such
// figures stay 0 (with a note or a flag beside them).
func num(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}
