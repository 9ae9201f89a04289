// Package measure provides measurement records (probe reports uploaded by
// clients), their validation, and their lossless ingest: a write-ahead log
// with group commit, deduplication by report id, compaction into
// hive-partitioned Parquet files any analytics engine reads, and live
// per-prefix-group, per-site quantile sketches.
package measure

import "time"

// Pulse types a report may carry.
const (
	TypeTCPConnect   = "tcp_connect"
	TypeTLSHandshake = "tls_handshake"
	TypeHTTPTTFB     = "http_ttfb"
	TypeThroughput   = "throughput"
	// TypeDNS resolves a name unique to the pulse (p-<nonce>.<appliance
	// name>) through the client's resolver, then fetches one byte from
	// the address it resolved to: dns_ms, then connect_ms, tls_ms and
	// ttfb_ms over that family. The control plane joins it with the
	// authoritative server's log by nonce (which resolver asked).
	TypeDNS = "dns"
)

// Address families a pulse may name.
const (
	FamilyIPv4 = "ipv4"
	FamilyIPv6 = "ipv6"
)

// Pulse outcomes.
const (
	StatusOK      = "ok"
	StatusTimeout = "timeout"
	StatusError   = "error"
)

// Report is one client's upload: the results of one recipe run. It is the
// wire format of POST /v1/reports (JSON, unknown fields rejected).
type Report struct {
	// ID is client-generated and unique per run (16+ random hex
	// characters); it is the deduplication key, so a client that retries
	// an upload whose answer it lost sends the same ID again.
	ID     string `json:"id"`
	Recipe string `json:"recipe"` // recipe id
	// Context is opaque context copied from the recipe, stored verbatim.
	Context map[string]string `json:"context,omitempty"`
	// ClientTime is when the run started, by the client's clock.
	ClientTime time.Time `json:"client_time"`
	Pulses     []Pulse   `json:"pulses"`
	// Player is an optional playback session record.
	Player *QoE `json:"qoe,omitempty"`
	// Transport is set instead of Pulses and Player on the reports the
	// control plane makes of appliances' transport batches (POST
	// /v1/transport); the public POST /v1/reports refuses it.
	Transport *TransportBatch `json:"transport,omitempty"`
}

// Pulse is one timed probe of one target.
type Pulse struct {
	Target    string    `json:"target"`    // target id from the recipe
	Appliance string    `json:"appliance"` // serving appliance id (from the recipe or a response header)
	Site      string    `json:"site,omitempty"`
	Type      string    `json:"type"` // TypeTCPConnect, TypeTLSHandshake, TypeHTTPTTFB or TypeThroughput
	Seq       int       `json:"seq"`  // pulse number within the run
	Start     time.Time `json:"start"`

	ConnectMs     float64 `json:"connect_ms,omitempty"`
	TLSMs         float64 `json:"tls_ms,omitempty"`
	TTFBMs        float64 `json:"ttfb_ms,omitempty"`
	DurationMs    float64 `json:"duration_ms"`
	Bytes         int64   `json:"bytes,omitempty"`
	ThroughputBps float64 `json:"throughput_bps,omitempty"`

	// Family is the address family the pulse connected over (FamilyIPv4,
	// FamilyIPv6), empty when unknown.
	Family string `json:"family,omitempty"`
	// DNSMs and Nonce are set by dns pulses: the resolution time and the
	// nonce of the probe name resolved (8-32 lower-case letters, digits).
	DNSMs float64 `json:"dns_ms,omitempty"`
	Nonce string  `json:"nonce,omitempty"`

	Status     string `json:"status"` // StatusOK, StatusTimeout or StatusError
	HTTPStatus int    `json:"http_status,omitempty"`
	Error      string `json:"error,omitempty"`
}

// QoE is a playback session record: what the viewer experienced.
type QoE struct {
	StartupMs      float64  `json:"startup_ms"`
	Rebuffers      int      `json:"rebuffers"`
	RebufferMs     float64  `json:"rebuffer_ms"`
	AvgBitrateKbps float64  `json:"avg_bitrate_kbps"`
	Switches       int      `json:"switches"`
	Failovers      int      `json:"failovers"`
	ServedBy       []string `json:"served_by,omitempty"` // appliance ids, in the order they served
	DurationMs     float64  `json:"duration_ms"`
}
