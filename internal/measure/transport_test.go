package measure

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func testTransportBatch(id string, now time.Time) *TransportBatch {
	rec := TransportRecord{
		SampleTime: now.Add(-time.Second), ClientPrefix: "198.51.100.0/24", File: "t0001/video.mp4",
		Experiment: "cc", Arm: "bbr", CongestionControl: "bbr", Reason: ReasonFinal, ConnAgeUs: 2_000_000,
		MinRTTUs: 20_000, SmoothedRTTUs: 35_000, RTTVarUs: 4_000, CwndSegments: 40, UnackedSegments: 3,
		LostSegments: 1, RetransmittedSegments: 5, DataSegmentsOut: 900, BytesSent: 1_300_000,
		BytesRetrans: 7_000, BytesAcked: 1_290_000, DeliveryRateBps: 48_000_000, PacingRateBps: 60_000_000,
		BusyUs: 1_500_000, RwndLimitedUs: 100_000, SndbufLimitedUs: 10_000, BBRBwBps: 50_000_000, BBRMinRTTUs: 20_000,
	}
	periodic := rec
	periodic.Reason, periodic.ConnAgeUs = ReasonPeriodic, 1_000_000
	return &TransportBatch{ID: id, Appliance: "oca1", Site: "site-a", SentTime: now, Records: []TransportRecord{periodic, rec}}
}

// TestTransportIngest: a batch goes through the WAL into the transport
// table with the agreed column values, once even when sent twice.
func TestTransportIngest(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 6, 3, 30, 0, 0, time.UTC)
	in, err := Open(dir, nil, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	b := testTransportBatch("batch-000000000001", now)
	res, err := in.IngestTransport(context.Background(), b)
	if err != nil || res.Duplicate || res.Pulses != 2 {
		t.Fatalf("IngestTransport = %+v, %v; want 2 records stored", res, err)
	}
	res, err = in.IngestTransport(context.Background(), b)
	if err != nil || !res.Duplicate {
		t.Fatalf("IngestTransport again = %+v, %v; want a duplicate", res, err)
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	rows := readTable[TransportRow](t, dir, "transport")
	if len(rows) != 2 {
		t.Fatalf("transport rows = %d, want 2", len(rows))
	}
	want := TransportRow{ReportID: b.ID, ReceivedTime: now.UnixMicro(), SampleTime: now.Add(-time.Second).UnixMicro(),
		Appliance: "oca1", Site: "site-a", ClientPrefix: "198.51.100.0/24", File: "t0001/video.mp4",
		Experiment: "cc", Arm: "bbr", CongestionControl: "bbr", Reason: "final", ConnAgeUs: 2_000_000,
		MinRTTUs: 20_000, SmoothedRTTUs: 35_000, RTTVarUs: 4_000, CwndSegments: 40, UnackedSegments: 3,
		LostSegments: 1, RetransmittedSegments: 5, DataSegmentsOut: 900, BytesSent: 1_300_000,
		BytesRetrans: 7_000, BytesAcked: 1_290_000, DeliveryRateBps: 48_000_000, PacingRateBps: 60_000_000,
		BusyUs: 1_500_000, RwndLimitedUs: 100_000, SndbufLimitedUs: 10_000, BBRBwBps: 50_000_000, BBRMinRTTUs: 20_000}
	if diff := cmp.Diff(want, rows[1]); diff != "" {
		t.Errorf("final row (-want +got):\n%s", diff)
	}
	if p := readTable[PulseRow](t, dir, "pulses"); len(p) != 0 {
		t.Errorf("a transport batch wrote %d pulse rows", len(p))
	}
	var sb strings.Builder
	n, err := Export(&sb, dir, "transport", "jsonl")
	if err != nil || n != 2 || !strings.Contains(sb.String(), `"congestion_control":"bbr"`) {
		t.Errorf("Export(transport) = %d, %v:\n%s", n, err, sb.String())
	}
}

// TestTransportBadBatch: impossible values are refused naming the field.
func TestTransportBadBatch(t *testing.T) {
	now := time.Date(2026, 12, 6, 3, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		edit  func(b *TransportBatch)
		field string
	}{
		{"negative rtt", func(b *TransportBatch) { b.Records[1].MinRTTUs = -5 }, "transport.records[1].min_rtt_us"},
		{"more lost than sent", func(b *TransportBatch) {
			b.Records[0].LostSegments, b.Records[0].UnackedSegments, b.Records[0].DataSegmentsOut = 50, 60, 10
			b.Records[0].RetransmittedSegments = 0
		}, "transport.records[0].lost_segments"},
		{"retransmits above sent and the SYN-ACK's retries", func(b *TransportBatch) { b.Records[0].RetransmittedSegments = 900 + 256 }, "retransmitted_segments"},
		{"lost above unacked", func(b *TransportBatch) { b.Records[0].LostSegments = 4 }, "lost_segments"},
		{"bad prefix", func(b *TransportBatch) { b.Records[0].ClientPrefix = "198.51.100.7/24" }, "transport.records[0].client_prefix"},
		{"bad reason", func(b *TransportBatch) { b.Records[0].Reason = "later" }, "transport.records[0].reason"},
		{"no cc", func(b *TransportBatch) { b.Records[0].CongestionControl = "" }, "transport.records[0].congestion_control"},
		{"future sample", func(b *TransportBatch) { b.Records[0].SampleTime = now.Add(time.Hour) }, "transport.records[0].sample_time"},
		{"no appliance", func(b *TransportBatch) { b.Appliance = "" }, "transport.appliance"},
		{"no records", func(b *TransportBatch) { b.Records = nil }, "transport.records"},
		{"short id", func(b *TransportBatch) { b.ID = "x" }, "id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := Open(t.TempDir(), nil, Options{Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			b := testTransportBatch("batch-000000000002", now)
			tc.edit(b)
			_, err = in.IngestTransport(context.Background(), b)
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalidReport) && !errors.Is(err, ErrFutureDated) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("IngestTransport = %v, want a field error naming %s", err, tc.field)
			}
		})
	}
}

// TestTransportSynAckRetransmit: a connection whose SYN-ACK was
// retransmitted reports that retransmission before any data segment;
// the lossy lab's appliances sent such a record and the control plane
// refused its whole batch of 38.
func TestTransportSynAckRetransmit(t *testing.T) {
	now := time.Date(2026, 12, 6, 3, 30, 0, 0, time.UTC)
	in, err := Open(t.TempDir(), nil, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	b := testTransportBatch("batch-000000000003", now)
	r := &b.Records[0]
	r.RetransmittedSegments, r.DataSegmentsOut, r.LostSegments, r.UnackedSegments = 1, 0, 0, 0
	r.BytesSent, r.BytesRetrans, r.BytesAcked = 0, 0, 0
	if res, err := in.IngestTransport(context.Background(), b); err != nil || res.Pulses != len(b.Records) {
		t.Fatalf("IngestTransport = %+v, %v; want the batch stored", res, err)
	}
}

// FuzzTransportBatch: the decoder and validation never panic, and a
// batch they accept round-trips through JSON to an equal batch that is
// accepted again.
func FuzzTransportBatch(f *testing.F) {
	now := time.Date(2026, 12, 6, 3, 30, 0, 0, time.UTC)
	good, _ := json.Marshal(testTransportBatch("batch-000000000003", now))
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"batch-000000000003","appliance":"a","sent_time":"2026-12-06T03:30:00Z","records":[{"sample_time":"2026-12-06T03:29:00Z","client_prefix":"::/48","congestion_control":"cubic","reason":"final","min_rtt_us":-1}]}`))
	f.Add([]byte(`{"id":"batch-000000000003","appliance":"a","sent_time":"2026-12-06T03:30:00Z","records":[{"sample_time":"2026-12-06T03:29:00Z","client_prefix":"10.0.0.0/8","congestion_control":"cubic","reason":"final","lost_segments":4294967296,"unacked_segments":4294967296,"data_segments_out":4294967296}]}`))
	f.Add([]byte(`{"records":[]} {}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := DecodeTransportBatch(body)
		if err != nil {
			return
		}
		if b.validate("transport", now) != nil {
			return
		}
		again, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("Marshal(accepted batch) = %v", err)
		}
		b2, err := DecodeTransportBatch(again)
		if err != nil {
			t.Fatalf("DecodeTransportBatch(Marshal(accepted)) = %v", err)
		}
		if err := b2.validate("transport", now); err != nil {
			t.Fatalf("re-decoded batch refused: %v", err)
		}
		if n := len(b2.rows(0, nil)); n != len(b.Records) {
			t.Fatalf("rows = %d, want %d", n, len(b.Records))
		}
	})
}
