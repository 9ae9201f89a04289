// Package clock provides time as ocdn's time-driven code sees it: a Clock
// to read the time of day and wait on (the wall clock, or a scaled one for
// the lab), and a Sleep that ends early with its context.
package clock

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Clock is where time-driven work (the fill window, for one) reads the
// time of day and waits. The lab uses a compressed clock, so that a
// 12-hour fill window passes in seconds.
type Clock interface {
	Now() time.Time
	// Sleep waits d of clock time, or until ctx ends.
	Sleep(ctx context.Context, d time.Duration) error
}

// Real is the wall clock.
type Real struct{}

// Now implements Clock.
func (Real) Now() time.Time { return time.Now() }

// Sleep implements Clock.
func (Real) Sleep(ctx context.Context, d time.Duration) error { return Sleep(ctx, d) }

// Scaled runs Factor times faster than the wall clock from Start
// (clock time) at the moment it was made.
type Scaled struct {
	Start  time.Time
	Factor float64
	origin time.Time
}

// NewScaled returns a clock that reads start now and advances factor
// clock seconds per real second.
func NewScaled(start time.Time, factor float64) *Scaled {
	if factor <= 0 {
		factor = 1
	}
	return &Scaled{Start: start, Factor: factor, origin: time.Now()}
}

// String encodes the clock for ParseScaled, so that another process (an
// appliance the lab starts as its own process) runs the very same clock:
// "start,factor,origin" with both times in RFC 3339.
func (c *Scaled) String() string {
	return c.Start.Format(time.RFC3339Nano) + "," + strconv.FormatFloat(c.Factor, 'g', -1, 64) + "," + c.origin.Format(time.RFC3339Nano)
}

// ParseScaled reads what String wrote.
func ParseScaled(s string) (*Scaled, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return nil, fmt.Errorf("clock %q: want start,factor,origin", s)
	}
	start, err1 := time.Parse(time.RFC3339Nano, parts[0])
	factor, err2 := strconv.ParseFloat(parts[1], 64)
	origin, err3 := time.Parse(time.RFC3339Nano, parts[2])
	if err := errors.Join(err1, err2, err3); err != nil || factor <= 0 {
		return nil, fmt.Errorf("clock %q: want start,factor,origin with RFC 3339 times and a positive factor", s)
	}
	return &Scaled{Start: start, Factor: factor, origin: origin}, nil
}

// Now implements Clock.
func (c *Scaled) Now() time.Time {
	return c.Start.Add(time.Duration(float64(time.Since(c.origin)) * c.Factor))
}

// Sleep implements Clock.
func (c *Scaled) Sleep(ctx context.Context, d time.Duration) error {
	return Sleep(ctx, time.Duration(float64(d)/c.Factor))
}

// Sleep waits d, or until ctx ends, and then returns ctx.Err().
func Sleep(ctx context.Context, d time.Duration) error {
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
