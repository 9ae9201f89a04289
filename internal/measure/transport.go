package measure

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/ocdn/ocdn/internal/tcpinfo"
)

// TransportRow is one row of DIR/transport: one TCP_INFO sample of one
// appliance connection (tcpinfo.Record) with what the appliance knew about
// it. Times are UTC microseconds (Parquet TIMESTAMP(MICROS, UTC));
// durations are microseconds and rates bits per second. The partition
// columns date and hour (of received_time) are in the directory names.
type TransportRow struct {
	ReportID          string `parquet:"report_id"`
	ReceivedTime      int64  `parquet:"received_time,timestamp(microsecond)"`
	SampleTime        int64  `parquet:"sample_time,timestamp(microsecond)"`
	Appliance         string `parquet:"appliance,dict"`
	Site              string `parquet:"site,dict"`
	ClientPrefix      string `parquet:"client_prefix,dict"` // CIDR: the client's /24 or /48
	File              string `parquet:"file,dict"`          // path of the last request on the connection
	Experiment        string `parquet:"experiment,dict"`
	Arm               string `parquet:"arm,dict"`
	CongestionControl string `parquet:"congestion_control,dict"` // what the socket ran
	Reason            string `parquet:"reason,dict"`             // "periodic" or "final"
	ConnAgeUs         int64  `parquet:"conn_age_us"`

	MinRTTUs      int64 `parquet:"min_rtt_us"`
	SmoothedRTTUs int64 `parquet:"smoothed_rtt_us"`
	RTTVarUs      int64 `parquet:"rtt_var_us"`

	CwndSegments          int64 `parquet:"cwnd_segments"`
	UnackedSegments       int64 `parquet:"unacked_segments"`
	LostSegments          int64 `parquet:"lost_segments"`
	RetransmittedSegments int64 `parquet:"retransmitted_segments"`
	DataSegmentsOut       int64 `parquet:"data_segments_out"`

	BytesSent    int64 `parquet:"bytes_sent"`
	BytesRetrans int64 `parquet:"bytes_retrans"`
	BytesAcked   int64 `parquet:"bytes_acked"`

	DeliveryRateBps int64 `parquet:"delivery_rate_bps"` // bits per second
	PacingRateBps   int64 `parquet:"pacing_rate_bps"`   // bits per second

	BusyUs          int64 `parquet:"busy_us"`
	RwndLimitedUs   int64 `parquet:"rwnd_limited_us"`
	SndbufLimitedUs int64 `parquet:"sndbuf_limited_us"`

	BBRBwBps    int64 `parquet:"bbr_bw_bps"` // bits per second; 0 unless bbr
	BBRMinRTTUs int64 `parquet:"bbr_min_rtt_us"`
}

// TransportBatch is an appliance's upload of transport records, the body
// of the control plane's POST /v1/transport (JSON, unknown fields
// rejected). It takes the probe reports' exactly-once path: the appliance
// spools the batch under its ID and sends the same ID again until it is
// acknowledged, and the ingester stores an ID once.
type TransportBatch struct {
	// ID is unique per batch (16 to 64 letters, digits, '-' or '_').
	ID        string `json:"id"`
	Appliance string `json:"appliance"`
	// Site is the appliance's site; the control plane overwrites it with
	// its inventory's.
	Site     string            `json:"site,omitempty"`
	SentTime time.Time         `json:"sent_time"`
	Records  []TransportRecord `json:"records"`
}

// MaxTransportRecords bounds one batch.
const MaxTransportRecords = 5000

// Transport record reasons.
const (
	ReasonPeriodic = "periodic"
	ReasonFinal    = "final"
)

// TransportRecord is one sample on the wire: a TransportRow without what
// the batch and the server add. Units are in the names (microseconds,
// segments, bytes, bits per second).
type TransportRecord struct {
	SampleTime        time.Time `json:"sample_time"`
	ClientPrefix      string    `json:"client_prefix"`
	File              string    `json:"file,omitempty"`
	Experiment        string    `json:"experiment,omitempty"`
	Arm               string    `json:"arm,omitempty"`
	CongestionControl string    `json:"congestion_control"`
	Reason            string    `json:"reason"`
	ConnAgeUs         int64     `json:"conn_age_us"`

	MinRTTUs      int64 `json:"min_rtt_us"`
	SmoothedRTTUs int64 `json:"smoothed_rtt_us"`
	RTTVarUs      int64 `json:"rtt_var_us"`

	CwndSegments          int64 `json:"cwnd_segments"`
	UnackedSegments       int64 `json:"unacked_segments"`
	LostSegments          int64 `json:"lost_segments"`
	RetransmittedSegments int64 `json:"retransmitted_segments"`
	DataSegmentsOut       int64 `json:"data_segments_out"`

	BytesSent    int64 `json:"bytes_sent"`
	BytesRetrans int64 `json:"bytes_retrans"`
	BytesAcked   int64 `json:"bytes_acked"`

	DeliveryRateBps int64 `json:"delivery_rate_bps"`
	PacingRateBps   int64 `json:"pacing_rate_bps"`

	BusyUs          int64 `json:"busy_us"`
	RwndLimitedUs   int64 `json:"rwnd_limited_us"`
	SndbufLimitedUs int64 `json:"sndbuf_limited_us"`

	BBRBwBps    int64 `json:"bbr_bw_bps,omitempty"`
	BBRMinRTTUs int64 `json:"bbr_min_rtt_us,omitempty"`
}

// TransportRecordOf converts a sample to its wire form; the caller fills
// in what the connection knew (prefix, file, arm, reason, age, time).
func TransportRecordOf(r *tcpinfo.Record) TransportRecord {
	us := func(d time.Duration) int64 { return d.Microseconds() }
	sat := func(v uint64) int64 { return int64(min(v, math.MaxInt64)) }
	bits := func(bytesPerSec uint64) int64 { return sat(min(bytesPerSec, math.MaxInt64/8) * 8) }
	return TransportRecord{
		CongestionControl: r.CongestionControl,
		MinRTTUs:          us(r.MinRTT), SmoothedRTTUs: us(r.SmoothedRTT), RTTVarUs: us(r.RTTVar),
		CwndSegments: int64(r.Cwnd), UnackedSegments: int64(r.Unacked), LostSegments: int64(r.Lost),
		RetransmittedSegments: int64(r.Retransmits), DataSegmentsOut: int64(r.DataSegsOut),
		BytesSent: sat(r.BytesSent), BytesRetrans: sat(r.BytesRetrans), BytesAcked: sat(r.BytesAcked),
		DeliveryRateBps: bits(r.DeliveryRate), PacingRateBps: bits(r.PacingRate),
		BusyUs: us(r.BusyTime), RwndLimitedUs: us(r.RwndLimited), SndbufLimitedUs: us(r.SndbufLimited),
		BBRBwBps: bits(r.BBR.Bandwidth), BBRMinRTTUs: us(r.BBR.MinRTT),
	}
}

// tcpinfo is the record back as tcpinfo.Record, for its consistency
// checks. Negative counters were refused before, so the conversions hold.
func (t *TransportRecord) tcpinfo() tcpinfo.Record {
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	return tcpinfo.Record{
		CongestionControl: t.CongestionControl,
		MinRTT:            us(t.MinRTTUs), SmoothedRTT: us(t.SmoothedRTTUs), RTTVar: us(t.RTTVarUs),
		Cwnd: uint32(t.CwndSegments), Unacked: uint32(t.UnackedSegments), Lost: uint32(t.LostSegments),
		Retransmits: uint32(t.RetransmittedSegments), DataSegsOut: uint32(t.DataSegmentsOut),
		BytesSent: uint64(t.BytesSent), BytesRetrans: uint64(t.BytesRetrans), BytesAcked: uint64(t.BytesAcked),
		BusyTime: us(t.BusyUs), RwndLimited: us(t.RwndLimitedUs), SndbufLimited: us(t.SndbufLimitedUs),
		BBR: tcpinfo.BBRInfo{Bandwidth: uint64(t.BBRBwBps) / 8, MinRTT: us(t.BBRMinRTTUs)},
	}
}

func (b *TransportBatch) validate(at string, now time.Time) error {
	if err := checkString(at+".appliance", b.Appliance, true); err != nil {
		return err
	}
	if err := checkString(at+".site", b.Site, false); err != nil {
		return err
	}
	if err := checkTime(at+".sent_time", b.SentTime, now); err != nil {
		return err
	}
	if n := len(b.Records); n == 0 || n > MaxTransportRecords {
		return invalid(at+".records", "%d records, want 1 to %d", n, MaxTransportRecords)
	}
	for i := range b.Records {
		if err := b.Records[i].validate(fmt.Sprintf("%s.records[%d]", at, i), now); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks one record as the control plane's ingest does (its
// fields named "record.…"), so that a sender can leave out a record the
// ingest would refuse rather than lose the whole batch with it.
func (t *TransportRecord) Validate(now time.Time) error { return t.validate("record", now) }

func (t *TransportRecord) validate(at string, now time.Time) error {
	if err := checkTime(at+".sample_time", t.SampleTime, now); err != nil {
		return err
	}
	p, err := netip.ParsePrefix(t.ClientPrefix)
	if err != nil || p != p.Masked() || p.Addr().Is4In6() {
		return invalid(at+".client_prefix", "%q is not a masked CIDR prefix", clip(t.ClientPrefix))
	}
	for _, f := range []struct{ name, v string }{{"file", t.File}, {"experiment", t.Experiment}, {"arm", t.Arm}} {
		if err := checkString(at+"."+f.name, f.v, false); err != nil {
			return err
		}
	}
	if err := checkString(at+".congestion_control", t.CongestionControl, true); err != nil {
		return err
	}
	if t.Reason != ReasonPeriodic && t.Reason != ReasonFinal {
		return invalid(at+".reason", "%q is not %s or %s", clip(t.Reason), ReasonPeriodic, ReasonFinal)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"conn_age_us", t.ConnAgeUs}, {"min_rtt_us", t.MinRTTUs}, {"smoothed_rtt_us", t.SmoothedRTTUs}, {"rtt_var_us", t.RTTVarUs},
		{"cwnd_segments", t.CwndSegments}, {"unacked_segments", t.UnackedSegments}, {"lost_segments", t.LostSegments},
		{"retransmitted_segments", t.RetransmittedSegments}, {"data_segments_out", t.DataSegmentsOut},
		{"bytes_sent", t.BytesSent}, {"bytes_retrans", t.BytesRetrans}, {"bytes_acked", t.BytesAcked},
		{"delivery_rate_bps", t.DeliveryRateBps}, {"pacing_rate_bps", t.PacingRateBps},
		{"busy_us", t.BusyUs}, {"rwnd_limited_us", t.RwndLimitedUs}, {"sndbuf_limited_us", t.SndbufLimitedUs},
		{"bbr_bw_bps", t.BBRBwBps}, {"bbr_min_rtt_us", t.BBRMinRTTUs},
	} {
		if f.v < 0 {
			return invalid(at+"."+f.name, "%d is negative", f.v)
		}
	}
	// Segment counters are 32-bit in the kernel; durations above a day
	// of RTT are not a measurement.
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"cwnd_segments", t.CwndSegments}, {"unacked_segments", t.UnackedSegments}, {"lost_segments", t.LostSegments},
		{"retransmitted_segments", t.RetransmittedSegments}, {"data_segments_out", t.DataSegmentsOut},
	} {
		if f.v > math.MaxUint32 {
			return invalid(at+"."+f.name, "%d exceeds the kernel's 32-bit counter", f.v)
		}
	}
	const day = int64(24 * time.Hour / time.Microsecond)
	for _, f := range []struct {
		name string
		v    int64
	}{{"min_rtt_us", t.MinRTTUs}, {"smoothed_rtt_us", t.SmoothedRTTUs}, {"rtt_var_us", t.RTTVarUs}, {"bbr_min_rtt_us", t.BBRMinRTTUs}} {
		if f.v > day {
			return invalid(at+"."+f.name, "%d µs is more than a day", f.v)
		}
	}
	if t.LostSegments > t.DataSegmentsOut {
		return invalid(at+".lost_segments", "%d exceeds data_segments_out %d: more lost than sent", t.LostSegments, t.DataSegmentsOut)
	}
	r := t.tcpinfo()
	if err := r.Validate(); err != nil {
		return invalid(at, "%v", strings.TrimPrefix(err.Error(), "tcpinfo: "))
	}
	return nil
}

// rows turns a stored transport batch into table rows.
func (b *TransportBatch) rows(rx int64, out []TransportRow) []TransportRow {
	for i := range b.Records {
		t := &b.Records[i]
		out = append(out, TransportRow{
			ReportID: b.ID, ReceivedTime: rx, SampleTime: micros(t.SampleTime),
			Appliance: b.Appliance, Site: b.Site, ClientPrefix: t.ClientPrefix, File: t.File,
			Experiment: t.Experiment, Arm: t.Arm, CongestionControl: t.CongestionControl, Reason: t.Reason,
			ConnAgeUs: t.ConnAgeUs, MinRTTUs: t.MinRTTUs, SmoothedRTTUs: t.SmoothedRTTUs, RTTVarUs: t.RTTVarUs,
			CwndSegments: t.CwndSegments, UnackedSegments: t.UnackedSegments, LostSegments: t.LostSegments,
			RetransmittedSegments: t.RetransmittedSegments, DataSegmentsOut: t.DataSegmentsOut,
			BytesSent: t.BytesSent, BytesRetrans: t.BytesRetrans, BytesAcked: t.BytesAcked,
			DeliveryRateBps: t.DeliveryRateBps, PacingRateBps: t.PacingRateBps,
			BusyUs: t.BusyUs, RwndLimitedUs: t.RwndLimitedUs, SndbufLimitedUs: t.SndbufLimitedUs,
			BBRBwBps: t.BBRBwBps, BBRMinRTTUs: t.BBRMinRTTUs,
		})
	}
	return out
}

// DecodeTransportBatch parses one JSON batch strictly: unknown fields and
// trailing data are errors. It does not validate; IngestTransport does.
func DecodeTransportBatch(body []byte) (*TransportBatch, error) {
	var b TransportBatch
	if err := decodeStrict(body, &b, "transport batch"); err != nil {
		return nil, err
	}
	return &b, nil
}

// IngestTransport stores an appliance's batch on the probe reports' path:
// validated (a *FieldError naming the field otherwise), deduplicated by
// its ID, durable in the WAL before it returns, compacted into
// DIR/transport. Result.Pulses counts the records stored.
func (in *Ingester) IngestTransport(ctx context.Context, b *TransportBatch) (Result, error) {
	rep := &Report{ID: b.ID, Recipe: TransportRecipe, ClientTime: b.SentTime, Transport: b}
	res, err := in.ingest(ctx, netip.IPv6Unspecified(), rep)
	in.m.reports.WithLabelValues(outcome(res, err)).Inc()
	if err == nil && !res.Duplicate {
		in.m.transport.Add(float64(len(b.Records)))
		res.Pulses = len(b.Records)
	}
	return res, err
}

// TransportRecipe is the recipe name of the reports IngestTransport makes.
const TransportRecipe = "transport"
