package fill

import (
	"fmt"
	"time"

	"github.com/ocdn/ocdn/internal/api"
)

// Default fill window, site local time (DESIGN: 02:00–14:00).
const (
	DefaultStartHour = 2
	DefaultEndHour   = 14
)

// Window is a daily window [Start, End) hours in a site's time zone; End
// before Start wraps past midnight. Every appliance of a site computes it
// from the site's zone, not its own clock's zone, so they start together.
type Window struct {
	Loc        *time.Location
	Start, End int
}

// WindowFrom checks and converts the control plane's description.
func WindowFrom(w api.FillWindow) (Window, error) {
	loc := time.UTC
	if w.TimeZone != "" {
		var err error
		if loc, err = time.LoadLocation(w.TimeZone); err != nil {
			return Window{}, fmt.Errorf("fill window: time_zone %q: %w", w.TimeZone, err)
		}
	}
	if w.StartHour < 0 || w.StartHour > 24 || w.EndHour < 0 || w.EndHour > 24 {
		return Window{}, fmt.Errorf("fill window: hours %d-%d must be within 0-24", w.StartHour, w.EndHour)
	}
	if w.StartHour == 0 && w.EndHour == 0 {
		w.StartHour, w.EndHour = DefaultStartHour, DefaultEndHour
	}
	return Window{Loc: loc, Start: w.StartHour, End: w.EndHour}, nil
}

// Open reports whether t is inside the window.
func (w Window) Open(t time.Time) bool {
	if w.Start == w.End {
		return true // a 24-hour window
	}
	h := t.In(w.Loc).Hour()
	if w.Start < w.End {
		return h >= w.Start && h < w.End
	}
	return h >= w.Start || h < w.End
}

// NextOpen is when the window next opens at or after t (t itself when it
// is open).
func (w Window) NextOpen(t time.Time) time.Time {
	if w.Open(t) {
		return t
	}
	lt := t.In(w.Loc)
	start := time.Date(lt.Year(), lt.Month(), lt.Day(), w.Start, 0, 0, 0, w.Loc)
	if !start.After(lt) {
		start = time.Date(lt.Year(), lt.Month(), lt.Day()+1, w.Start, 0, 0, 0, w.Loc)
	}
	return start
}

// cycle names the window occurrence t belongs to (the local date the
// window opened on), so out-of-cycle budgets reset once per cycle.
func (w Window) cycle(t time.Time) string {
	lt := t.In(w.Loc)
	if lt.Hour() < w.Start {
		lt = lt.AddDate(0, 0, -1)
	}
	return lt.Format("2006-01-02")
}
