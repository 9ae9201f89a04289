package netem

import (
	"fmt"
	"math"
	"time"
)

// Shape is what one direction of a packet path does to each IP packet,
// in this order:
//
//  1. Loss: the packet is dropped with probability Loss, independently
//     of every other packet (random loss on the medium; it takes no
//     queue space).
//  2. Bottleneck: the packet joins a FIFO queue drained at RateBps (the
//     IP packet's bytes, headers included). If the bytes already queued
//     plus this packet would exceed QueueBytes, the packet is dropped
//     (tail drop). A full queue holds QueueBytes·8/RateBps of delay:
//     that is the bufferbloat a sender that fills it sees.
//  3. Propagation: the packet leaves the bottleneck and arrives Delay
//     plus a Jitter sample later. Without Reorder, a packet never
//     overtakes the one before it (jitter then bunches packets, as a
//     FIFO radio link does); with Reorder, it may, and TCP will count the
//     reordering as loss (duplicate ACKs, spurious retransmissions).
//
// With PerClient, step 2 is done per client instead of once for the
// whole direction: each client address (the packet's destination on the
// downlink, its source on the uplink) has its own queue drained at
// RateBps and holding QueueBytes — each home's access line, where the
// bufferbloat a household feels is — and the direction as a whole has no
// shared bottleneck. One client filling its line's queue then delays its
// own packets only, as a home's upload or download does, not every other
// client's of the ISP. The no-overtaking rule of step 3 holds per client
// too. A client's queue is made when its first packet arrives; a
// direction holds at most PathConfig.MaxClientQueues of them, and at the
// limit forgets the idle ones (an empty queue is as good as a new one);
// while every one is busy a new client's packets share one queue
// (DirStats counts the queues and those packets).
type Shape struct {
	Loss       float64       `json:"loss,omitempty" yaml:"loss,omitempty"`
	RateBps    float64       `json:"rate_bps,omitempty" yaml:"rate_bps,omitempty"`
	QueueBytes int           `json:"queue_bytes,omitempty" yaml:"queue_bytes,omitempty"`
	Delay      time.Duration `json:"delay,omitempty" yaml:"delay,omitempty"`
	Jitter     Jitter        `json:"jitter,omitzero" yaml:"jitter,omitempty"`
	Reorder    bool          `json:"reorder,omitempty" yaml:"reorder,omitempty"`
	PerClient  bool          `json:"per_client,omitempty" yaml:"per_client,omitempty"`
}

// DefaultQueueDelay sizes the queue when QueueBytes is 0: 100 ms at the
// rate, a common router buffer (the "BDP of a 100 ms path" rule).
const DefaultQueueDelay = 100 * time.Millisecond

// maxPacket is the largest IP packet a path carries (its MTU is below it);
// a queue smaller than one packet would drop everything.
const maxPacket = 1500

// queueLimit is the effective QueueBytes.
func (s Shape) queueLimit() int {
	if s.QueueBytes > 0 {
		return s.QueueBytes
	}
	return max(2*maxPacket, int(s.RateBps/8*DefaultQueueDelay.Seconds()))
}

// QueueDelay is the delay a full queue adds (0 without a rate limit).
func (s Shape) QueueDelay() time.Duration {
	if s.RateBps <= 0 {
		return 0
	}
	return time.Duration(float64(s.queueLimit()) * 8 / s.RateBps * float64(time.Second))
}

// Validate names the field that is out of range; path prefixes the field
// names ("down", "up").
func (s Shape) Validate(path string) error {
	switch {
	case !(s.Loss >= 0 && s.Loss <= 1):
		return fmt.Errorf("netem: %s.loss %v is outside [0, 1]", path, s.Loss)
	case !(s.RateBps >= 0) || math.IsInf(s.RateBps, 0):
		return fmt.Errorf("netem: %s.rate_bps %v must be a non-negative number (0 is unlimited)", path, s.RateBps)
	case s.QueueBytes < 0:
		return fmt.Errorf("netem: %s.queue_bytes %d is negative", path, s.QueueBytes)
	case s.QueueBytes > 0 && s.QueueBytes < maxPacket:
		return fmt.Errorf("netem: %s.queue_bytes %d cannot hold one %d-byte packet", path, s.QueueBytes, maxPacket)
	case s.QueueBytes > 0 && s.RateBps == 0:
		return fmt.Errorf("netem: %s.queue_bytes is set but rate_bps is 0 (unlimited): a queue needs a rate to build", path)
	case s.PerClient && s.RateBps == 0:
		return fmt.Errorf("netem: %s.per_client is set but rate_bps is 0 (unlimited): each client's queue needs a rate to build", path)
	case s.Delay < 0:
		return fmt.Errorf("netem: %s.delay %v is negative", path, s.Delay)
	}
	return s.Jitter.Validate(path + ".jitter")
}

// PacketLink is both directions of a packet path. Down is towards the
// client (server → client), Up towards the server.
type PacketLink struct {
	Down Shape `json:"down" yaml:"down"`
	Up   Shape `json:"up" yaml:"up"`
}

// Validate checks both directions.
func (l PacketLink) Validate() error {
	if err := l.Down.Validate("down"); err != nil {
		return err
	}
	return l.Up.Validate("up")
}

// RTT is the round trip's fixed delay, without jitter or queueing.
func (l PacketLink) RTT() time.Duration { return l.Down.Delay + l.Up.Delay }

// Symmetric returns a link with rtt split evenly, rateBps and loss on the
// downlink (where a server's data goes) and an unlimited, lossless uplink.
func Symmetric(rtt time.Duration, rateBps, loss float64) PacketLink {
	return PacketLink{
		Down: Shape{Delay: rtt / 2, RateBps: rateBps, Loss: loss},
		Up:   Shape{Delay: rtt - rtt/2},
	}
}
