package fill

import (
	"context"
	"sync"
	"time"

	"github.com/ocdn/ocdn/internal/clock"
)

// limiter is a token bucket over bytes in real time: rate tokens a
// second, at most burst banked. Rate caps are about real links, so the
// lab's compressed clock does not apply to them.
type limiter struct {
	rate, burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newLimiter(rate int64) *limiter {
	if rate <= 0 {
		return nil
	}
	burst := max(float64(rate)/20, 64<<10)
	return &limiter{rate: float64(rate), burst: burst, tokens: burst, last: time.Now()}
}

// wait takes n tokens, sleeping until they are there. Debt is allowed (a
// read larger than the burst waits for its whole size), which keeps the
// long-run rate exact.
func (l *limiter) wait(ctx context.Context, n int) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	l.tokens -= float64(n)
	var d time.Duration
	if l.tokens < 0 {
		d = time.Duration(-l.tokens / l.rate * float64(time.Second))
	}
	l.mu.Unlock()
	return clock.Sleep(ctx, d)
}
