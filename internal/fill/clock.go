// Package fill provides the appliance's fill agent: it downloads the files
// of its manifest during the site's nightly fill window (urgent files
// outside it, under their own byte budget) from a ranked list of sources —
// peers of the same cluster, then other sites, then the origin — under a
// bytes/s rate cap and a concurrency limit, resuming broken transfers with
// Range requests and verifying every file's SHA-256 before it becomes
// servable. Files dropped from the manifest are deleted only once the
// whole manifest has landed, so serving never has a gap.
package fill

import (
	"context"
	"time"
)

// Clock is where the agent reads the time of day and waits. The lab uses
// a compressed clock, so that a 12-hour fill window passes in seconds.
type Clock interface {
	Now() time.Time
	// Sleep waits d of clock time, or until ctx ends.
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the wall clock.
type RealClock struct{}

// Now implements Clock.
func (RealClock) Now() time.Time { return time.Now() }

// Sleep implements Clock.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error { return sleep(ctx, d) }

// ScaledClock runs Factor times faster than the wall clock from Start
// (clock time) at the moment it was made.
type ScaledClock struct {
	Start  time.Time
	Factor float64
	origin time.Time
}

// NewScaledClock returns a clock that reads start now and advances factor
// clock seconds per real second.
func NewScaledClock(start time.Time, factor float64) *ScaledClock {
	if factor <= 0 {
		factor = 1
	}
	return &ScaledClock{Start: start, Factor: factor, origin: time.Now()}
}

// Now implements Clock.
func (c *ScaledClock) Now() time.Time {
	return c.Start.Add(time.Duration(float64(time.Since(c.origin)) * c.Factor))
}

// Sleep implements Clock.
func (c *ScaledClock) Sleep(ctx context.Context, d time.Duration) error {
	return sleep(ctx, time.Duration(float64(d)/c.Factor))
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
