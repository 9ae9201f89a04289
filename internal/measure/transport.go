package measure

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
