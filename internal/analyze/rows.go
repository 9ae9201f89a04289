package analyze

import (
	"net/netip"
	"time"
)

// Metric is one of the pulse measurements the analysis reports on.
type Metric int

// The metrics, in report order.
const (
	Connect    Metric = iota // connect_ms
	TTFB                     // ttfb_ms
	Throughput               // throughput_bps
	numMetrics
)

// Metrics lists every Metric in report order.
var Metrics = []Metric{Connect, TTFB, Throughput}

// String is the Parquet column name of the metric.
func (m Metric) String() string {
	switch m {
	case Connect:
		return "connect_ms"
	case TTFB:
		return "ttfb_ms"
	case Throughput:
		return "throughput_bps"
	}
	return "metric?"
}

// Title is a human label with the unit.
func (m Metric) Title() string {
	switch m {
	case Connect:
		return "Connect time (ms)"
	case TTFB:
		return "Time to first byte (ms)"
	case Throughput:
		return "Throughput (Mbit/s)"
	}
	return "?"
}

// HigherIsBetter reports whether larger values are better (throughput).
func (m Metric) HigherIsBetter() bool { return m == Throughput }

// Row is one pulse, reduced to what the analyses use. Metric values are
// NaN when the pulse did not report them or did not succeed (status other
// than ok), so a failed pulse never contributes a timing.
type Row struct {
	ReportID    string
	Time        time.Time // received_time (server clock, UTC); hours and --since/--until use it
	ClientAddr  netip.Addr
	Prefix      string // client_prefix (/24 or /48)
	PrefixGroup string
	ASN         uint32
	Site        string
	Appliance   string
	Type        string
	Status      string
	Bytes       int64
	// SteeredSite is the report's steering decision: context
	// "steered_site", else the site of the pulses to context
	// "steered_appliance"; empty when the report says neither.
	SteeredSite string
	// Arm is the report's context "arm" (steering experiment), or empty;
	// AssignedArm the arm the control plane assigned the client (context
	// "assigned_arm", stored by the ingester), empty in older data.
	Arm, AssignedArm string
	// Exp is the experiment the report names (nil for none).
	Exp *ExperimentMeta
	// Issued is when the control plane issued the report's recipe
	// (context issued_at, server clock, UTC); zero in older data.
	Issued time.Time
	Values [numMetrics]float64
	// ISP is the uploader's ISP by the control plane's table.
	ISP string
	// Family is the pulse's address family ("ipv4", "ipv6"; empty in
	// older data). DNSMs is a dns pulse's resolution time (NaN when
	// absent or failed); Resolver, ResolverASN, ECS and Distance its join
	// with the authoritative server's log (empty when not joined).
	Family      string
	DNSMs       float64
	Resolver    string
	ResolverASN uint32
	ECS         string
	Distance    string
}

// Session is one playback record (the qoe table), reduced to what the
// experiment analysis uses.
type Session struct {
	ReportID    string
	Time        time.Time // received_time
	ClientAddr  netip.Addr
	Prefix      string
	PrefixGroup string
	// Site served the session first.
	Site             string
	Arm, AssignedArm string
	Exp              *ExperimentMeta
	StartupMs        float64
	// RebufferRatio is rebuffering time over playing time; BitrateKbps
	// the average bitrate played (what the path sustained, under ABR).
	RebufferRatio float64
	BitrateKbps   float64
}

// Value returns the row's value of m (NaN when absent).
func (r *Row) Value(m Metric) float64 { return r.Values[m] }

// Hour truncates t to its UTC hour.
func Hour(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }
