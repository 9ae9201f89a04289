package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/clock"
)

// ScrubPause is how long Scrub rests between passes, so a small store is
// not re-read in a tight loop.
const ScrubPause = time.Minute

// DefaultScrubRate is the scrubber's rate, in bytes per second, when none
// is configured: 40 MB/s re-reads a 100 TB store in 29 days, about the
// monthly scrub storage systems customarily run (a 10 TB one in 3 days).
// It is a quarter of one hard disk's sequential read, well under 1% of
// the read bandwidth of an appliance with dozens of disks, and about 3%
// of one core hashing SHA-256.
const DefaultScrubRate = 40_000_000

// ScrubOff, as Run's scrub rate, turns the scrubber off.
const ScrubOff = -1

// ScrubYield is how much the scrubber slows down while its busy signal
// says clients need the machine: to a tenth of its rate. It does not stop,
// so that a store on a machine busy for weeks is still re-read, in ten
// times the time (storage systems do the same: ZFS delays scrub I/O while
// there is other I/O, Ceph skips scrubs above a load threshold).
const ScrubYield = 10

// ScrubBusy is the share of the machine's CPU time above which the
// appliance counts its machine as busy: the scrubber then yields.
const ScrubBusy = 0.5

type scrubCounters struct {
	rate        atomic.Int64 // bytes per second now: slowed while busy, 0 between passes and when off
	passes      atomic.Uint64
	objects     atomic.Uint64
	bytes       atomic.Uint64
	quarantined atomic.Uint64
}

// ScrubStats counts what the scrubber has done since the store was opened.
type ScrubStats struct {
	Passes      uint64 `json:"passes"`      // complete passes over the store
	Objects     uint64 `json:"objects"`     // objects re-hashed
	Bytes       uint64 `json:"bytes"`       // bytes re-hashed
	Quarantined uint64 `json:"quarantined"` // objects moved to quarantine/, by any check
}

// ScrubStats reports the scrubber's counters.
func (s *Store) ScrubStats() ScrubStats {
	return ScrubStats{
		Passes:      s.scrub.passes.Load(),
		Objects:     s.scrub.objects.Load(),
		Bytes:       s.scrub.bytes.Load(),
		Quarantined: s.scrub.quarantined.Load(),
	}
}

// Quarantined is how many objects the store has quarantined since it was
// opened, at open or after.
func (s *Store) Quarantined() uint64 { return s.scrub.quarantined.Load() }

// Collectors returns Prometheus metrics for the store: usage, capacity,
// object count and the scrubber's counters. Register them once per store.
func (s *Store) Collectors() []prometheus.Collector {
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	return []prometheus.Collector{
		counter("ocdn_store_quarantined_objects_total", "Objects found corrupt (at open, when re-verified, opened or scrubbed) and moved to quarantine.", &s.scrub.quarantined),
		counter("ocdn_store_scrubbed_bytes_total", "Bytes re-hashed by the scrubber.", &s.scrub.bytes),
		counter("ocdn_store_scrubbed_objects_total", "Objects re-hashed by the scrubber.", &s.scrub.objects),
		counter("ocdn_store_scrub_passes_total", "Complete scrubber passes over the store.", &s.scrub.passes),
		gauge("ocdn_store_scrub_rate_bytes_per_second", "The scrubber's rate now: the configured one, a tenth of it while the machine is busy; 0 between passes and when off.", func() float64 { return float64(s.scrub.rate.Load()) }),
		gauge("ocdn_store_used_bytes", "Bytes of verified objects in the store.", func() float64 { u, _, _ := s.Usage(); return float64(u) }),
		gauge("ocdn_store_capacity_bytes", "Store capacity in bytes (0 means unlimited).", func() float64 { _, c, _ := s.Usage(); return float64(c) }),
		gauge("ocdn_store_objects", "Verified objects in the store: the ones served.", func() float64 { s.mu.RLock(); defer s.mu.RUnlock(); return float64(len(s.index)) }),
		gauge("ocdn_store_pending_objects", "Objects that may have changed since the last checkpoint, not served until re-hashed.", func() float64 { return float64(s.Pending()) }),
		gauge("ocdn_store_checkpoint_timestamp_seconds", "File-system time of the last checkpoint: objects changed since are re-hashed after a crash.", func() float64 {
			if ns := s.checkpointAt.Load(); ns > 0 {
				return float64(ns) / 1e9
			}
			return 0
		}),
	}
}

// Scrub re-hashes every stored object, pass after pass, reading no more
// than bytesPerSecond, until ctx ends; then it returns nil. While busy (if
// not nil) reports true it reads no more than bytesPerSecond/ScrubYield:
// clients come first. An object whose bytes no longer match its SHA-256
// (bit rot, a bad disk, someone editing files by hand) is moved to
// quarantine/ and dropped from the index, so it is never served again and
// the next fill fetches a good copy.
func (s *Store) Scrub(ctx context.Context, bytesPerSecond int64, busy func() bool) error {
	if bytesPerSecond <= 0 {
		return fmt.Errorf("scrub rate %d bytes/s: must be positive", bytesPerSecond)
	}
	if s.readOnly {
		return ErrReadOnly
	}
	p := newPacer(bytesPerSecond)
	p.busy, p.now = busy, &s.scrub.rate
	defer s.scrub.rate.Store(0)
	for {
		if _, err := s.scrubPass(ctx, p); err != nil {
			return nil // only the context ends a pass early
		}
		s.scrub.rate.Store(0)
		if clock.Sleep(ctx, ScrubPause) != nil {
			return nil
		}
	}
}

// ScrubOnce makes one paced pass over the store and returns the objects it
// quarantined. It returns ctx's error if ctx ends first.
func (s *Store) ScrubOnce(ctx context.Context, bytesPerSecond int64) ([]Problem, error) {
	if bytesPerSecond <= 0 {
		return nil, fmt.Errorf("scrub rate %d bytes/s: must be positive", bytesPerSecond)
	}
	if s.readOnly {
		return nil, ErrReadOnly
	}
	return s.scrubPass(ctx, newPacer(bytesPerSecond))
}

func (s *Store) scrubPass(ctx context.Context, p *pacer) ([]Problem, error) {
	var bad []Problem
	for _, e := range s.List() {
		v, err := checkObject(ctx, s.objectFile(e), e, p, func(n int) { s.scrub.bytes.Add(uint64(n)) })
		if err != nil {
			return bad, err
		}
		s.scrub.objects.Add(1)
		if v.bad == "" {
			continue // good, or unreadable now, which is not evidence of corruption
		}
		if s.quarantine(e, v.file, v.bad) {
			bad = append(bad, Problem{Path: e.Path, Reason: v.bad})
		}
	}
	s.scrub.passes.Add(1)
	return bad, nil
}

// pacer is a token bucket: bytes read ≤ chunk + rate × elapsed, where the
// rate is a ScrubYield-th of the full one while busy says so.
type pacer struct {
	rate   float64 // bytes per second
	chunk  int
	tokens float64
	last   time.Time
	busy   func() bool   // nil: never
	now    *atomic.Int64 // if not nil, gets the rate in force
}

func newPacer(bytesPerSecond int64) *pacer {
	chunk := int(min(max(bytesPerSecond, 4<<10), 256<<10))
	return &pacer{rate: float64(bytesPerSecond), chunk: chunk, tokens: float64(chunk), last: time.Now()}
}

// wait takes n tokens, sleeping until the bucket has paid for them.
func (p *pacer) wait(ctx context.Context, n int) error {
	rate := p.rate
	if p.busy != nil && p.busy() {
		rate /= ScrubYield
	}
	if p.now != nil {
		p.now.Store(int64(rate))
	}
	now := time.Now()
	p.tokens = min(float64(p.chunk), p.tokens+now.Sub(p.last).Seconds()*rate)
	p.last = now
	p.tokens -= float64(n)
	if p.tokens >= 0 {
		return ctx.Err()
	}
	return clock.Sleep(ctx, time.Duration(-p.tokens/rate*float64(time.Second)))
}
