// Package api provides the wire types of the control plane's HTTP API,
// shared by the control plane and its clients (appliances, players,
// probes) so that neither side imports the other.
package api

import (
	"net/netip"
	"time"

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
	// (every verified file it serves, files being retired left out) is
	// sent only when the control plane's known generation differs, so
	// steady-state heartbeats stay small. null means "unchanged", [] "none"
	// (an appliance that retired its last file must say so).
	ContentGen  uint64   `json:"content_gen"`
	Held        []string `json:"held"`
	BytesServed int64    `json:"bytes_served"`
	// BGP is the state of each BGP session.
	BGP []BGPSession `json:"bgp,omitempty"`

	// State is the appliance's own view: "serving", "draining", or
	// "stale-control-plane (since RFC3339)" while it serves on its last
	// keys and content without reaching the control plane.
	State string `json:"state,omitempty"`
	// Load, Disk and Fill describe the appliance at SentAt.
	Load *Load `json:"load,omitempty"`
	Disk *Disk `json:"disk,omitempty"`
	// ManifestVersion is the manifest the appliance last applied.
	ManifestVersion string         `json:"manifest_version,omitempty"`
	Fill            *HeartbeatFill `json:"fill,omitempty"`
	Software        string         `json:"software,omitempty"`
	// Seq numbers heartbeats within an appliance process; SentAt is when
	// the record was made. A record that could not be delivered is queued
	// and sent later with Queued set, so counters are never lost.
	Seq    uint64    `json:"seq,omitempty"`
	SentAt time.Time `json:"sent_at,omitzero"`
	Queued bool      `json:"queued,omitempty"`
}

// BGPSession is one of an appliance's BGP sessions.
type BGPSession struct {
	Neighbor         string `json:"neighbor"`
	Family           string `json:"family"`
	State            string `json:"state"`
	PrefixesReceived int    `json:"prefixes_received"`
	PrefixesAccepted int    `json:"prefixes_accepted"`
}

// ApplianceStatus is one row of GET /v1/appliances.
type ApplianceStatus struct {
	ID       string    `json:"id"`
	Site     string    `json:"site"`
	State    string    `json:"state"`
	Files    int       `json:"files"`
	Prefixes int       `json:"prefixes"`
	LastBeat time.Time `json:"last_heartbeat,omitzero"`
	// Serving says whether steering sends new clients; Weight is the
	// share it sends (below 1 while overloaded); Reason explains a state
	// other than up; Unreachable is the active prober's timeout.
	Serving     bool    `json:"serving"`
	Weight      float64 `json:"weight"`
	Reason      string  `json:"reason,omitempty"`
	Unreachable bool    `json:"unreachable,omitempty"`
}

// FillSummary is GET /v1/admin/fill: fill and placement across the CDN.
type FillSummary struct {
	// BadCopies counts distinct (file, source) copies fill agents
	// rejected: each a source that served bytes failing verification.
	BadCopies int `json:"bad_copies"`
	// Misses are client bytes not served from the client's best local
	// site, by cause.
	Misses Misses `json:"misses"`
	// Progress is every appliance's last fill report.
	Progress []FillProgress `json:"progress"`
	// Manifests summarize the current plan per appliance.
	Manifests map[string]ManifestSummary `json:"manifests"`
}

// ManifestSummary is one appliance's manifest in brief.
type ManifestSummary struct {
	Version string `json:"version"`
	Files   int    `json:"files"`
	Bytes   int64  `json:"bytes"`
}

// FillStats is what an appliance's fill agent has done so far.
type FillStats struct {
	State   string `json:"state"`
	Detail  string `json:"detail,omitempty"`
	Pending int    `json:"pending"`
	// Bytes is every byte downloaded, from any tier.
	Bytes         int64 `json:"bytes"`
	PeerBytes     int64 `json:"peer_bytes"`
	TierBytes     int64 `json:"tier_bytes"`
	OriginBytes   int64 `json:"origin_bytes"`
	FilesVerified int   `json:"files_verified"`
	FilesRejected int   `json:"files_rejected"`
}

// ReportStats counts an appliance's heartbeat records queued while the
// control plane was unreachable and delivered after it came back.
type ReportStats struct {
	Queued    int64 `json:"reports_queued"`
	Delivered int64 `json:"reports_delivered"`
	Pending   int   `json:"reports_pending"`
	Dropped   int64 `json:"reports_dropped"`
}

// ApplianceRuntime is what an appliance says about itself at GET
// /v1/status: what it served, filled and reported, and its BGP sessions.
type ApplianceRuntime struct {
	ID string `json:"id"`
	// ControlPlane is "serving", or "stale-control-plane (since T)".
	ControlPlane string `json:"control_plane"`
	Draining     bool   `json:"draining"`
	// BytesServed counts every content byte, fill requests from other
	// appliances included; ClientBytes only clients'.
	BytesServed    int64        `json:"bytes_served"`
	ClientBytes    int64        `json:"client_bytes"`
	Requests       int64        `json:"requests"`
	Objects        int          `json:"objects"`
	Fill           FillStats    `json:"fill"`
	Reports        ReportStats  `json:"reports"`
	BGP            []BGPSession `json:"bgp,omitempty"`
	RoutedPrefixes int          `json:"routed_prefixes"`
}

// HeartbeatReply tells the appliance what the control plane knows.
type HeartbeatReply struct {
	KnownContentGen uint64 `json:"known_content_gen"`
	ManifestVersion string `json:"manifest_version"`
	// KeysVersion names the control plane's URL-signing key set; an
	// appliance holding another fetches GET /v1/keys.
	KeysVersion string `json:"keys_version,omitempty"`
}

// Manifest is the set of files an appliance should hold.
type Manifest struct {
	Appliance string         `json:"appliance"`
	Version   string         `json:"version"`
	Origin    string         `json:"origin"`
	Files     []content.File `json:"files"`
}

// MeasurementHeader marks requests made to measure (probes, speed tests)
// rather than to play: appliances serve them as usual but leave them out
// of demand, popularity and miss accounting.
const MeasurementHeader = "X-Ocdn-Measurement"

// MeasurementParam is the same mark as a query parameter
// (?ocdn_measurement=probe), for web pages: a custom header makes a
// browser send a CORS preflight first, whose connection the measured
// request then reuses, so the page would never see a connect time.
const MeasurementParam = "ocdn_measurement"

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

// FillPlan is the body of GET /v1/fill?appliance=ID: what the appliance
// should download now and from where, and when its site's fill window is.
type FillPlan struct {
	Appliance string `json:"appliance"`
	// Version is the manifest version the plan belongs to.
	Version string     `json:"version"`
	Window  FillWindow `json:"window"`
	// Files lists the manifest files the control plane does not know the
	// appliance to hold, most valuable first.
	Files []FillFile `json:"files"`
}

// FillWindow is a site's nightly fill window in the site's local time.
type FillWindow struct {
	// TimeZone is an IANA zone such as Europe/Amsterdam ("" = UTC).
	TimeZone string `json:"time_zone"`
	// StartHour and EndHour bound the window, [start, end) in local hours
	// 0-24; end < start wraps past midnight.
	StartHour int `json:"start_hour"`
	EndHour   int `json:"end_hour"`
}

// FillFile is one file to download and its ranked sources.
type FillFile struct {
	File content.File `json:"file"`
	// Urgent files are filled outside the window too, under the
	// appliance's out-of-cycle byte budget.
	Urgent bool `json:"urgent,omitempty"`
	// WaitSeconds > 0 says a closer source is expected soon (a peer or
	// another site is fetching the file): ask again after that long
	// instead of using the farther sources listed.
	WaitSeconds float64 `json:"wait_seconds,omitempty"`
	// Sources are best first: peers of the same cluster, then other
	// sites, then the origin.
	Sources []FillSource `json:"sources"`
}

// FillSource is one place a file can be downloaded from.
type FillSource struct {
	URL string `json:"url"`
	// Tier is "peer", "tier" or "origin".
	Tier      string `json:"tier"`
	Appliance string `json:"appliance,omitempty"`
	Site      string `json:"site,omitempty"`
}

// Fill source tiers.
const (
	TierPeer   = "peer"
	TierSite   = "tier"
	TierOrigin = "origin"
)

// FillProgress is what an appliance's fill agent reports (POST
// /v1/fill/progress): counters since it started and copies it rejected.
type FillProgress struct {
	Appliance string `json:"appliance"`
	// State is "idle", "filling", "waiting" (outside the window), "full"
	// (the store is out of space) or "error".
	State         string `json:"state"`
	Detail        string `json:"detail,omitempty"`
	Pending       int    `json:"pending"`
	PeerBytes     int64  `json:"peer_bytes"`
	TierBytes     int64  `json:"tier_bytes"`
	OriginBytes   int64  `json:"origin_bytes"`
	FilesVerified int    `json:"files_verified"`
	FilesRejected int    `json:"files_rejected"`
	// Bad lists sources that served bytes that failed verification.
	Bad []BadCopy `json:"bad,omitempty"`
}

// BadCopy is a source that served a file's bytes wrongly.
type BadCopy struct {
	Path      string `json:"path"`
	Appliance string `json:"appliance,omitempty"`
	Tier      string `json:"tier"`
}

// DemandReport is what an appliance served since its last report (POST
// /v1/demand): bytes per file, and bytes per client /24 (/48) and file so
// the control plane can classify misses.
type DemandReport struct {
	Appliance string           `json:"appliance"`
	Files     map[string]int64 `json:"files"`
	Clients   []ClientDemand   `json:"clients,omitempty"`
}

// ClientDemand is bytes served to one client prefix for one file.
type ClientDemand struct {
	Client string `json:"client"` // an address inside the client prefix
	Path   string `json:"path"`
	Bytes  int64  `json:"bytes"`
}

// Misses classifies bytes not served from the client's best local site.
type Misses struct {
	// Local is bytes served from the client's best local site.
	Local   int64 `json:"local"`
	Content int64 `json:"content"`
	Health  int64 `json:"health"`
	Other   int64 `json:"other"`
	// ContentByHome is Content by the clients' home site, then title:
	// which titles each site lacked for its own clients.
	ContentByHome map[string]map[string]int64 `json:"content_by_home,omitempty"`
}
