package api

import "time"

// Replan is one recomputation of every manifest (GET /v1/admin/placement,
// and the answer of PUT /v1/admin/popularity-feed).
type Replan struct {
	// Seq is the plan's sequence number, the first part of every
	// manifest version it made.
	Seq int       `json:"seq"`
	At  time.Time `json:"at"`
	// Reason is "interval" (the replan interval passed), "ranking" (the
	// popularity ranking moved enough, or the last plan was held back by
	// the churn bound), "feed" (a new popularity feed) or "admin".
	Reason string `json:"reason"`
	// AddedBytes is what the new manifests list on appliances whose old
	// manifests did not: what fill must download. PlacedBytes is their
	// total.
	AddedBytes  int64 `json:"added_bytes"`
	PlacedBytes int64 `json:"placed_bytes"`
	// Sites is the churn of each site (manifest cluster).
	Sites []SiteChurn `json:"sites"`
}

// SiteChurn is one site's share of a replan.
type SiteChurn struct {
	Site          string `json:"site"`
	AddedBytes    int64  `json:"added_bytes"`
	CapacityBytes int64  `json:"capacity_bytes"`
	// Share is AddedBytes / CapacityBytes; the churn bound caps it.
	Share float64 `json:"share"`
	// Capped says the bound held back files the ranking wanted: the
	// next check replans again.
	Capped bool `json:"capped,omitempty"`
}

// PlacementStatus is GET /v1/admin/placement: the replans so far and what
// popularity predicts.
type PlacementStatus struct {
	// ChurnBound is the share of a site's capacity one replan may add.
	ChurnBound float64 `json:"churn_bound"`
	// Replans counts every replan since start; Recent lists the last
	// ones, oldest first (the first plan, made at start, is not a replan).
	Replans int      `json:"replans"`
	Recent  []Replan `json:"recent"`
	// Top is, per home site, the files with the highest predicted demand.
	Top map[string][]FileDemand `json:"top"`
}

// FileDemand is a file's predicted demand at a site.
type FileDemand struct {
	Path        string  `json:"path"`
	BytesPerDay float64 `json:"bytes_per_day"`
	// Placed is how many of the site's appliances the current plan puts
	// it on.
	Placed int `json:"placed"`
}
