package config

import (
	"fmt"
	"maps"
	"math"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Control is the control plane's config file (`ocdn control --config`).
// Every replica of a replicated control plane loads the same file (only
// listen may differ) and shares state through a postgres:// store.
type Control struct {
	// Listen is where the API is served: one address or a list (port 0
	// picks a free port: for tests and benchmarks).
	Listen AddrList `yaml:"listen,omitempty"`
	// ListenNetns serves the API inside each of these network namespaces
	// as well (on its listen addresses, by default the control plane's),
	// for clients of a network that is a namespace: the lab's IPv6
	// network. Needs root.
	ListenNetns []NetnsListen `yaml:"listen_netns,omitempty"`
	// OpsListen, when set, serves /metrics and the operator endpoints
	// (/v1/admin/…) there instead of on the API's addresses.
	OpsListen AddrList `yaml:"ops_listen,omitempty"`
	// TLS serves the API over HTTPS (reloaded on SIGHUP).
	TLS       *TLSFiles `yaml:"tls,omitempty"`
	Catalog   string    `yaml:"catalog,omitempty"`
	OriginURL string    `yaml:"origin_url,omitempty"`
	KeyFile   string    `yaml:"key_file,omitempty"`
	// AdminTokenFile holds the operator credential (client=, explain=1,
	// drain, key rotation, route lookups).
	AdminTokenFile string `yaml:"admin_token_file,omitempty"`
	// ViewerTokenFile and OperatorTokenFile hold the web console's
	// credentials (served at /ui/, docs/console.md): a viewer reads the
	// console's pages; an operator also drains and enables appliances and
	// reads what the API gives only to the admin token (route lookups,
	// steering explanations, the fill summary). With neither set the
	// control plane serves no console.
	ViewerTokenFile   string `yaml:"viewer_token_file,omitempty"`
	OperatorTokenFile string `yaml:"operator_token_file,omitempty"`
	// ApplianceSecretFile holds the secret appliance tokens are minted
	// from (ocdn control --mint-token ID). It is required unless
	// InsecureUnauthenticatedAppliances asks, by name, for a control plane
	// that believes whoever claims to be an appliance.
	ApplianceSecretFile string `yaml:"appliance_secret_file,omitempty"`
	// InsecureUnauthenticatedAppliances is a development mode: heartbeats,
	// route reports and fill requests are taken from anyone. The control
	// plane logs a warning at every start.
	InsecureUnauthenticatedAppliances bool          `yaml:"insecure_unauthenticated_appliances,omitempty"`
	HeartbeatInterval                 time.Duration `yaml:"heartbeat_interval,omitempty"`
	// Replicas is how many appliances of a site hold each file.
	Replicas int           `yaml:"replicas,omitempty"`
	TokenTTL time.Duration `yaml:"token_ttl,omitempty"`
	// ActivePoll probes every appliance's /healthz each half interval.
	ActivePoll bool `yaml:"active_poll,omitempty"`
	// RouteFiles load global tables (MRT or prefix lists) as the routes of
	// a site's appliances, for IXP and fallback sites without BGP.
	RouteFiles []RouteFile `yaml:"route_files,omitempty"`
	// Store is where control-plane state persists: a SQLite file path
	// (default control.db beside the config file) or postgres://… shared
	// by several replicas, which read it every SyncInterval.
	Store        string        `yaml:"store,omitempty"`
	SyncInterval time.Duration `yaml:"sync_interval,omitempty"`
	// Measure turns on measurement ingest and probe recipes.
	Measure *Measure `yaml:"measure,omitempty"`
	// Steering tunes measurement-aware steering (needs Measure).
	Steering Steering `yaml:"steering,omitempty"`
	// TurnUp holds a new or returning appliance back until it passes its
	// checks (on unless enabled: false).
	TurnUp TurnUp `yaml:"turn_up,omitempty"`
	// Placement tunes how popularity becomes manifests.
	Placement Placement `yaml:"placement,omitempty"`
	// PopularityFeed is a JSON file of expected demand for files that
	// have no history yet (new releases), see docs/formats.md.
	PopularityFeed string `yaml:"popularity_feed,omitempty"`
	// Fill is the nightly fill window, in each site's local time.
	Fill ControlFill `yaml:"fill,omitempty"`
	// DNS runs the authoritative DNS server for the appliances' names;
	// with it, steering URLs name appliances instead of giving their
	// addresses.
	DNS *DNS `yaml:"dns,omitempty"`
	// ApplianceCAFile is a PEM bundle that verifies the certificates of
	// appliances serving TLS (inventory tls: true), for the prober and
	// turn-up downloads (default: the system's roots).
	ApplianceCAFile string `yaml:"appliance_ca_file,omitempty"`
	// CORS lets pages of other origins call the API from a browser (the
	// control plane's own pages, /play/ and the rest, need none).
	CORS      *CORS `yaml:"cors,omitempty"`
	Inventory `yaml:",inline"`
}

// RouteFile is a global table for one site.
type RouteFile struct {
	Site string `yaml:"site,omitempty"`
	File string `yaml:"file,omitempty"`
}

// Measure is the control plane's measurement store and the recipes it
// hands to clients.
type Measure struct {
	// Dir holds the write-ahead log and the Parquet files.
	Dir    string `yaml:"dir,omitempty"`
	Recipe Recipe `yaml:"recipe,omitempty"`
}

// Recipe shapes the Probnik-style recipes clients fetch from /v1/recipe.
type Recipe struct {
	// Targets is how many steered appliances a recipe probes (default 3);
	// the best appliance of every other site holding the probe file is
	// added for comparison.
	Targets int `yaml:"targets,omitempty"`
	// Pulses per target and probe type (default 3).
	Pulses int `yaml:"pulses,omitempty"`
	// PulseSize is what a throughput pulse downloads (default 1MiB).
	PulseSize ByteSize `yaml:"pulse_size,omitempty"`
	// PulseDelay is waited between pulses (default 100ms); PulseTimeout
	// bounds one (default 5s).
	PulseDelay   time.Duration `yaml:"pulse_delay,omitempty"`
	PulseTimeout time.Duration `yaml:"pulse_timeout,omitempty"`
	// Interval is how often a client should run a recipe (default 10m);
	// it is part of every recipe.
	Interval time.Duration `yaml:"interval,omitempty"`
	// Types are the probe types (default all: tcp_connect, tls_handshake,
	// http_ttfb, throughput; dns needs the dns section's names).
	Types []string `yaml:"types,omitempty"`
	// Families is "client" (the default: targets over the client's own
	// address family) or "both" (dual-stack appliances are probed over
	// IPv4 and IPv6, for the family comparison of ocdn analyze).
	Families string `yaml:"families,omitempty"`
}

// Steering tunes measurement-aware steering (docs/steering.md): BGP and
// operator policy decide which sites are eligible for a client prefix;
// measurements rank the eligible sites per prefix group when the evidence
// is clear; guardrails bound how fast clients move and roll a group back
// when playback gets worse.
type Steering struct {
	// Measured lets measurements rank eligible sites.
	Measured bool `yaml:"measured,omitempty"`
	// Eligibility is which sites measurements may choose between:
	// EligibleLocalPref (the default) the routed sites whose route has
	// the best route's local-pref; EligibleEmbeddedIXP also the IXP sites
	// for clients of the ISPs listed in AllowIXP.
	Eligibility string `yaml:"eligibility,omitempty"`
	// AllowIXP names the ISPs that allow their clients to be moved from
	// their embedded site to an IXP site (with EligibleEmbeddedIXP).
	AllowIXP []string `yaml:"allow_ixp,omitempty"`
	// Metric ranks sites: ttfb_ms (default), connect_ms or
	// throughput_bps (higher is better).
	Metric string `yaml:"metric,omitempty"`
	// MinSamples per (prefix group, site) within Window before a site's
	// median counts (default 50); Margin is the relative difference that
	// must separate two sites' 95% intervals (default 0.10); Refresh is
	// how often the table is rebuilt, one guardrail step (default 5s);
	// Window is how far back measurements count (default 5m).
	MinSamples int           `yaml:"min_samples,omitempty"`
	Margin     float64       `yaml:"margin,omitempty"`
	Refresh    time.Duration `yaml:"refresh,omitempty"`
	Window     time.Duration `yaml:"window,omitempty"`
	// MaxStep is the largest share of a prefix group's clients that may
	// move per Refresh step (default 0.25; 1 moves a group at once).
	MaxStep float64 `yaml:"max_step,omitempty"`
	// QoEWatch rolls a group back when its moved clients play worse than
	// its control clients.
	QoEWatch QoEWatch `yaml:"qoe_watch,omitempty"`
	// Experiment splits clients into arms (see Experiment); without one,
	// every client is steered by measurements when Measured is on.
	Experiment *Experiment `yaml:"experiment,omitempty"`
}

// Eligibility policies of Steering.Eligibility.
const (
	EligibleLocalPref   = "local_pref"
	EligibleEmbeddedIXP = "embedded_ixp"
)

// SteeringMetrics are the metrics Steering.Metric may rank by.
var SteeringMetrics = []string{"ttfb_ms", "connect_ms", "throughput_bps"}

// QoEWatch compares, per prefix group, the playback of the measured arm's
// clients that were moved with the control arm's over the steering
// window, and rolls the group back to BGP when the moved clients do worse
// by more than a margin on any of startup time, rebuffering or
// throughput.
type QoEWatch struct {
	// MinSessions per arm before the watch judges (default 5).
	MinSessions int `yaml:"min_sessions,omitempty"`
	// StartupMargin: roll back when the moved clients' median startup
	// exceeds the control's by this share (default 0.5).
	StartupMargin float64 `yaml:"startup_margin,omitempty"`
	// RebufferMargin: roll back when their rebuffering ratio exceeds the
	// control's by this much (default 0.02, two points of play time).
	RebufferMargin float64 `yaml:"rebuffer_margin,omitempty"`
	// ThroughputMargin: roll back when their median throughput is below
	// the control's by this share (default 0.2).
	ThroughputMargin float64 `yaml:"throughput_margin,omitempty"`
	// Hold is how long a rolled-back group stays on BGP (default 10m).
	Hold time.Duration `yaml:"hold,omitempty"`
}

// Experiment is a named steering experiment. Every client /24 (IPv6 /48)
// is assigned an arm by a hash of the experiment's name and the prefix,
// so the assignment is deterministic and fixed for the experiment's life;
// the arm named "measured" is steered by measurements, every other arm by
// BGP. The name, start and shares are written into every recipe's
// context, so analyses know what they compare.
type Experiment struct {
	Name string `yaml:"name,omitempty"`
	// Start is when the experiment began (RFC 3339); data before it is
	// not part of it. Zero means when the control plane started.
	Start time.Time `yaml:"start,omitempty"`
	// Shares of clients per arm; they must sum to 1. Default
	// {bgp: 0.5, measured: 0.5}.
	Shares map[string]float64 `yaml:"shares,omitempty"`
	// Control is the arm the others are compared against (default bgp).
	Control string `yaml:"control,omitempty"`
	// Metrics the experiment is judged on (default throughput_bps,
	// ttfb_ms, startup_ms, rebuffer_ratio); see ExperimentMetrics.
	Metrics []string `yaml:"metrics,omitempty"`
	// CongestionControl names, per arm, the TCP congestion control
	// ("bbr", "cubic", "reno") the appliances serve that arm's clients
	// with; arms not listed get each appliance's default. It travels in
	// the steering answer's signed token. The control plane cannot know
	// the appliances' kernels: an appliance serves a name it lacks with
	// its default and counts it (ocdn_transport_cc_unavailable_total).
	CongestionControl map[string]string `yaml:"congestion_control,omitempty"`
}

// ExperimentMetrics are the metrics an experiment may name: probe
// timings at the steered appliance and playback QoE.
var ExperimentMetrics = []string{"connect_ms", "ttfb_ms", "throughput_bps", "startup_ms", "rebuffer_ratio", "bitrate_kbps"}

// Arm names of the default experiment.
const (
	ArmBGP      = "bgp"
	ArmMeasured = "measured"
)

// WithDefaults returns e with its zero fields set to their defaults.
func (e Experiment) WithDefaults() Experiment {
	if len(e.Shares) == 0 {
		e.Shares = map[string]float64{ArmBGP: 0.5, ArmMeasured: 0.5}
	}
	if e.Control == "" {
		e.Control = ArmBGP
	}
	if len(e.Metrics) == 0 {
		e.Metrics = []string{"throughput_bps", "ttfb_ms", "startup_ms", "rebuffer_ratio"}
	}
	return e
}

// Validate refuses an experiment that cannot be run as defined: a missing
// name, shares that are not a distribution, an unknown control arm or
// metric.
func (e Experiment) Validate(field string) error {
	if e.Name == "" || len(e.Name) > 64 || strings.ContainsAny(e.Name, ",;= \t\n") {
		return Errf(field+".name", "%q: name the experiment (1 to 64 characters, no spaces, commas, semicolons or '=')", e.Name)
	}
	e = e.WithDefaults()
	var sum float64
	for arm, share := range e.Shares {
		if arm == "" || strings.ContainsAny(arm, ",;= \t\n") {
			return Errf(field+".shares", "arm name %q: want a word without spaces, commas, semicolons or '='", arm)
		}
		if !(share > 0 && share <= 1) {
			return Errf(field+".shares."+arm, "%g is not a share in (0, 1]", share)
		}
		sum += share
	}
	if math.Abs(sum-1) > 1e-9 {
		return Errf(field+".shares", "the arms' shares sum to %g, want 1", sum)
	}
	if _, ok := e.Shares[e.Control]; !ok {
		return Errf(field+".control", "%q is not one of the arms %v", e.Control, slices.Sorted(maps.Keys(e.Shares)))
	}
	for arm, cc := range e.CongestionControl {
		if _, ok := e.Shares[arm]; !ok {
			return Errf(field+".congestion_control", "%q is not one of the arms %v", arm, slices.Sorted(maps.Keys(e.Shares)))
		}
		if err := congestionName(field+".congestion_control."+arm, cc); err != nil {
			return err
		}
	}
	for i, m := range e.Metrics {
		if !slices.Contains(ExperimentMetrics, m) {
			return Errf(fmt.Sprintf("%s.metrics[%d]", field, i), "%q is not a metric: want one of %s", m, strings.Join(ExperimentMetrics, ", "))
		}
	}
	return nil
}

// validate checks the steering section against the inventory.
func (s Steering) validate(inv Inventory) error {
	switch {
	case s.MinSamples < 0:
		return Errf("steering.min_samples", "%d is negative", s.MinSamples)
	case s.Margin < 0 || s.Margin > 10:
		return Errf("steering.margin", "%g is not between 0 and 10", s.Margin)
	case s.MaxStep < 0 || s.MaxStep > 1:
		return Errf("steering.max_step", "%g is not a share of a group's clients between 0 and 1", s.MaxStep)
	}
	if err := durationAtLeast("steering.refresh", s.Refresh, 100*time.Millisecond, time.Hour); err != nil {
		return err
	}
	if err := durationAtLeast("steering.window", s.Window, time.Second, 7*24*time.Hour); err != nil {
		return err
	}
	if s.Metric != "" && !slices.Contains(SteeringMetrics, s.Metric) {
		return Errf("steering.metric", "%q is not one of %s", s.Metric, strings.Join(SteeringMetrics, ", "))
	}
	switch s.Eligibility {
	case "", EligibleLocalPref:
		if len(s.AllowIXP) > 0 {
			return Errf("steering.allow_ixp", "needs eligibility: %s (with %s only routed sites are eligible)", EligibleEmbeddedIXP, EligibleLocalPref)
		}
	case EligibleEmbeddedIXP:
		if len(s.AllowIXP) == 0 {
			return Errf("steering.allow_ixp", "name the ISPs that allow their clients to be moved to an IXP site")
		}
	default:
		return Errf("steering.eligibility", "%q is not %s or %s", s.Eligibility, EligibleLocalPref, EligibleEmbeddedIXP)
	}
	for i, name := range s.AllowIXP {
		if !slices.ContainsFunc(inv.ISPs, func(isp ISP) bool { return isp.Name == name }) {
			return Errf(fmt.Sprintf("steering.allow_ixp[%d]", i), "unknown ISP %q", name)
		}
	}
	q := s.QoEWatch
	switch {
	case q.MinSessions < 0:
		return Errf("steering.qoe_watch.min_sessions", "%d is negative", q.MinSessions)
	case q.StartupMargin < 0 || q.StartupMargin > 10:
		return Errf("steering.qoe_watch.startup_margin", "%g is not a relative margin between 0 and 10", q.StartupMargin)
	case q.RebufferMargin < 0 || q.RebufferMargin > 1:
		return Errf("steering.qoe_watch.rebuffer_margin", "%g is not a share of play time between 0 and 1", q.RebufferMargin)
	case q.ThroughputMargin < 0 || q.ThroughputMargin >= 1:
		return Errf("steering.qoe_watch.throughput_margin", "%g is not a relative margin from 0 to below 1", q.ThroughputMargin)
	}
	if err := durationAtLeast("steering.qoe_watch.hold", q.Hold, time.Second, 30*24*time.Hour); err != nil {
		return err
	}
	if s.Experiment != nil {
		return s.Experiment.Validate("steering.experiment")
	}
	return nil
}

// TurnUp holds clients back from an appliance until it holds FillShare of
// its manifest and a test download from it matches the origin.
type TurnUp struct {
	// Enabled defaults to true.
	Enabled *bool `yaml:"enabled,omitempty"`
	// FillShare is the share of manifest files it must hold (default 1).
	FillShare float64 `yaml:"fill_share,omitempty"`
	// TestDownload fetches a file through the appliance and compares it
	// with the catalog (default true).
	TestDownload *bool `yaml:"test_download,omitempty"`
}

// On reports whether turn-up checks run.
func (t TurnUp) On() bool { return t.Enabled == nil || *t.Enabled }

// Download reports whether the test download runs.
func (t TurnUp) Download() bool { return t.TestDownload == nil || *t.TestDownload }

// Placement tunes popularity and placement.
type Placement struct {
	// ReplanInterval is how often manifests are recomputed from demand
	// (default 1h; the first plan is made at start).
	ReplanInterval time.Duration `yaml:"replan_interval,omitempty"`
	// Hysteresis keeps a file's copy count while its demand stays within
	// this share of the boundary (default 0.1), bounding churn.
	Hysteresis float64 `yaml:"hysteresis,omitempty"`
	// HalfLife is the half-life of the demand average (default 72h).
	HalfLife time.Duration `yaml:"half_life,omitempty"`
	// CheckInterval is how often demand counted from steering answers is
	// folded into popularity and the ranking compared with the plan
	// (default: replan_interval, at most 1m).
	CheckInterval time.Duration `yaml:"check_interval,omitempty"`
	// RankingChange replans before replan_interval when the ranking has
	// moved this share of a site's placed bytes since the last plan
	// (default 0.05).
	RankingChange float64 `yaml:"ranking_change,omitempty"`
	// MaxChurn bounds the bytes one replan adds to a site's appliances,
	// as a share of the site's capacity (default 0.1; at least the
	// largest file).
	MaxChurn float64 `yaml:"max_churn,omitempty"`
}

// ControlFill is the fill window and escalation at the control plane.
type ControlFill struct {
	// WindowStart is when the window opens in each site's local time,
	// on the hour ("02:00", the default); WindowLength is how long it is
	// open, in whole hours (default 12h; 24h means always).
	WindowStart  string        `yaml:"window_start,omitempty"`
	WindowLength time.Duration `yaml:"window_length,omitempty"`
	// EscalateAfter is how long an appliance waits for a closer source
	// (a peer, then another site) before it may use a farther one
	// (default 60s).
	EscalateAfter time.Duration `yaml:"escalate_after,omitempty"`
}

// Hours returns the window as [start, end) local hours.
func (f ControlFill) Hours() (start, end int) {
	start, end = 2, 14
	if f.WindowStart != "" {
		start, _ = parseHour(f.WindowStart)
	}
	length := 12
	if f.WindowLength > 0 {
		length = int(f.WindowLength / time.Hour)
	}
	if length >= 24 {
		return start, start
	}
	return start, (start + length) % 24
}

func parseHour(s string) (int, bool) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || m != "00" || len(h) != 2 {
		return 0, false
	}
	n, err := strconv.Atoi(h)
	return n, err == nil && n >= 0 && n < 24
}

// MinHeartbeatInterval is the shortest heartbeat interval accepted: below
// it the control plane's health loop would spin rather than sample.
const MinHeartbeatInterval = 50 * time.Millisecond

// Validate implements Validator.
func (c *Control) Validate() error {
	if err := c.Listen.validate("listen", true); err != nil {
		return err
	}
	if err := validateNetns("listen_netns", c.ListenNetns); err != nil {
		return err
	}
	if len(c.OpsListen) > 0 {
		if err := c.OpsListen.validate("ops_listen", true); err != nil {
			return err
		}
	}
	if err := c.TLS.validate("tls"); err != nil {
		return err
	}
	if c.Catalog == "" {
		return Errf("catalog", "must name a catalog file")
	}
	if err := httpURL("origin_url", c.OriginURL); err != nil {
		return err
	}
	if c.KeyFile == "" {
		return Errf("key_file", "must name a key file (make one with `ocdn urlsign keygen`)")
	}
	switch {
	case c.ApplianceSecretFile == "" && !c.InsecureUnauthenticatedAppliances:
		return Errf("appliance_secret_file", "must name the secret appliance credentials are minted from (make one with: head -c 32 /dev/urandom | base64 > appliance.secret); a development control plane that trusts anyone may instead set insecure_unauthenticated_appliances: true")
	case c.ApplianceSecretFile != "" && c.InsecureUnauthenticatedAppliances:
		return Errf("insecure_unauthenticated_appliances", "set together with appliance_secret_file: choose one")
	}
	for _, d := range []struct {
		field  string
		v      time.Duration
		lo, hi time.Duration
	}{
		{"heartbeat_interval", c.HeartbeatInterval, MinHeartbeatInterval, time.Hour},
		{"token_ttl", c.TokenTTL, time.Minute, 30 * 24 * time.Hour},
		{"sync_interval", c.SyncInterval, 10 * time.Millisecond, time.Hour},
		{"steering.refresh", c.Steering.Refresh, 100 * time.Millisecond, time.Hour},
		{"placement.replan_interval", c.Placement.ReplanInterval, time.Second, 0},
		{"placement.half_life", c.Placement.HalfLife, time.Second, 0},
		{"placement.check_interval", c.Placement.CheckInterval, 100 * time.Millisecond, 24 * time.Hour},
		{"fill.escalate_after", c.Fill.EscalateAfter, 100 * time.Millisecond, 24 * time.Hour},
	} {
		if err := durationAtLeast(d.field, d.v, d.lo, d.hi); err != nil {
			return err
		}
	}
	if err := c.validateConsole(); err != nil {
		return err
	}
	if c.Replicas < 0 || c.Replicas > 100 {
		return Errf("replicas", "%d is not between 1 and 100 (0 means the default, 2)", c.Replicas)
	}
	if err := c.ValidateInventory(netip.Prefix{}); err != nil {
		return err
	}
	if err := c.DNS.validate(c.Inventory); err != nil {
		return err
	}
	for i, rf := range c.RouteFiles {
		if _, ok := c.SiteByID(rf.Site); !ok {
			return Errf(fmt.Sprintf("route_files[%d].site", i), "unknown site %q", rf.Site)
		}
		if rf.File == "" {
			return Errf(fmt.Sprintf("route_files[%d].file", i), "must name an MRT or prefix-list file")
		}
	}
	if err := c.Measure.validate(c.DNS != nil); err != nil {
		return err
	}
	if err := c.CORS.validate("cors"); err != nil {
		return err
	}
	if (c.Steering.Measured || c.Steering.Experiment != nil) && c.Measure == nil {
		return Errf("steering", "measured steering and experiments need measure.dir (where reports are stored)")
	}
	if err := c.Steering.validate(c.Inventory); err != nil {
		return err
	}
	if t := c.TurnUp; t.FillShare < 0 || t.FillShare > 1 {
		return Errf("turn_up.fill_share", "%g is not a share between 0 and 1", t.FillShare)
	}
	if h := c.Placement.Hysteresis; h < 0 || h >= 1 {
		return Errf("placement.hysteresis", "%g is not a share from 0 to below 1", h)
	}
	if r := c.Placement.RankingChange; r < 0 || r > 1 {
		return Errf("placement.ranking_change", "%g is not a share from 0 to 1 (0 means the default, 0.05)", r)
	}
	if m := c.Placement.MaxChurn; m < 0 || m > 1 {
		return Errf("placement.max_churn", "%g is not a share of capacity from 0 to 1 (0 means the default, 0.1)", m)
	}
	if ci, ri := c.Placement.CheckInterval, c.Placement.ReplanInterval; ci > 0 && ri > 0 && ci > ri {
		return Errf("placement.check_interval", "%s is longer than placement.replan_interval %s: checks must come at least as often as replans", ci, ri)
	}
	if c.Fill.WindowStart != "" {
		if _, ok := parseHour(c.Fill.WindowStart); !ok {
			return Errf("fill.window_start", "%q is not an hour such as 02:00 (windows start on the hour)", c.Fill.WindowStart)
		}
	}
	if l := c.Fill.WindowLength; l != 0 && (l < time.Hour || l > 24*time.Hour || l%time.Hour != 0) {
		return Errf("fill.window_length", "%s is not a whole number of hours from 1h to 24h", l)
	}
	// Every appliance fills in its site's local window: a site without a
	// time zone has no window.
	for i, s := range c.Sites {
		if s.TimeZone == "" {
			return Errf(fmt.Sprintf("sites[%d].time_zone", i), "must be set to an IANA zone such as Europe/Amsterdam: site %q fills in its local window (%s)", s.ID, c.Fill.describe())
		}
	}
	return nil
}

// validateConsole refuses credential files that would merge roles: one
// file for viewer and operator, or a viewer holding the admin token.
// (Daemons also compare the tokens the files hold.)
func (c *Control) validateConsole() error {
	v, o := c.ViewerTokenFile, c.OperatorTokenFile
	switch {
	case v != "" && v == o:
		return Errf("operator_token_file", "%s is also viewer_token_file: viewers and operators need different tokens", o)
	case v != "" && v == c.AdminTokenFile:
		return Errf("viewer_token_file", "%s is also admin_token_file: a viewer would hold the admin credential", v)
	}
	return nil
}

func (f ControlFill) describe() string {
	start, end := f.Hours()
	if start == end {
		return "all day"
	}
	return fmt.Sprintf("%02d:00 to %02d:00", start, end)
}

// validate checks the measure section; names says whether the control
// plane has a dns section (dns pulses resolve its names).
func (m *Measure) validate(names bool) error {
	if m == nil {
		return nil
	}
	if m.Dir == "" {
		return Errf("measure.dir", "must name the directory reports are stored in")
	}
	r := m.Recipe
	switch {
	case r.Targets < 0 || r.Targets > 20:
		return Errf("measure.recipe.targets", "%d is not between 1 and 20", r.Targets)
	case r.Pulses < 0 || r.Pulses > 100:
		return Errf("measure.recipe.pulses", "%d is not between 1 and 100", r.Pulses)
	case r.PulseSize < 0 || r.PulseSize > 1<<30:
		return Errf("measure.recipe.pulse_size", "%d bytes is not between 1 byte and 1GiB", r.PulseSize)
	}
	for _, d := range []struct {
		field  string
		v      time.Duration
		lo, hi time.Duration
	}{
		{"measure.recipe.pulse_delay", r.PulseDelay, time.Millisecond, time.Minute},
		{"measure.recipe.pulse_timeout", r.PulseTimeout, 100 * time.Millisecond, 5 * time.Minute},
		{"measure.recipe.interval", r.Interval, time.Second, 7 * 24 * time.Hour},
	} {
		if err := durationAtLeast(d.field, d.v, d.lo, d.hi); err != nil {
			return err
		}
	}
	for i, t := range r.Types {
		switch t {
		case "tcp_connect", "tls_handshake", "http_ttfb", "throughput":
		case "dns":
			if !names {
				return Errf(fmt.Sprintf("measure.recipe.types[%d]", i), "dns probes resolve appliance names: add a dns section")
			}
		default:
			return Errf(fmt.Sprintf("measure.recipe.types[%d]", i), "%q is not one of tcp_connect, tls_handshake, http_ttfb, throughput, dns", t)
		}
	}
	switch r.Families {
	case "", "client", "both":
	default:
		return Errf("measure.recipe.families", "%q is not client or both", r.Families)
	}
	return nil
}

func (c *Control) resolvePaths(dir string) {
	for _, p := range []*string{&c.Catalog, &c.KeyFile, &c.AdminTokenFile, &c.ViewerTokenFile, &c.OperatorTokenFile, &c.ApplianceSecretFile, &c.PopularityFeed, &c.ApplianceCAFile} {
		resolve(dir, p)
	}
	if c.TLS != nil {
		resolve(dir, &c.TLS.CertFile)
		resolve(dir, &c.TLS.KeyFile)
	}
	if c.Measure != nil {
		resolve(dir, &c.Measure.Dir)
	}
	for i := range c.RouteFiles {
		resolve(dir, &c.RouteFiles[i].File)
	}
	if c.Store == "" {
		c.Store = "control.db"
	}
	if !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") {
		resolve(dir, &c.Store)
	}
}

// httpURL checks that s is an absolute http(s) URL without a path.
func httpURL(field, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return Errf(field, "%q is not an http(s) URL such as http://10.0.0.1:8080", s)
	}
	return nil
}
