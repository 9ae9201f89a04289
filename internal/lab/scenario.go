package lab

import (
	_ "embed"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
)

// DefaultScenario is the built-in scenario, printable with
// `ocdn lab --print-scenario`.
//
//go:embed default.yaml
var DefaultScenario []byte

// LossyScenario is the built-in "lossy" scenario: a lossy, bufferbloated
// packet-level link and a congestion-control experiment (packet.go).
//
//go:embed lossy.yaml
var LossyScenario []byte

// BuiltinScenarios are the scenarios `ocdn lab --scenario NAME` knows by
// name ("" is "default").
var BuiltinScenarios = map[string][]byte{"default": DefaultScenario, "lossy": LossyScenario}

// applianceRange is where lab appliances listen (DESIGN: addresses on one
// machine).
var applianceRange = netip.MustParsePrefix("127.1.0.0/16")

// loopback4 is where lab clients get source addresses.
var loopback4 = netip.MustParsePrefix("127.0.0.0/8")

// Scenario describes a whole CDN on one machine.
type Scenario struct {
	Duration          time.Duration     `yaml:"duration"`
	Catalog           content.SynthSpec `yaml:"catalog"`
	HeartbeatInterval time.Duration     `yaml:"heartbeat_interval"`
	Replicas          int               `yaml:"replicas"`
	config.Inventory  `yaml:",inline"`
	Player            PlayerSettings `yaml:"player"`
	// Links emulate the path from each ISP's clients to each site.
	Links []LinkSpec `yaml:"links"`
	// Probes shape the clients' measurements.
	Probes ProbeSettings `yaml:"probes"`
	// Steering is the control plane's steering section as an operator
	// writes it (config.Steering, docs/formats.md): measured steering,
	// its policy and guardrails, and the experiment.
	Steering config.Steering `yaml:"steering"`
	Clients  []ClientGroup   `yaml:"clients"`
	Events   []Event         `yaml:"events"`
	// Fill shapes fill: the compressed clock, rate cap, corrupt copies (fill.go).
	Fill FillSettings `yaml:"fill"`
	// Placement shapes the control plane's placement loop (loops.go).
	Placement PlacementSettings `yaml:"placement"`

	// compiled is when the scenario was compiled: the start of its
	// experiment unless the scenario gives one.
	compiled time.Time
}

// PlayerSettings shape every lab client's playback.
type PlayerSettings struct {
	// SegmentDuration is the playback time of one range request.
	SegmentDuration time.Duration `yaml:"segment_duration"`
	// MaxBuffer is how far ahead of playback a player downloads. Real
	// players buffer minutes; the lab keeps it short so that sessions are
	// mid-download when an event strikes.
	MaxBuffer time.Duration `yaml:"max_buffer"`
}

// steering is the scenario's steering section with the lab's default
// step: a lab run lasts a minute, so evidence is re-evaluated every 2 s.
func (s *Scenario) steering() config.Steering {
	st := s.Steering
	if st.Refresh == 0 {
		st.Refresh = 2 * time.Second
	}
	if st.Experiment != nil && st.Experiment.Start.IsZero() {
		// One start for the run, whatever restarts the control plane.
		e := *st.Experiment
		e.Start = s.compiled
		st.Experiment = &e
	}
	return st
}

// ClientGroup is a number of clients inside one ISP.
type ClientGroup struct {
	ISP   string `yaml:"isp"`
	Count int    `yaml:"count"`
	// MaxBitrateKbps caps the rung the group's players pick (0 = top).
	MaxBitrateKbps int `yaml:"max_bitrate_kbps"`
	// IPv6Share is the share of the group's clients that are dual-stack
	// (0 to 1): each also has an IPv6 address in its ISP's IPv6 prefixes,
	// reaches the control plane over IPv6 (so it is steered to IPv6
	// names), asks for both families' URLs and races them as RFC 8305's
	// Happy Eyeballs does, and probes dual-stack appliances over both.
	// Needs root (ipv6.go).
	IPv6Share float64 `yaml:"ipv6_share,omitempty"`
}

// Event is something the lab does to the CDN at a point in the run.
type Event struct {
	// At is a time from the start of streaming ("15s") or a share of
	// the duration ("50%").
	At     string `yaml:"at"`
	Kind   string `yaml:"kind"`
	Target string `yaml:"target"`
	// Prefix is the prefix of withdraw_prefix and announce_prefix.
	Prefix config.Prefix `yaml:"prefix,omitempty"`
	// Duration is how long stop_control_plane keeps the control plane down.
	Duration time.Duration `yaml:"duration,omitempty"`
	// Link is what degrade_link does to one ISP's link to one site.
	Link *LinkChange `yaml:"link,omitempty"`
	// Title, Share and Lead shape release and popularity_shift (loops.go).
	Title string        `yaml:"title,omitempty"`
	Share float64       `yaml:"share,omitempty"`
	Lead  time.Duration `yaml:"lead,omitempty"`
}

// EventKinds the lab knows: kill_appliance targets an appliance;
// withdraw_prefix and announce_prefix target an ISP and name a Prefix its
// router stops or starts announcing; release and popularity_shift name a
// Title (loops.go); degrade_link changes a Link.
var eventKinds = map[string]bool{"kill_appliance": true, "withdraw_prefix": true, "announce_prefix": true, "stop_control_plane": true,
	"release": true, "popularity_shift": true, "degrade_link": true}

// When resolves At against the run's duration.
func (e Event) When(d time.Duration) (time.Duration, error) {
	if pct, ok := strings.CutSuffix(e.At, "%"); ok {
		f, err := strconv.ParseFloat(pct, 64)
		if err != nil || f < 0 || f > 100 {
			return 0, fmt.Errorf("%q is not a share from 0%% to 100%%", e.At)
		}
		return time.Duration(f / 100 * float64(d)), nil
	}
	t, err := time.ParseDuration(e.At)
	if err != nil || t < 0 {
		return 0, fmt.Errorf("%q is neither a duration such as 15s nor a share such as 50%%", e.At)
	}
	return t, nil
}

// Validate checks the scenario before anything starts.
func (s *Scenario) Validate() error {
	if s.Duration <= 0 {
		return config.Errf("duration", "must be positive, such as 60s")
	}
	if err := s.Catalog.Validate(); err != nil {
		return config.Errf("catalog", "%v", err)
	}
	if s.HeartbeatInterval <= 0 {
		return config.Errf("heartbeat_interval", "must be positive, such as 1s")
	}
	if s.Player.SegmentDuration <= 0 || s.Player.MaxBuffer < s.Player.SegmentDuration {
		return config.Errf("player", "segment_duration must be positive and max_buffer at least one segment")
	}
	if s.Replicas < 1 {
		return config.Errf("replicas", "must be at least 1")
	}
	if err := s.ValidateInventory(applianceRange); err != nil {
		return err
	}
	if err := s.Fill.validate(s); err != nil {
		return err
	}
	if err := s.Placement.validate(); err != nil {
		return err
	}
	isps := map[string]config.ISP{}
	for i, isp := range s.ISPs {
		isps[isp.Name] = isp
		for j, p := range isp.Prefixes {
			if p.Addr().Is6() {
				continue // validateIPv6
			}
			if !loopback4.Contains(p.Addr()) || p.Bits() < 8 || p.Bits() > 30 {
				return config.Errf(fmt.Sprintf("isps[%d].prefixes[%d]", i, j), "%s: lab clients bind addresses in their ISP's prefixes, so each must be inside 127.0.0.0/8 and /8 to /30", p.Prefix)
			}
			if p.Overlaps(applianceRange) || p.Contains(netip.MustParseAddr("127.0.0.1")) {
				return config.Errf(fmt.Sprintf("isps[%d].prefixes[%d]", i, j), "%s overlaps the addresses of appliances (127.1.0.0/16) or the control plane (127.0.0.1)", p.Prefix)
			}
		}
	}
	if err := s.validateIPv6(isps); err != nil {
		return err
	}
	if len(s.Clients) == 0 {
		return config.Errf("clients", "at least one client group is needed")
	}
	if err := s.validateMeasurement(isps); err != nil {
		return err
	}
	for i, c := range s.Clients {
		f := fmt.Sprintf("clients[%d]", i)
		isp, ok := isps[c.ISP]
		if !ok {
			return config.Errf(f+".isp", "unknown ISP %q", c.ISP)
		}
		if len(prefixesOf(isp, false)) == 0 {
			return config.Errf(f+".isp", "ISP %q has no IPv4 prefixes to put clients in", c.ISP)
		}
		if c.Count < 1 || c.Count > 1000 {
			return config.Errf(f+".count", "%d is not between 1 and 1000", c.Count)
		}
	}
	appliances := map[string]bool{}
	for _, a := range s.Appliances {
		appliances[a.ID] = true
	}
	for i, e := range s.Events {
		f := fmt.Sprintf("events[%d]", i)
		if !eventKinds[e.Kind] {
			return config.Errf(f+".kind", "%q is not an event kind (kill_appliance, withdraw_prefix, announce_prefix, stop_control_plane, release, popularity_shift, degrade_link)", e.Kind)
		}
		if _, err := e.When(s.Duration); err != nil {
			return config.Errf(f+".at", "%v", err)
		}
		if e.Kind == "stop_control_plane" {
			if e.Duration <= 0 || e.Duration > s.Duration {
				return config.Errf(f+".duration", "stop_control_plane needs a duration such as 3s, shorter than the run")
			}
			continue
		}
		if e.Kind == "degrade_link" {
			if err := s.validateDegrade(f, e); err != nil {
				return err
			}
			continue
		}
		if e.Kind == "release" || e.Kind == "popularity_shift" {
			if err := s.validateLoopEvent(f, e); err != nil {
				return err
			}
			continue
		}
		if e.Kind == "kill_appliance" {
			if !appliances[e.Target] {
				return config.Errf(f+".target", "unknown appliance %q", e.Target)
			}
			continue
		}
		isp, ok := isps[e.Target]
		if !ok {
			return config.Errf(f+".target", "unknown ISP %q (a %s event targets an ISP's router)", e.Target, e.Kind)
		}
		if !e.Prefix.IsValid() || e.Prefix.Prefix != e.Prefix.Masked() || !slices.ContainsFunc(isp.Prefixes, func(p config.Prefix) bool { return p.Prefix == e.Prefix.Prefix }) {
			return config.Errf(f+".prefix", "%q is not one of ISP %q's prefixes", e.Prefix.Raw, e.Target)
		}
	}
	return nil
}

// LoadScenario reads a scenario file; an empty path means the built-in
// default, and the name of a built-in scenario ("lossy") that one, unless
// a file of that name exists.
func LoadScenario(path string) (*Scenario, error) {
	var s Scenario
	if path == "" {
		path = "default"
	}
	if b, ok := BuiltinScenarios[path]; ok {
		if _, err := os.Stat(path); err != nil {
			return &s, decodeScenario("built-in scenario "+path, b, &s)
		}
	}
	return &s, config.Load(path, &s)
}

func decodeScenario(name string, data []byte, s *Scenario) error {
	return config.Decode(name, data, s)
}
