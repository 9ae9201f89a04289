package netns

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"strings"
	"time"
)

// TBF is a kernel bottleneck: a token bucket filter (tc-tbf(8)) on an
// interface's egress. It is the one piece of kernel traffic shaping these
// machines have (netem and fq are not built); delay, jitter and loss stay
// in user space (internal/netem).
//
// Where it sits matters. On a host's own interface it shapes that host's
// sockets, but the kernel holds a local sender back before the queue
// overflows (TCP Small Queues, and a full local qdisc is a congestion
// signal, not a loss): the rate and the queueing delay are right, the
// tail drops a remote bottleneck makes never happen. Put it on a router's
// egress (traffic the host forwards) for a bottleneck TCP meets as it
// would on a real access link.
type TBF struct {
	// RateBps is the rate in bits per second of whole frames as the
	// interface sends them (IP bytes plus the 14-byte Ethernet header on
	// a veth): TCP goodput through it is about 1448/1514 ≈ 95.6% of it.
	RateBps float64
	// BurstBytes is the bucket: how much may leave at line rate after an
	// idle spell. 0 means 4 ms at the rate, at least two full frames:
	// tbf needs at least rate/HZ (4 ms at HZ=250) to reach its rate, and
	// a smaller bucket keeps a burst's excess over the rate negligible.
	BurstBytes int
	// Latency is the longest a packet may wait for tokens; tbf derives
	// its queue limit from it (tc's "latency"). LimitBytes sets the
	// queue's bytes directly instead ("limit"). At most one of them; both
	// 0 means a Latency of DefaultTBFLatency.
	Latency    time.Duration
	LimitBytes int
}

// DefaultTBFLatency is a TBF's queue when neither Latency nor LimitBytes
// is set: 100 ms at the rate, a common router buffer.
const DefaultTBFLatency = 100 * time.Millisecond

// minBurst is two full Ethernet frames: tbf cannot send a packet larger
// than its bucket.
const minBurst = 2 * 1514

// Validate names the setting that is wrong.
func (s TBF) Validate() error {
	switch {
	case !(s.RateBps > 0) || math.IsInf(s.RateBps, 0):
		return fmt.Errorf("rate_bps %v must be a positive number of bits per second", s.RateBps)
	case s.RateBps < 8:
		return fmt.Errorf("rate_bps %v is below tc's resolution of 1 byte per second", s.RateBps)
	case s.RateBps > 1e12:
		return fmt.Errorf("rate_bps %v is above 1 Tbit/s", s.RateBps)
	case s.BurstBytes < 0:
		return fmt.Errorf("burst_bytes %d is negative", s.BurstBytes)
	case s.BurstBytes > 0 && s.BurstBytes < minBurst:
		return fmt.Errorf("burst_bytes %d cannot hold two %d-byte frames (tbf drops any packet larger than its bucket)", s.BurstBytes, minBurst/2)
	case s.Latency < 0:
		return fmt.Errorf("latency %v is negative", s.Latency)
	case s.Latency > 0 && s.Latency < time.Microsecond:
		return fmt.Errorf("latency %v is below tc's resolution of 1µs", s.Latency)
	case s.LimitBytes < 0:
		return fmt.Errorf("limit_bytes %d is negative", s.LimitBytes)
	case s.Latency > 0 && s.LimitBytes > 0:
		return fmt.Errorf("latency %v and limit_bytes %d are both set: tbf takes one of them", s.Latency, s.LimitBytes)
	}
	return nil
}

// burst is the effective BurstBytes.
func (s TBF) burst() int {
	if s.BurstBytes > 0 {
		return s.BurstBytes
	}
	return max(minBurst, int(s.RateBps/8*0.004))
}

// args are tc's words for the qdisc after "tbf".
func (s TBF) args() []string {
	a := []string{"rate", fmt.Sprintf("%.0fbit", s.RateBps), "burst", fmt.Sprint(s.burst())}
	switch {
	case s.LimitBytes > 0:
		a = append(a, "limit", fmt.Sprint(s.LimitBytes))
	case s.Latency > 0:
		a = append(a, "latency", fmt.Sprintf("%dus", s.Latency.Microseconds()))
	default:
		a = append(a, "latency", fmt.Sprintf("%dus", DefaultTBFLatency.Microseconds()))
	}
	return a
}

// Shape puts s on the egress of interface ifname as its root qdisc,
// replacing whatever was there (so calling it again changes the rate in
// place). It needs iproute2's tc. Errors name the host, the interface and
// the setting.
func (h *Host) Shape(ifname string, s TBF) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("netns: %s: shape %s: %w", h.name, ifname, err)
	}
	_, err := h.tc(append([]string{"qdisc", "replace", "dev", ifname, "root", "tbf"}, s.args()...)...)
	return err
}

// Unshape removes the root qdisc of ifname, restoring the interface's
// default. An interface that is not shaped is an error, naming it.
func (h *Host) Unshape(ifname string) error {
	_, err := h.tc("qdisc", "del", "dev", ifname, "root")
	return err
}

// QdiscStats are the kernel's counters of an interface's root qdisc since
// it was put there.
type QdiscStats struct {
	Kind string // "tbf" when shaped; "noqueue" (a veth) or another default when not
	// The TBF as the kernel holds it (RateBps is rounded to whole bytes
	// per second; LatencyUs is what it derived, or what a limit amounts
	// to). Zero when Kind is not "tbf".
	RateBps    float64
	BurstBytes int
	LatencyUs  int64
	// Bytes and Packets it sent, Drops it made (a full queue),
	// Overlimits the times a packet had to wait for tokens, and Backlog
	// and Qlen what it holds now.
	Bytes, Packets, Drops, Overlimits uint64
	BacklogBytes, Qlen                uint64
}

// ShapeStats reads the counters of ifname's root qdisc.
func (h *Host) ShapeStats(ifname string) (QdiscStats, error) {
	out, err := h.tc("-s", "-j", "qdisc", "show", "dev", ifname, "root")
	if err != nil {
		return QdiscStats{}, err
	}
	st, err := parseQdiscStats(out)
	if err != nil {
		return QdiscStats{}, fmt.Errorf("netns: %s: tc qdisc show dev %s: %w", h.name, ifname, err)
	}
	return st, nil
}

// parseQdiscStats reads `tc -s -j qdisc show dev IF root`: a JSON array
// whose one element is the root qdisc.
func parseQdiscStats(b []byte) (QdiscStats, error) {
	var qs []struct {
		Kind    string `json:"kind"`
		Root    bool   `json:"root"`
		Options struct {
			Rate  float64 `json:"rate"` // bytes per second
			Burst int     `json:"burst"`
			Lat   int64   `json:"lat"` // µs
		} `json:"options"`
		Bytes      uint64 `json:"bytes"`
		Packets    uint64 `json:"packets"`
		Drops      uint64 `json:"drops"`
		Overlimits uint64 `json:"overlimits"`
		Backlog    uint64 `json:"backlog"`
		Qlen       uint64 `json:"qlen"`
	}
	if err := json.Unmarshal(b, &qs); err != nil {
		return QdiscStats{}, fmt.Errorf("reading its JSON: %w", err)
	}
	for _, q := range qs {
		if !q.Root {
			continue
		}
		if q.Kind == "" {
			return QdiscStats{}, errors.New("the root qdisc has no kind")
		}
		st := QdiscStats{Kind: q.Kind, Bytes: q.Bytes, Packets: q.Packets, Drops: q.Drops,
			Overlimits: q.Overlimits, BacklogBytes: q.Backlog, Qlen: q.Qlen}
		if q.Kind == "tbf" {
			if !(q.Options.Rate > 0) || q.Options.Burst <= 0 || q.Options.Lat < 0 {
				return QdiscStats{}, fmt.Errorf("tbf options rate %v B/s, burst %d, lat %dµs are impossible", q.Options.Rate, q.Options.Burst, q.Options.Lat)
			}
			st.RateBps, st.BurstBytes, st.LatencyUs = q.Options.Rate*8, q.Options.Burst, q.Options.Lat
		}
		return st, nil
	}
	return QdiscStats{}, fmt.Errorf("no root qdisc among %d", len(qs))
}

// tc runs `tc -n NS args…` and returns its standard output; its error
// output is in the error.
func (h *Host) tc(args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("tc", append([]string{"-n", h.ns}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("netns: %s: tc %s: %w: %s", h.name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
