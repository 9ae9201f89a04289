// Package tcpinfo provides server-side transport telemetry: samples of the
// kernel's TCP_INFO (and, for BBR, TCP_CC_INFO) for one connection as a
// plain Record, a check that rejects impossible records from outside,
// per-connection congestion control (TCP_CONGESTION) refused by name when
// the kernel lacks it, and a Monitor that samples a fraction of
// connections every few seconds and once more at their end.
//
// # Cost
//
// A Sampler is made once per connection (it holds the socket's RawConn);
// each Sample is then one getsockopt (two for BBR) into a buffer the
// Sampler owns, with no allocation. BenchmarkSample measures it. A
// Monitor decides with one random draw whether a connection is tracked at
// all, so untracked connections pay nothing else.
//
// # What this kernel fills
//
// Record.InfoLen is how many bytes of struct tcp_info the kernel returned;
// fields past it are zero because the kernel is older, not because the
// value was zero. TestKernelFillsFields logs the length on the machine it
// runs on (Linux 6.18 here fills all 280 bytes of x/sys v0.50's
// TCPInfo). Fields that exist only from some kernel on are noted on the
// Record.
//
// # Units
//
// Durations are time.Duration (the kernel reports microseconds). Rates
// are bytes per second, as the kernel reports them; multiply by 8 for the
// bits per second netem and the probes use.
package tcpinfo
