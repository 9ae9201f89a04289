package tcpinfo

import (
	"fmt"
	"time"
)

// Record is one sample of a connection's transport state as the sending
// side sees it. Counters are cumulative since the connection opened.
type Record struct {
	// CongestionControl is the algorithm in force ("bbr", "cubic", …).
	CongestionControl string `json:"congestion_control"`
	// State is the kernel's TCP state (1 established, 7 closed, …) and
	// CAState its congestion-avoidance state (0 open, 1 disorder,
	// 2 CWR, 3 recovery, 4 loss).
	State   uint8 `json:"state"`
	CAState uint8 `json:"ca_state"`
	// MSS is the sender's maximum segment size in bytes.
	MSS uint32 `json:"mss_bytes"`

	// MinRTT is the smallest RTT seen in the kernel's window (5 minutes
	// by default); SmoothedRTT and RTTVar are the RFC 6298 estimators.
	MinRTT      time.Duration `json:"min_rtt"`
	SmoothedRTT time.Duration `json:"smoothed_rtt"`
	RTTVar      time.Duration `json:"rtt_var"`

	// Cwnd and Ssthresh are in segments; Unacked is segments in flight.
	Cwnd     uint32 `json:"cwnd_segments"`
	Ssthresh uint32 `json:"ssthresh_segments"`
	Unacked  uint32 `json:"unacked_segments"`
	// Lost is segments currently marked lost and not yet repaired (a
	// gauge, not a total); Retransmits is every segment retransmitted
	// so far (tcpi_total_retrans), and DataSegsOut every data segment
	// sent, retransmissions included.
	Lost        uint32 `json:"lost_segments"`
	Retransmits uint32 `json:"retransmitted_segments"`
	DataSegsOut uint32 `json:"data_segments_out"`
	// SpuriousRetransmits is duplicate SACKs received: retransmissions
	// the receiver did not need (reordering or jitter, not loss).
	SpuriousRetransmits uint32 `json:"dsack_dups"`
	// RTOs is how many retransmission timeouts fired (Linux 6.7+).
	RTOs uint16 `json:"rtos"`

	// BytesSent includes retransmissions; BytesRetrans is their share.
	BytesSent     uint64 `json:"bytes_sent"`
	BytesRetrans  uint64 `json:"bytes_retrans"`
	BytesAcked    uint64 `json:"bytes_acked"`
	BytesReceived uint64 `json:"bytes_received"`

	// DeliveryRate is the most recent delivery-rate sample and
	// PacingRate the rate the stack paces at, both in bytes per second.
	// AppLimited says the delivery sample was limited by the sender
	// having nothing to send, so it underestimates the path.
	DeliveryRate uint64 `json:"delivery_rate_bytes_per_second"`
	PacingRate   uint64 `json:"pacing_rate_bytes_per_second"`
	AppLimited   bool   `json:"app_limited"`

	// BusyTime is how long the connection has had data to send;
	// RwndLimited and SndbufLimited are the parts of it spent waiting on
	// the receiver's window and on the local send buffer.
	BusyTime      time.Duration `json:"busy_time"`
	RwndLimited   time.Duration `json:"rwnd_limited"`
	SndbufLimited time.Duration `json:"sndbuf_limited"`

	// BBR holds BBR's model when CongestionControl is "bbr", and is
	// zero otherwise.
	BBR BBRInfo `json:"bbr,omitzero"`

	// InfoLen is how many bytes of struct tcp_info the kernel filled.
	InfoLen int `json:"-"`
}

// BBRInfo is BBR's path model (TCP_CC_INFO).
type BBRInfo struct {
	// Bandwidth is BBR's bottleneck bandwidth estimate in bytes per
	// second; MinRTT its round-trip propagation estimate.
	Bandwidth uint64        `json:"bandwidth_bytes_per_second"`
	MinRTT    time.Duration `json:"min_rtt"`
	// PacingGain and CwndGain are the current gains (1.0 = the model's
	// rate or BDP; startup uses about 2.89).
	PacingGain float64 `json:"pacing_gain"`
	CwndGain   float64 `json:"cwnd_gain"`
}

// RetransmitRate is retransmitted over sent data segments, 0 when none
// were sent.
func (r *Record) RetransmitRate() float64 {
	if r.DataSegsOut == 0 {
		return 0
	}
	return float64(r.Retransmits) / float64(r.DataSegsOut)
}

// RTTInflation is how far queues have pushed the smoothed RTT above the
// path's minimum.
func (r *Record) RTTInflation() time.Duration { return r.SmoothedRTT - r.MinRTT }

// maxSynAckRetries is the largest net.ipv4.tcp_synack_retries (a u8).
const maxSynAckRetries = 255

// Validate rejects records no kernel can produce, naming the field: a
// negative duration, more lost than in flight, more retransmitted than
// sent (data segments and the SYN-ACK's retries), limited time exceeding
// busy time. Records from outside (a transport batch) go
// through it before they are stored.
func (r *Record) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"min_rtt", r.MinRTT}, {"smoothed_rtt", r.SmoothedRTT}, {"rtt_var", r.RTTVar},
		{"busy_time", r.BusyTime}, {"rwnd_limited", r.RwndLimited}, {"sndbuf_limited", r.SndbufLimited},
	} {
		if d.v < 0 {
			return fmt.Errorf("tcpinfo: %s is negative (%v)", d.name, d.v)
		}
	}
	// tcpi_total_retrans starts at the SYN-ACK's retransmissions (the
	// kernel copies the request socket's num_retrans into an accepted
	// connection), which carried no data: a connection whose SYN-ACK was
	// lost once reports a retransmission before its first data segment
	// (a lossy lab link showed retransmitted 1, data_segments_out 0).
	// tcp_synack_retries is at most maxSynAckRetries.
	if r.Retransmits > r.DataSegsOut+maxSynAckRetries {
		return fmt.Errorf("tcpinfo: retransmitted_segments %d exceeds data_segments_out %d by more than the SYN-ACK's %d retries", r.Retransmits, r.DataSegsOut, maxSynAckRetries)
	}
	if r.Lost > r.Unacked {
		return fmt.Errorf("tcpinfo: lost_segments %d exceeds unacked_segments %d (lost segments are a subset of those in flight)", r.Lost, r.Unacked)
	}
	if r.BytesRetrans > r.BytesSent {
		return fmt.Errorf("tcpinfo: bytes_retrans %d exceeds bytes_sent %d", r.BytesRetrans, r.BytesSent)
	}
	// The peer's acknowledgment of our FIN advances snd_una by one
	// sequence number that carried no data byte.
	if r.BytesAcked > r.BytesSent+1 {
		return fmt.Errorf("tcpinfo: bytes_acked %d exceeds bytes_sent %d", r.BytesAcked, r.BytesSent)
	}
	if r.RwndLimited+r.SndbufLimited > r.BusyTime {
		return fmt.Errorf("tcpinfo: rwnd_limited %v plus sndbuf_limited %v exceeds busy_time %v (both are parts of it)", r.RwndLimited, r.SndbufLimited, r.BusyTime)
	}
	if b := r.BBR; b != (BBRInfo{}) {
		if b.MinRTT < 0 {
			return fmt.Errorf("tcpinfo: bbr.min_rtt is negative (%v)", b.MinRTT)
		}
		if b.PacingGain < 0 || b.CwndGain < 0 {
			return fmt.Errorf("tcpinfo: bbr gains must not be negative (pacing_gain %v, cwnd_gain %v)", b.PacingGain, b.CwndGain)
		}
	}
	return nil
}
