package sim

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress draws a one-line bar with the simulated clock, at most a few
// times a second; with no writer it does nothing (the CLI passes one only
// when stderr is a terminal).
type progress struct {
	w     io.Writer
	total time.Duration
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer, total time.Duration) *progress {
	return &progress{w: w, total: total, start: time.Now()}
}

func (p *progress) update(sim time.Duration, sessions int64) {
	if p.w == nil || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	frac := min(float64(sim)/float64(p.total), 1)
	const width = 30
	n := int(frac * width)
	rate := float64(sessions) / max(time.Since(p.start).Seconds(), 1e-3)
	day := int(sim / (24 * time.Hour))
	clock := sim % (24 * time.Hour)
	fmt.Fprintf(p.w, "\r[%s%s] day %d %02d:%02d simulated · %s sessions · %s/s · %s ",
		strings.Repeat("=", n), strings.Repeat(" ", width-n), day+1, int(clock.Hours()), int(clock.Minutes())%60,
		si(float64(sessions)), si(rate), time.Since(p.start).Round(time.Second))
}

func (p *progress) done() {
	if p.w != nil {
		fmt.Fprintln(p.w)
	}
}

// si formats a count with k/M/G.
func si(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2fG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
