package api

import "time"

// GroupState is one prefix group's measured steering, as
// GET /v1/steering/measured reports it.
type GroupState struct {
	Group string `json:"group"`
	// BGPSite is the site BGP and the steering order choose; Site the one
	// measurements chose (empty when none); Share the share of the
	// group's measured-arm clients moved there.
	BGPSite  string   `json:"bgp_site"`
	Eligible []string `json:"eligible,omitempty"`
	Site     string   `json:"site,omitempty"`
	Share    float64  `json:"share"`
	Evidence string   `json:"evidence,omitempty"`
	// Steps counts share increases; Rollbacks QoE-watch rollbacks;
	// Reverts returns to BGP because the chosen site became worse.
	Steps     int       `json:"steps"`
	Rollbacks int       `json:"rollbacks"`
	Reverts   int       `json:"reverts"`
	HeldUntil time.Time `json:"held_until,omitzero"`
	// History is the share after each change, oldest first (at most 64).
	History []ShareChange `json:"history,omitempty"`
}

// ShareChange is one change of a group's moved share.
type ShareChange struct {
	At    time.Time `json:"at"`
	Share float64   `json:"share"`
	Site  string    `json:"site,omitempty"`
	Why   string    `json:"why"`
}

// MeasuredStatus is GET /v1/steering/measured.
type MeasuredStatus struct {
	Enabled    bool              `json:"enabled"`
	Metric     string            `json:"metric"`
	MaxStep    float64           `json:"max_step"`
	Experiment *ExperimentStatus `json:"experiment,omitempty"`
	Groups     []GroupState      `json:"groups"`
	// Arms counts, per arm, the steps and rollbacks of its clients (only
	// the measured arm moves) and reports whose arm was not their
	// client's.
	Arms       map[string]ArmCounts `json:"arms"`
	Mismatches int                  `json:"mismatches"`
}

// ExperimentStatus describes the running experiment.
type ExperimentStatus struct {
	Name    string             `json:"name"`
	Start   time.Time          `json:"start"`
	Shares  map[string]float64 `json:"shares"`
	Control string             `json:"control"`
	Metrics []string           `json:"metrics"`
}

// ArmCounts are one arm's measured-steering counters.
type ArmCounts struct {
	Steps     int `json:"steps"`
	Rollbacks int `json:"rollbacks"`
	Reverts   int `json:"reverts"`
}
