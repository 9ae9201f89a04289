package tcpinfo

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Reason says why a sample was taken.
type Reason uint8

const (
	// Periodic samples come every Interval while a connection lives.
	Periodic Reason = iota + 1
	// Final is the sample taken by Flow.Finish, before the socket closes.
	Final
)

func (r Reason) String() string {
	switch r {
	case Periodic:
		return "periodic"
	case Final:
		return "final"
	}
	return fmt.Sprintf("Reason(%d)", r)
}

// MonitorConfig says which connections are sampled and how often.
type MonitorConfig struct {
	// SampleRate is the fraction of connections tracked, from 0 (none)
	// to 1 (all). Each connection is drawn independently at Track.
	SampleRate float64 `json:"sample_rate" yaml:"sample_rate"`
	// Interval is the time between samples of a long connection; 0
	// takes only the final sample.
	Interval time.Duration `json:"interval" yaml:"interval"`
}

// Validate names the field that is out of range.
func (c MonitorConfig) Validate() error {
	if !(c.SampleRate >= 0 && c.SampleRate <= 1) { // also refuses NaN
		return fmt.Errorf("tcpinfo: sample_rate %v is outside [0, 1]", c.SampleRate)
	}
	if c.Interval < 0 {
		return fmt.Errorf("tcpinfo: interval %v is negative", c.Interval)
	}
	if c.Interval > 0 && c.Interval < 10*time.Millisecond {
		return fmt.Errorf("tcpinfo: interval %v is below 10ms; sampling that often measures the sampler", c.Interval)
	}
	return nil
}

// Monitor samples a fraction of connections periodically and at their
// end. It holds no goroutine of its own: each tracked connection with an
// Interval has a runtime timer whose callback takes the sample, and
// Flow.Finish stops it.
type Monitor struct {
	cfg MonitorConfig
}

// NewMonitor checks cfg and returns a Monitor.
func NewMonitor(cfg MonitorConfig) (*Monitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Monitor{cfg: cfg}, nil
}

// Track draws whether c is sampled and, if so, returns its Flow; emit is
// then called with each sample (from a timer goroutine for periodic ones,
// from the caller of Finish for the final one, never concurrently). The
// Record is reused between calls: copy it to keep it. Track returns nil
// for a connection that is not sampled or has no TCP socket; a nil Flow's
// Finish does nothing, so callers need no branch.
func (m *Monitor) Track(c any, emit func(r *Record, why Reason)) *Flow {
	if m.cfg.SampleRate <= 0 || (m.cfg.SampleRate < 1 && rand.Float64() >= m.cfg.SampleRate) {
		return nil
	}
	s, err := NewSampler(c)
	if err != nil {
		return nil
	}
	f := &Flow{s: s, emit: emit, interval: m.cfg.Interval}
	if f.interval > 0 {
		f.mu.Lock()
		f.timer = time.AfterFunc(f.interval, f.tick)
		f.mu.Unlock()
	}
	return f
}

// Flow is one tracked connection.
type Flow struct {
	mu       sync.Mutex
	s        *Sampler
	rec      Record
	emit     func(*Record, Reason)
	interval time.Duration
	timer    *time.Timer
	done     bool
}

func (f *Flow) tick() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return
	}
	if err := f.s.Sample(&f.rec); err != nil {
		// The socket went away without Finish: nothing more to sample.
		f.done = true
		return
	}
	f.emit(&f.rec, Periodic)
	f.timer.Reset(f.interval)
}

// Finish takes the final sample and stops periodic ones; call it before
// the socket is closed (afterwards there is nothing to read). No sample
// is emitted after Finish returns. Calling it again does nothing.
func (f *Flow) Finish() error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return nil
	}
	f.done = true
	if f.timer != nil {
		f.timer.Stop()
	}
	if err := f.s.Sample(&f.rec); err != nil {
		return err
	}
	f.emit(&f.rec, Final)
	return nil
}
