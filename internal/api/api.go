// Package api provides the wire types of the control plane's HTTP API,
// shared by the control plane and its clients (appliances, players,
// probes) so that neither side imports the other.
package api

import (
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/steer"
)

// SteerResponse is the body of GET /v1/steer.
type SteerResponse struct {
	Client string      `json:"client"`
	Files  []FileSteer `json:"files"`
}

// FileSteer is the ranked list for one file.
type FileSteer struct {
	Path        string             `json:"path"`
	URLs        []steer.Choice     `json:"urls"`
	Explanation []steer.Considered `json:"explanation,omitempty"`
}

// Heartbeat is what an appliance reports every interval.
type Heartbeat struct {
	Appliance string `json:"appliance"`
	Draining  bool   `json:"draining"`
	// ContentGen changes whenever the appliance's stored set changes; Held
	// (every verified file) is sent only when the control plane's known
	// generation differs, so steady-state heartbeats stay small.
	ContentGen  uint64   `json:"content_gen"`
	Held        []string `json:"held,omitempty"`
	BytesServed int64    `json:"bytes_served"`
}

// HeartbeatReply tells the appliance what the control plane knows.
type HeartbeatReply struct {
	KnownContentGen uint64 `json:"known_content_gen"`
	ManifestVersion string `json:"manifest_version"`
}

// Manifest is the set of files an appliance should hold.
type Manifest struct {
	Appliance string         `json:"appliance"`
	Version   string         `json:"version"`
	Origin    string         `json:"origin"`
	Files     []content.File `json:"files"`
}
