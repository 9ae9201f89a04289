package netem

import (
	"fmt"
	"time"
)

// Schedule is a link whose settings change over time: a congested
// evening, a link that degrades, a day compressed into minutes. Step i
// holds from Steps[i].At after Start until the next step; Steps[0].At
// must be 0. With Period set, the schedule repeats (At values must then
// be below Period); otherwise the last step holds forever.
//
// Changes apply to what arrives after them: packets already queued keep
// the delay and rate they were admitted with, as on a real link whose
// capacity changes.
type Schedule[T any] struct {
	Steps  []Step[T]     `json:"steps" yaml:"steps"`
	Period time.Duration `json:"period,omitempty" yaml:"period,omitempty"`
	// Start is when the schedule's time 0 is; zero means when the link
	// that uses it was made. The lab sets one Start for all its links.
	Start time.Time `json:"-" yaml:"-"`
}

// Step is one setting of a Schedule.
type Step[T any] struct {
	At   time.Duration `json:"at" yaml:"at"`
	Link T             `json:"link" yaml:"link"`
}

// Validate checks the step times and each step's link with check, whose
// errors are prefixed with the step's index.
func (s *Schedule[T]) Validate(check func(T) error) error {
	if len(s.Steps) == 0 {
		return fmt.Errorf("netem: schedule has no steps")
	}
	if s.Period < 0 {
		return fmt.Errorf("netem: schedule period %v is negative", s.Period)
	}
	for i, st := range s.Steps {
		switch {
		case i == 0 && st.At != 0:
			return fmt.Errorf("netem: schedule steps[0].at is %v, want 0 (the schedule must say what holds from its start)", st.At)
		case i > 0 && st.At <= s.Steps[i-1].At:
			return fmt.Errorf("netem: schedule steps[%d].at %v is not after steps[%d].at %v", i, st.At, i-1, s.Steps[i-1].At)
		case s.Period > 0 && st.At >= s.Period:
			return fmt.Errorf("netem: schedule steps[%d].at %v is not below the period %v", i, st.At, s.Period)
		}
		if check != nil {
			if err := check(st.Link); err != nil {
				return fmt.Errorf("schedule steps[%d]: %w", i, err)
			}
		}
	}
	return nil
}

// At returns the setting in force elapsed after the start. s must be
// valid.
func (s *Schedule[T]) At(elapsed time.Duration) T {
	if s.Period > 0 {
		elapsed %= s.Period
		if elapsed < 0 {
			elapsed += s.Period
		}
	}
	// Schedules have a handful of steps: a linear scan beats a search.
	i := 0
	for i+1 < len(s.Steps) && s.Steps[i+1].At <= elapsed {
		i++
	}
	return s.Steps[i].Link
}
