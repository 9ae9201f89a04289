// Package api provides the wire types of the control plane's HTTP API,
// shared by the control plane and its clients (appliances, players,
// probes) so that neither side imports the other.
package api

import (
	"net/netip"

	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/rib"
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
	// BGP is the state of each BGP session.
	BGP []BGPSession `json:"bgp,omitempty"`
}

// BGPSession is one of an appliance's BGP sessions.
type BGPSession struct {
	Neighbor         string `json:"neighbor"`
	Family           string `json:"family"`
	State            string `json:"state"`
	PrefixesReceived int    `json:"prefixes_received"`
	PrefixesAccepted int    `json:"prefixes_accepted"`
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

// RouteReport carries an appliance's BGP routes to the control plane: a
// full snapshot when a session establishes or the control plane asks for
// one, then deltas numbered by Seq within an Epoch (which changes when the
// appliance restarts). Duplicates are harmless; a gap makes the control
// plane answer Resync, and the appliance sends a snapshot.
type RouteReport struct {
	Appliance string         `json:"appliance"`
	Epoch     string         `json:"epoch"`
	Seq       uint64         `json:"seq"`
	Snapshot  bool           `json:"snapshot"`
	Announce  []rib.Route    `json:"announce,omitempty"`
	Withdraw  []netip.Prefix `json:"withdraw,omitempty"`
}

// RouteReportReply says what the control plane holds for the appliance.
type RouteReportReply struct {
	// Seq is the last report applied in Epoch.
	Epoch  string `json:"epoch"`
	Seq    uint64 `json:"seq"`
	Resync bool   `json:"resync"`
	// Prefixes is how many prefixes the control plane holds for the
	// appliance after applying the report.
	Prefixes int `json:"prefixes"`
}
