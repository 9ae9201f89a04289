package api

// Load is an appliance's serving load over the last heartbeat interval.
type Load struct {
	BitsPerSec     float64 `json:"bits_per_sec"`
	RequestsPerSec float64 `json:"requests_per_sec"`
	// Connections is the number of content requests in progress (active
	// transfers); drained is reached when it falls below a threshold.
	Connections int `json:"connections"`
	// CPU is the process's CPU use as a share of all cores, 0..1.
	CPU float64 `json:"cpu"`
	// CapacityBitsPerSec is what the appliance can serve (0: unknown,
	// CPU alone decides utilization).
	CapacityBitsPerSec float64 `json:"capacity_bits_per_sec,omitempty"`
}

// Disk is an appliance's storage.
type Disk struct {
	CapacityBytes int64 `json:"capacity_bytes"`
	UsedBytes     int64 `json:"used_bytes"`
	Disks         int   `json:"disks"`
	FailedDisks   int   `json:"failed_disks"`
}

// HeartbeatFill is how far the appliance is with its manifest.
type HeartbeatFill struct {
	FilesWanted   int   `json:"files_wanted"`
	FilesHeld     int   `json:"files_held"`
	BytesFilled   int64 `json:"bytes_filled"`
	FilesRejected int   `json:"files_rejected"`
}

// HeartbeatBatch carries queued heartbeat records after an outage,
// oldest first (POST /v1/heartbeats).
type HeartbeatBatch struct {
	Heartbeats []Heartbeat `json:"heartbeats"`
}

// HeartbeatBatchReply says how many records were recorded.
type HeartbeatBatchReply struct {
	Recorded int `json:"recorded"`
}
