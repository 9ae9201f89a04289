package sim

import (
	_ "embed"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/sim/world"
)

// DefaultScenario is the built-in scenario (`ocdn sim --print-scenario`).
//
//go:embed default.yaml
var DefaultScenario []byte

// Scenario is what a run does to a world: how long, what demand, which
// control-plane settings, what fails. Its fields are documented in
// docs/sim.md.
type Scenario struct {
	Name     string        `yaml:"name"`
	Seed     uint64        `yaml:"seed"`
	Start    time.Time     `yaml:"start"`
	Duration time.Duration `yaml:"duration"`
	// Step is the simulated time between two batches of sessions, health
	// reports and fill progress (the clock's resolution).
	Step time.Duration `yaml:"step"`
	// WarmStart starts with every appliance holding its manifest, planned
	// from the demand model's expectation of the day before; otherwise
	// appliances start empty and fill from the first window.
	WarmStart bool `yaml:"warm_start"`

	Catalog   CatalogSpec   `yaml:"catalog"`
	Demand    DemandSpec    `yaml:"demand"`
	Placement PlacementSpec `yaml:"placement"`
	Fill      FillSpec      `yaml:"fill"`
	Health    HealthSpec    `yaml:"health"`
	Failures  FailureSpec   `yaml:"failures"`
	Churn     ChurnSpec     `yaml:"route_churn"`
	Steering  SteeringSpec  `yaml:"steering"`
	Network   NetworkSpec   `yaml:"network"`
	// StorageScale and ThroughputScale multiply every appliance's storage
	// and throughput (what-ifs).
	StorageScale    float64 `yaml:"storage_scale"`
	ThroughputScale float64 `yaml:"throughput_scale"`
	Events          []Event `yaml:"events"`

	// Prefill, with a cold start, fills every manifest before the clock
	// starts (the lab waits for fill before its clients stream).
	Prefill bool `yaml:"prefill"`

	// file is where the scenario was read from (route_churn.file is
	// relative to it); root is its YAML, for the line of a field.
	file string
	root *yaml.Node
	// labCatalog replaces the synthetic catalog (a lab scenario's).
	labCatalog *content.Catalog
}

// CatalogSpec describes the synthetic catalog: Titles titles, each with a
// file per rung of the ladder (and an audio file when AudioKbps > 0), a
// duration drawn between MinDuration and MaxDuration.
type CatalogSpec struct {
	Titles      int           `yaml:"titles"`
	LadderKbps  []int         `yaml:"ladder_kbps"`
	AudioKbps   int           `yaml:"audio_kbps"`
	MinDuration time.Duration `yaml:"min_duration"`
	MaxDuration time.Duration `yaml:"max_duration"`
}

// DemandSpec is the demand model.
type DemandSpec struct {
	SessionsPerSubscriberDay float64 `yaml:"sessions_per_subscriber_day"`
	// Diurnal is the relative rate of session starts in each local hour.
	Diurnal []float64 `yaml:"diurnal"`
	// WatchMean is the mean watch time (exponential, capped at the
	// title's length).
	WatchMean time.Duration `yaml:"watch_mean"`
	// Zipf is the exponent of title popularity by global rank.
	Zipf float64 `yaml:"zipf"`
	// RegionalVariation is the standard deviation of a title's log
	// popularity between countries.
	RegionalVariation float64 `yaml:"regional_variation"`
	// RungShares is the share of sessions on each rung of the ladder.
	RungShares []float64   `yaml:"rung_shares"`
	Releases   ReleaseSpec `yaml:"releases"`
}

// ReleaseSpec adds new titles during the run.
type ReleaseSpec struct {
	PerDay int `yaml:"per_day"`
	// Hour (UTC) at which each day's releases go live.
	Hour int `yaml:"hour"`
	// PeakRank is the global popularity rank a release starts at; its
	// popularity halves every HalfLife.
	PeakRank int           `yaml:"peak_rank"`
	HalfLife time.Duration `yaml:"half_life"`
	// Predicted puts releases in the popularity feed before they go live
	// (content.Feed), with a multiplicative PredictionError (log-normal
	// sigma); Urgent marks them for fill outside the window.
	Predicted       bool    `yaml:"predicted"`
	PredictionError float64 `yaml:"prediction_error"`
	Urgent          bool    `yaml:"urgent"`
}

// PlacementSpec sets the control plane's placement.
type PlacementSpec struct {
	Replicas int     `yaml:"replicas"`
	Epsilon  float64 `yaml:"epsilon"`
	// Every is the replanning period (from Start).
	Every time.Duration `yaml:"every"`
	// Region is the popularity region: "site" (as the control plane does
	// today) or "country" (every site of a country shares one prediction,
	// which keeps a 5,000-site world's popularity state small).
	Region   string        `yaml:"region"`
	HalfLife time.Duration `yaml:"half_life"`
}

// FillSpec sets fill.
type FillSpec struct {
	StartHour     int           `yaml:"start_hour"`
	EndHour       int           `yaml:"end_hour"`
	RateGbps      float64       `yaml:"rate_gbps"`
	EscalateAfter time.Duration `yaml:"escalate_after"`
	OutOfCycle    world.Size    `yaml:"out_of_cycle_budget"`
}

// HealthSpec sets the health tracker.
type HealthSpec struct {
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	MissedBeats       int           `yaml:"missed_beats"`
}

// FailureSpec draws failures: each appliance and site fails after an
// exponential time with mean MTBF and is repaired after one with mean
// MTTR; DownAtStart is the share of appliances down when the run starts.
type FailureSpec struct {
	ApplianceMTBF time.Duration `yaml:"appliance_mtbf"`
	ApplianceMTTR time.Duration `yaml:"appliance_mttr"`
	SiteMTBF      time.Duration `yaml:"site_mtbf"`
	SiteMTTR      time.Duration `yaml:"site_mttr"`
	DownAtStart   float64       `yaml:"down_at_start"`
}

// ChurnSpec replays BGP updates (MRT, as RIS publishes them): a prefix of
// the world withdrawn by an update leaves its embedded sites' routes until
// an update announces it again. File is relative to the scenario file.
type ChurnSpec struct {
	File   string `yaml:"file"`
	Repeat bool   `yaml:"repeat"`
}

// SteeringSpec sets the steering answers.
type SteeringSpec struct {
	// URLs per answer (the client fails over down the list).
	URLs int `yaml:"urls"`
	// Locate gives steering each client's metro location, for its last
	// tie-break (distance in 50 km buckets). It costs a great-circle
	// distance per candidate per decision; the generated worlds' routes
	// already prefer near sites, so the default scenario leaves it off.
	Locate bool `yaml:"locate"`
}

// NetworkSpec estimates round-trip times from distance: base + inflation
// × distance / km_per_ms.
type NetworkSpec struct {
	KmPerMs       float64 `yaml:"km_per_ms"`
	PathInflation float64 `yaml:"path_inflation"`
	BaseRTTMs     float64 `yaml:"base_rtt_ms"`
}

// Event is something the scenario does at a time: fail_site,
// fail_appliance, fail_metro (every site in a metro), fail_ixp_metro
// (the IXP sites of a metro) or fail_share (a share of all appliances)
// for Duration; withdraw_prefix and announce_prefix change the routes
// of the world prefix Target at its embedded sites (Duration 0: until
// another event changes it back).
type Event struct {
	At       time.Duration `yaml:"at"`
	Kind     string        `yaml:"kind"`
	Target   string        `yaml:"target"`
	Share    float64       `yaml:"share"`
	Duration time.Duration `yaml:"duration"`
}

var eventKinds = map[string]bool{"fail_site": true, "fail_appliance": true, "fail_metro": true, "fail_ixp_metro": true, "fail_share": true,
	"withdraw_prefix": true, "announce_prefix": true}

// Validate checks a scenario on its own; checks against a world happen in
// New.
func (s *Scenario) Validate() error {
	e := world.Errf
	switch {
	case s.Duration <= 0 || s.Duration > 366*24*time.Hour:
		return e("duration", "%s is not between 0 and a year", s.Duration)
	case s.Step < time.Second || s.Step > 6*time.Hour:
		return e("step", "%s is not between 1s and 6h", s.Step)
	case s.Duration/s.Step > 1_000_000:
		return e("step", "%s is too small for a %s run", s.Step, s.Duration)
	case s.Start.IsZero():
		return e("start", "must be set, such as 2026-01-15T00:00:00Z")
	case !in(s.StorageScale, 1e-3, 1e3):
		return e("storage_scale", "%v is not between 0.001 and 1000", s.StorageScale)
	case !in(s.ThroughputScale, 1e-3, 1e3):
		return e("throughput_scale", "%v is not between 0.001 and 1000", s.ThroughputScale)
	}
	c := s.Catalog
	switch {
	case c.Titles < 1 || c.Titles > 200_000:
		return e("catalog.titles", "%d is not between 1 and 200000", c.Titles)
	case len(c.LadderKbps) == 0:
		return e("catalog.ladder_kbps", "at least one rung is needed")
	case c.AudioKbps < 0 || c.AudioKbps > 10_000:
		return e("catalog.audio_kbps", "%d is not between 0 and 10000", c.AudioKbps)
	case c.MinDuration <= 0 || c.MaxDuration < c.MinDuration || c.MaxDuration > 24*time.Hour:
		return e("catalog.min_duration", "want 0 < min_duration ≤ max_duration ≤ 24h, have %s and %s", c.MinDuration, c.MaxDuration)
	}
	for i, k := range c.LadderKbps {
		if k <= 0 || k > 1_000_000 {
			return e(fmt.Sprintf("catalog.ladder_kbps[%d]", i), "%d is not between 1 and 1000000", k)
		}
	}
	d := s.Demand
	switch {
	case !in(d.SessionsPerSubscriberDay, 0, 100_000):
		return e("demand.sessions_per_subscriber_day", "%v is not between 0 and 100000", d.SessionsPerSubscriberDay)
	case len(d.Diurnal) != 24:
		return e("demand.diurnal", "%d values, want 24 (one per local hour)", len(d.Diurnal))
	case d.WatchMean <= 0 || d.WatchMean > 24*time.Hour:
		return e("demand.watch_mean", "%s is not between 0 and 24h", d.WatchMean)
	case !in(d.Zipf, 0, 5):
		return e("demand.zipf", "%v is not between 0 and 5", d.Zipf)
	case !in(d.RegionalVariation, 0, 10):
		return e("demand.regional_variation", "%v is not between 0 and 10", d.RegionalVariation)
	case len(d.RungShares) != len(c.LadderKbps):
		return e("demand.rung_shares", "%d shares for %d rungs of catalog.ladder_kbps", len(d.RungShares), len(c.LadderKbps))
	}
	sum := 0.0
	for i, v := range d.Diurnal {
		if !in(v, 0, 1e6) {
			return e(fmt.Sprintf("demand.diurnal[%d]", i), "%v is negative or absurd", v)
		}
		sum += v
	}
	if sum <= 0 {
		return e("demand.diurnal", "all zero")
	}
	sum = 0
	for i, v := range d.RungShares {
		if !in(v, 0, 1) {
			return e(fmt.Sprintf("demand.rung_shares[%d]", i), "%v is not a share between 0 and 1", v)
		}
		sum += v
	}
	if math.Abs(sum-1) > 1e-6 {
		return e("demand.rung_shares", "shares add up to %v, want 1", sum)
	}
	r := d.Releases
	switch {
	case r.PerDay < 0 || r.PerDay > 10_000:
		return e("demand.releases.per_day", "%d is not between 0 and 10000", r.PerDay)
	case r.Hour < 0 || r.Hour > 23:
		return e("demand.releases.hour", "%d is not an hour 0-23", r.Hour)
	case r.PerDay > 0 && (r.PeakRank < 1 || r.PeakRank > c.Titles):
		return e("demand.releases.peak_rank", "%d is not between 1 and catalog.titles", r.PeakRank)
	case r.PerDay > 0 && r.HalfLife <= 0:
		return e("demand.releases.half_life", "must be positive")
	case !in(r.PredictionError, 0, 10):
		return e("demand.releases.prediction_error", "%v is not between 0 and 10", r.PredictionError)
	}
	p := s.Placement
	switch {
	case p.Replicas < 1 || p.Replicas > 100:
		return e("placement.replicas", "%d is not between 1 and 100", p.Replicas)
	case !in(p.Epsilon, 0, 10):
		return e("placement.epsilon", "%v is not between 0 and 10", p.Epsilon)
	case p.Every < s.Step:
		return e("placement.every", "%s is shorter than step %s", p.Every, s.Step)
	case p.Region != "country" && p.Region != "site":
		return e("placement.region", "%q is not country or site", p.Region)
	case p.HalfLife < 0:
		return e("placement.half_life", "must not be negative")
	}
	f := s.Fill
	switch {
	case f.StartHour < 0 || f.StartHour > 24 || f.EndHour < 0 || f.EndHour > 24:
		return e("fill.start_hour", "hours %d-%d must be within 0-24", f.StartHour, f.EndHour)
	case !in(f.RateGbps, 1e-6, 1000):
		return e("fill.rate_gbps", "%v is not between 0 and 1000 Gb/s", f.RateGbps)
	case f.EscalateAfter < 0:
		return e("fill.escalate_after", "must not be negative")
	case f.OutOfCycle < 0:
		return e("fill.out_of_cycle_budget", "must not be negative")
	}
	h := s.Health
	switch {
	case h.HeartbeatInterval <= 0 || h.HeartbeatInterval > time.Hour:
		return e("health.heartbeat_interval", "%s is not between 0 and 1h", h.HeartbeatInterval)
	case h.MissedBeats < 1 || h.MissedBeats > 100:
		return e("health.missed_beats", "%d is not between 1 and 100", h.MissedBeats)
	}
	fl := s.Failures
	switch {
	case fl.ApplianceMTBF < 0, fl.ApplianceMTTR < 0, fl.SiteMTBF < 0, fl.SiteMTTR < 0:
		return e("failures", "MTBF and MTTR must not be negative (0 = no failures)")
	case fl.ApplianceMTBF > 0 && fl.ApplianceMTTR <= 0:
		return e("failures.appliance_mttr", "must be positive when appliance_mtbf is set")
	case fl.SiteMTBF > 0 && fl.SiteMTTR <= 0:
		return e("failures.site_mttr", "must be positive when site_mtbf is set")
	case !in(fl.DownAtStart, 0, 1):
		return e("failures.down_at_start", "%v is not a rate between 0 and 1", fl.DownAtStart)
	}
	if s.Steering.URLs < 1 || s.Steering.URLs > 20 {
		return e("steering.urls", "%d is not between 1 and 20", s.Steering.URLs)
	}
	n := s.Network
	switch {
	case !in(n.KmPerMs, 1, 1000):
		return e("network.km_per_ms", "%v is not between 1 and 1000", n.KmPerMs)
	case !in(n.PathInflation, 1, 10):
		return e("network.path_inflation", "%v is not between 1 and 10", n.PathInflation)
	case !in(n.BaseRTTMs, 0, 1000):
		return e("network.base_rtt_ms", "%v is not between 0 and 1000", n.BaseRTTMs)
	}
	for i, ev := range s.Events {
		f := fmt.Sprintf("events[%d]", i)
		switch {
		case !eventKinds[ev.Kind]:
			return e(f+".kind", "%q is not one of fail_site, fail_appliance, fail_metro, fail_ixp_metro, fail_share, withdraw_prefix, announce_prefix", ev.Kind)
		case ev.At < 0 || ev.At > s.Duration:
			return e(f+".at", "%s is outside the run (0 to %s)", ev.At, s.Duration)
		case ev.Duration < 0 || (ev.Duration == 0 && ev.Kind != "withdraw_prefix" && ev.Kind != "announce_prefix"):
			return e(f+".duration", "must be positive")
		case ev.Kind == "fail_share" && !in(ev.Share, 0, 1):
			return e(f+".share", "%v is not a rate between 0 and 1", ev.Share)
		case ev.Kind != "fail_share" && ev.Target == "":
			return e(f+".target", "a %s event needs a target", ev.Kind)
		}
	}
	return nil
}

func in(v, lo, hi float64) bool { return !math.IsNaN(v) && v >= lo && v <= hi }

// ParseScenario decodes a scenario; file names it in errors.
func ParseScenario(file string, data []byte) (*Scenario, error) {
	var s Scenario
	if err := world.DecodeYAML(file, data, &s); err != nil {
		return nil, err
	}
	s.file = file
	var root yaml.Node
	if yaml.Unmarshal(data, &root) == nil {
		s.root = &root
	}
	return &s, nil
}

// lineOf is the line of field in the scenario file (0 when unknown).
func (s *Scenario) lineOf(field string) int {
	if s.root == nil {
		return 0
	}
	return world.LineOf(s.root, field)
}

// LoadScenario reads a scenario file; "" is the built-in one.
func LoadScenario(path string) (*Scenario, error) {
	if path == "" {
		return ParseScenario("built-in scenario", DefaultScenario)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseScenario(path, data)
}

// churnPath resolves route_churn.file against the scenario's directory
// (the built-in scenario's against the working directory).
func (s *Scenario) churnPath() string {
	if s.Churn.File == "" || filepath.IsAbs(s.Churn.File) || s.file == "" || s.file == "built-in scenario" {
		return s.Churn.File
	}
	return filepath.Join(filepath.Dir(s.file), s.Churn.File)
}
