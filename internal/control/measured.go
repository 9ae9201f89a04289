package control

import (
	"context"
	"maps"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/defaults"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/rendezvous"
	"github.com/ocdn/ocdn/internal/steer"
)

// MeasuredSteering configures measurement-aware steering (docs/steering.md).
type MeasuredSteering struct {
	// Enabled lets measurements move clients; with Experiment alone the
	// arms are assigned and recorded but nobody moves.
	Enabled bool
	// Eligibility is the policy for every group; AllowIXP the ISPs whose
	// groups get EligibleEmbeddedIXP when Eligibility is that.
	Eligibility steer.Eligibility
	AllowIXP    []string
	// Metric ranks sites (measure.MetricTTFBMs by default, lower better;
	// MetricThroughputBps is higher-better).
	Metric string
	// MinSamples per (group, site) within Window before a site counts
	// (default 50); Margin is the relative difference that must separate
	// the two sites' 95% intervals (default 0.10).
	MinSamples int
	Margin     float64
	// Refresh is one step: how often evidence is re-evaluated and the
	// moved share of a group may grow (default 5s). Window is how far back
	// measurements count (default 5m).
	Refresh, Window time.Duration
	// MaxStep is the largest share of a group's clients that may move per
	// step (default 0.25).
	MaxStep float64
	// QoE rolls a group back when its moved clients play worse.
	QoE config.QoEWatch
	// Experiment, when set, assigns clients to arms; only the "measured"
	// arm moves.
	Experiment *config.Experiment
}

func (c *MeasuredSteering) setDefaults() {
	defaults.Positive(&c.MinSamples, 50)
	defaults.Positive(&c.Margin, 0.10)
	defaults.Positive(&c.Refresh, 5*time.Second)
	defaults.Positive(&c.Window, 5*time.Minute)
	if c.Window < c.Refresh {
		c.Window = c.Refresh
	}
	defaults.Positive(&c.MaxStep, 0.25)
	if c.Metric == "" {
		c.Metric = measure.MetricTTFBMs
	}
	q := &c.QoE
	defaults.Positive(&q.MinSessions, 5)
	defaults.Positive(&q.StartupMargin, 0.5)
	defaults.Positive(&q.RebufferMargin, 0.02)
	defaults.Positive(&q.ThroughputMargin, 0.2)
	defaults.Positive(&q.Hold, 10*time.Minute)
}

// Arms of the default experiment.
const (
	ArmBGP      = config.ArmBGP
	ArmMeasured = config.ArmMeasured
)

// experiment is a running config.Experiment: its arms in name order with
// cumulative shares, and the hash seed of its name.
type experiment struct {
	def  config.Experiment
	seed uint64
	arms []string
	cum  []float64
	// tags[i] is what tokens of arms[i]'s clients say of the arm.
	tags []steer.Arm
}

func newExperiment(def config.Experiment, started time.Time) *experiment {
	def = def.WithDefaults()
	if def.Start.IsZero() {
		def.Start = started
	}
	e := &experiment{def: def, seed: xxhash.Sum64String("ocdn-experiment/" + def.Name)}
	var sum float64
	for _, arm := range slices.Sorted(maps.Keys(def.Shares)) {
		sum += def.Shares[arm]
		e.arms = append(e.arms, arm)
		e.cum = append(e.cum, sum)
		e.tags = append(e.tags, steer.Arm{Experiment: def.Name, Name: arm, CongestionControl: def.CongestionControl[arm]})
	}
	return e
}

// tag is the token tag of client's arm.
func (e *experiment) tag(client netip.Addr) steer.Arm { return e.tags[e.index(client)] }

// tokenArm is the experiment arm the steering answer's tokens name for
// client (the zero Arm without an experiment), so that appliances apply
// the arm's congestion control and tag their transport records with it.
func (s *Server) tokenArm(client netip.Addr) steer.Arm {
	if s.msteer == nil || s.msteer.exp == nil {
		return steer.Arm{}
	}
	return s.msteer.exp.tag(client)
}

// clientKey is a client's /24 (IPv4) or /48 (IPv6) as a number: the unit
// arms and moves are assigned to, so a household stays together.
func clientKey(client netip.Addr) uint64 {
	client = client.Unmap()
	if client.Is4() {
		b := client.As4()
		return uint64(b[0])<<16 | uint64(b[1])<<8 | uint64(b[2])
	}
	b := client.As16()
	var key uint64
	for _, x := range b[:6] {
		key = key<<8 | uint64(x)
	}
	return key | 1<<63
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// arm assigns client's /24 (/48) to an arm by a hash of the experiment's
// name and the prefix: deterministic, the same for the experiment's
// whole life, independent between experiments, and allocation-free.
func (e *experiment) arm(client netip.Addr) string { return e.arms[e.index(client)] }

// index is the position of client's arm in arms.
func (e *experiment) index(client netip.Addr) int {
	u := unit(rendezvous.Mix(clientKey(client) ^ e.seed))
	for i, c := range e.cum {
		if u < c {
			return i
		}
	}
	return len(e.arms) - 1
}

// movedFraction places a client in [0, 1) within its group: a group whose
// moved share is s moves the clients below s, so growing the share only
// adds clients and never swaps one for another.
func movedFraction(client netip.Addr) float64 {
	return unit(rendezvous.Mix(clientKey(client) ^ 0x6d6f7665642d3031))
}

// context is what every recipe names about the experiment.
func (e *experiment) context(client netip.Addr) map[string]string {
	shares := make([]string, len(e.arms))
	for i, a := range e.arms {
		shares[i] = a + "=" + strconv.FormatFloat(e.def.Shares[a], 'g', -1, 64)
	}
	return map[string]string{
		"experiment":       e.def.Name,
		"experiment_start": e.def.Start.UTC().Format(time.RFC3339),
		"arm_shares":       strings.Join(shares, ","),
		"control_arm":      e.def.Control,
		"arm":              e.arm(client),
	}
}

// groupPref is what steering reads for one group: the site measurements
// chose, under which policy, and the share of the group's clients moved.
type groupPref struct {
	site   string
	policy steer.Eligibility
	share  float64
	note   string
}

// measuredTable is an immutable snapshot of the groups measurements move.
type measuredTable struct {
	exp    *experiment
	groups map[netip.Prefix]*groupPref
}

// measuredView is the steering snapshot's steer.Measurements: it reads the
// latest table on every decision, so a refresh needs no snapshot rebuild.
type measuredView struct {
	cur *atomic.Pointer[measuredTable]
}

// Prefer moves a client when its group has a chosen site, the client is
// in the measured arm (when an experiment runs) and inside the share of
// the group moved so far.
func (v measuredView) Prefer(group netip.Prefix, client netip.Addr) (steer.Preference, bool) {
	t := v.cur.Load()
	if t == nil {
		return steer.Preference{}, false
	}
	g := t.groups[group]
	if g == nil || g.share <= 0 {
		return steer.Preference{}, false
	}
	if t.exp != nil && t.exp.arm(client) != ArmMeasured {
		return steer.Preference{}, false
	}
	if movedFraction(client) >= g.share {
		return steer.Preference{}, false
	}
	return steer.Preference{Site: g.site, Policy: g.policy, Note: g.note}, true
}

// siteStat is a site's median of the steering metric for a group with its
// 95% interval, over the window.
type siteStat struct {
	n            float64
	lo, p50, hi  float64
	higherBetter bool
}

// clearlyBetter says whether a beats b with room to spare: a's 95%
// interval, widened by the margin, does not reach b's.
func clearlyBetter(a, b siteStat, margin float64) bool {
	if a.higherBetter {
		return a.lo > b.hi*(1+margin)
	}
	return a.hi*(1+margin) < b.lo
}

// The wire types of GET /v1/steering/measured (internal/api).
type (
	GroupState       = api.GroupState
	ShareChange      = api.ShareChange
	MeasuredStatus   = api.MeasuredStatus
	ExperimentStatus = api.ExperimentStatus
	ArmCounts        = api.ArmCounts
)

// measuredSteering owns the evidence window and the per-group state
// machine; refresh runs it every step.
type measuredSteering struct {
	cfg MeasuredSteering
	exp *experiment
	win *window
	cur atomic.Pointer[measuredTable]

	mu         sync.Mutex
	groups     map[string]*GroupState
	arms       map[string]*ArmCounts
	mismatches int

	steps, rollbacks, reverts *prometheus.CounterVec
	mismatch                  prometheus.Counter
	moved                     prometheus.Gauge
}

func newMeasuredSteering(cfg MeasuredSteering, now time.Time, reg prometheus.Registerer) *measuredSteering {
	m := &measuredSteering{cfg: cfg, groups: map[string]*GroupState{}, arms: map[string]*ArmCounts{},
		win: newWindow(cfg.Refresh, cfg.Window)}
	if cfg.Experiment != nil {
		m.exp = newExperiment(*cfg.Experiment, now)
		for _, a := range m.exp.arms {
			m.arms[a] = &ArmCounts{}
		}
	} else {
		m.arms[armAll] = &ArmCounts{}
	}
	m.steps = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ocdn_control_measured_steps_total",
		Help: "Steps in which measured steering moved a larger share of a prefix group's clients, by arm."}, []string{"arm"})
	m.rollbacks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ocdn_control_measured_rollbacks_total",
		Help: "Prefix groups rolled back to BGP by the QoE watch, by arm."}, []string{"arm"})
	m.reverts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ocdn_control_measured_reverts_total",
		Help: "Prefix groups returned to BGP because the chosen site measured worse, by arm."}, []string{"arm"})
	m.mismatch = prometheus.NewCounter(prometheus.CounterOpts{Name: "ocdn_control_experiment_arm_mismatches_total",
		Help: "Reports naming an experiment arm other than the one assigned to their client (kept out of every arm)."})
	m.moved = prometheus.NewGauge(prometheus.GaugeOpts{Name: "ocdn_control_measured_groups_moved",
		Help: "Prefix groups of which measured steering currently moves some clients."})
	if reg != nil {
		reg.MustRegister(m.steps, m.rollbacks, m.reverts, m.mismatch, m.moved)
	}
	return m
}

// armAll names the clients when no experiment runs: all of them move.
const armAll = "all"

// movingArm is the arm whose clients measurements move.
func (m *measuredSteering) movingArm() string {
	if m.exp == nil {
		return armAll
	}
	return ArmMeasured
}

// observe takes one durable report into the window. A report whose arm is
// not its client's is counted and kept out of the per-arm playback
// figures; its probes still say how sites perform.
func (m *measuredSteering) observe(o measure.Observed) {
	arm := o.AssignedArm
	mismatch := false
	if named, ok := o.Report.Context["arm"]; ok && m.exp != nil && named != o.AssignedArm {
		mismatch = true
		m.mismatch.Inc()
		m.mu.Lock()
		m.mismatches++
		m.mu.Unlock()
	}
	m.win.add(o, arm, mismatch)
}

// step re-evaluates every group with evidence at now and publishes the
// table steering reads. baseline answers BGP's site and the eligible ones
// for a group under a policy.
func (m *measuredSteering) step(now time.Time, log func(msg string, args ...any),
	baseline func(netip.Prefix, steer.Eligibility) (string, []string), policy func(netip.Prefix) steer.Eligibility) {
	ev := m.win.snapshot(now, m.cfg.Metric)
	m.mu.Lock()
	defer m.mu.Unlock()
	table := &measuredTable{exp: m.exp, groups: map[netip.Prefix]*groupPref{}}
	arm := m.movingArm()
	// Every group with evidence, and every group already moved (whose
	// share holds while its evidence is out of the window).
	groups := maps.Clone(m.groups)
	for g := range ev.sites {
		if groups[g] == nil {
			groups[g] = nil
		}
	}
	for _, gs := range slices.Sorted(maps.Keys(groups)) {
		g, err := netip.ParsePrefix(gs)
		if err != nil {
			continue
		}
		pol := policy(g)
		bgp, eligible := baseline(g, pol)
		st := m.groups[gs]
		if st == nil {
			st = &GroupState{Group: gs}
			m.groups[gs] = st
		}
		st.BGPSite, st.Eligible = bgp, eligible
		sites := ev.sites[gs]
		base, haveBase := sites[bgp]
		enough := func(s siteStat) bool { return s.n >= float64(m.cfg.MinSamples) }
		// The best eligible site that is clearly better than BGP's.
		winner := ""
		var ws siteStat
		if haveBase && enough(base) && bgp != "" {
			for _, site := range eligible {
				s, ok := sites[site]
				if !ok || !enough(s) || !clearlyBetter(s, base, m.cfg.Margin) {
					continue
				}
				if winner == "" || clearlyBetterMedian(s, ws) {
					winner, ws = site, s
				}
			}
		}
		change := func(share float64, site, why string) {
			st.Share, st.Site = share, site
			st.History = append(st.History, ShareChange{At: now, Share: share, Site: site, Why: why})
			if len(st.History) > 64 {
				st.History = st.History[len(st.History)-64:]
			}
		}
		switch {
		case now.Before(st.HeldUntil):
			st.Evidence = "held on BGP after a QoE rollback"
		case st.Site != "" && st.Site == bgp:
			// BGP itself now chooses the site: nothing left to move.
			change(0, "", "BGP now chooses the measured site")
		case winner != "":
			if winner != st.Site {
				st.Share = 0
			}
			st.Evidence = evidence(m.cfg.Metric, winner, ws, bgp, base)
			if st.Share < 1 {
				share := math.Min(1, st.Share+m.cfg.MaxStep)
				change(share, winner, st.Evidence)
				st.Steps++
				m.arms[arm].Steps++
				m.steps.WithLabelValues(arm).Inc()
				log("measured steering moves a larger share of a group", "group", gs, "site", winner, "bgp_site", bgp, "share", share, "evidence", st.Evidence)
			}
		case st.Share > 0:
			cur, ok := sites[st.Site]
			if ok && haveBase && enough(cur) && enough(base) && clearlyBetter(base, cur, m.cfg.Margin) {
				st.Evidence = evidence(m.cfg.Metric, bgp, base, st.Site, cur)
				log("measured steering returns a group to BGP: its site measures worse", "group", gs, "site", st.Site, "bgp_site", bgp, "evidence", st.Evidence)
				change(0, "", "reverted: "+st.Evidence)
				st.Reverts++
				m.arms[arm].Reverts++
				m.reverts.WithLabelValues(arm).Inc()
			}
			// Otherwise the evidence is no longer clear either way: the
			// share holds, it neither grows nor shrinks.
		}
		if st.Share > 0 {
			if why, worse := m.qoeWorse(ev, gs, st.Site, bgp, st.History); worse {
				st.HeldUntil = now.Add(m.cfg.QoE.Hold)
				log("measured steering rolls a group back: its moved clients play worse", "group", gs, "site", st.Site, "why", why, "held_until", st.HeldUntil)
				change(0, "", "rolled back: "+why)
				st.Evidence = "rolled back: " + why
				st.Rollbacks++
				m.arms[arm].Rollbacks++
				m.rollbacks.WithLabelValues(arm).Inc()
			}
		}
		if st.Share > 0 && st.Site != "" {
			table.groups[g] = &groupPref{site: st.Site, policy: pol, share: st.Share,
				note: "group " + gs + ": " + st.Evidence + "; " + strconv.FormatFloat(100*st.Share, 'f', 0, 64) + "% of the group moved"}
		}
	}
	m.moved.Set(float64(len(table.groups)))
	if m.cfg.Enabled {
		m.cur.Store(table)
	} else {
		m.cur.Store(&measuredTable{exp: m.exp})
	}
}

// clearlyBetterMedian orders two winners by their medians.
func clearlyBetterMedian(a, b siteStat) bool {
	if a.higherBetter {
		return a.p50 > b.p50
	}
	return a.p50 < b.p50
}

func evidence(metric, a string, sa siteStat, b string, sb siteStat) string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 4, 64) }
	return metric + " median at " + a + " " + f(sa.p50) + " [" + f(sa.lo) + ", " + f(sa.hi) + "] n=" + f(sa.n) +
		" vs " + b + " " + f(sb.p50) + " [" + f(sb.lo) + ", " + f(sb.hi) + "] n=" + f(sb.n)
}

// qoeWorse compares the playback of the group's moved clients (measured
// arm, served by site) since the current move began with that of its
// control clients (the control arm; without an experiment, the group's
// sessions served by BGP's site) over the same time.
func (m *measuredSteering) qoeWorse(ev *evidenceSnap, group, site, bgp string, hist []ShareChange) (string, bool) {
	since := time.Time{}
	for i := len(hist) - 1; i >= 0 && hist[i].Share > 0; i-- {
		since = hist[i].At
	}
	var moved, ctl qoeStat
	if m.exp != nil {
		moved = ev.qoe(group, ArmMeasured, site, since)
		ctl = ev.qoe(group, m.exp.def.Control, "", since)
	} else {
		moved = ev.qoe(group, "", site, since)
		ctl = ev.qoe(group, "", bgp, since)
	}
	q := m.cfg.QoE
	if moved.sessions < q.MinSessions || ctl.sessions < q.MinSessions {
		return "", false
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 4, 64) }
	switch {
	case moved.startupP50 > ctl.startupP50*(1+q.StartupMargin):
		return "startup median " + f(moved.startupP50) + " ms vs control " + f(ctl.startupP50) + " ms", true
	case moved.rebufferRatio > ctl.rebufferRatio+q.RebufferMargin:
		return "rebuffering " + f(100*moved.rebufferRatio) + "% vs control " + f(100*ctl.rebufferRatio) + "%", true
	case moved.bitrateP50 < ctl.bitrateP50*(1-q.ThroughputMargin):
		return "throughput (average bitrate) median " + f(moved.bitrateP50) + " kbit/s vs control " + f(ctl.bitrateP50) + " kbit/s", true
	}
	return "", false
}

// status reports every group's state.
func (m *measuredSteering) status() MeasuredStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := MeasuredStatus{Enabled: m.cfg.Enabled, Metric: m.cfg.Metric, MaxStep: m.cfg.MaxStep,
		Arms: map[string]ArmCounts{}, Mismatches: m.mismatches, Groups: []GroupState{}}
	if m.exp != nil {
		d := m.exp.def
		out.Experiment = &ExperimentStatus{Name: d.Name, Start: d.Start, Shares: d.Shares, Control: d.Control, Metrics: d.Metrics}
	}
	for a, c := range m.arms {
		out.Arms[a] = *c
	}
	for _, g := range m.groups {
		c := *g
		c.History = slices.Clone(g.History)
		out.Groups = append(out.Groups, c)
	}
	sort.Slice(out.Groups, func(i, j int) bool { return out.Groups[i].Group < out.Groups[j].Group })
	return out
}

// run re-evaluates every Refresh until ctx ends.
func (m *measuredSteering) run(ctx context.Context, s *Server) {
	tick := time.NewTicker(m.cfg.Refresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.measuredStep()
		}
	}
}

// measuredStep runs one step against the current steering snapshot.
func (s *Server) measuredStep() {
	m := s.msteer
	path := s.probeFile()
	m.step(s.cfg.Now(), func(msg string, args ...any) { s.log.Info(msg, args...) },
		func(g netip.Prefix, pol steer.Eligibility) (string, []string) {
			return s.engine.Baseline(s.snap.Load(), g.Addr(), path, pol)
		}, s.policyFor)
}

// policyFor is the eligibility policy of a group: embedded plus IXP only
// for ISPs that allow it.
func (s *Server) policyFor(g netip.Prefix) steer.Eligibility {
	c := s.cfg.Measured
	if c.Eligibility != steer.EligibleEmbeddedIXP {
		return steer.EligibleLocalPref
	}
	if isp, ok := s.ispOf.Lookup(g.Addr()); ok && slices.Contains(c.AllowIXP, isp.Name) {
		return steer.EligibleEmbeddedIXP
	}
	return steer.EligibleLocalPref
}

// recipeContext records each client's experiment arm, the experiment and
// the client's prefix group in its recipes.
func (s *Server) recipeContext(client netip.Addr) map[string]string {
	m := s.msteer
	if m == nil || m.exp == nil {
		return nil
	}
	c := m.exp.context(client)
	if group, _, ok := s.Lookup(client); ok {
		c["prefix_group"] = group.String()
	}
	return c
}

// MeasuredStatus reports measured steering per group (GET
// /v1/steering/measured); zero when measured steering is off.
func (s *Server) MeasuredStatus() MeasuredStatus {
	if s.msteer == nil {
		return MeasuredStatus{Groups: []GroupState{}, Arms: map[string]ArmCounts{}}
	}
	return s.msteer.status()
}
