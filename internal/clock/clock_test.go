package clock

import (
	"testing"
	"time"
)

func TestScaledRoundTrip(t *testing.T) {
	start := time.Date(2026, 1, 15, 1, 58, 0, 0, time.FixedZone("CET", 3600))
	c := NewScaled(start, 3600)
	d, err := ParseScaled(c.String())
	if err != nil {
		t.Fatal(err)
	}
	// Both read the same clock: the same origin and start, so the same
	// time for the same real moment.
	if !d.origin.Equal(c.origin) || !d.Start.Equal(c.Start) || d.Factor != c.Factor {
		t.Fatalf("ParseScaled(%q) = %+v, want %+v", c.String(), d, c)
	}
	for _, bad := range []string{"", "x,1,y", start.Format(time.RFC3339) + ",0," + start.Format(time.RFC3339)} {
		if _, err := ParseScaled(bad); err == nil {
			t.Errorf("ParseScaled(%q) = nil error", bad)
		}
	}
}
