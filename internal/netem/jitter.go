package netem

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Jitter is a random extra delay added to each packet (packet level) or
// each delivered chunk (stream level), on top of the fixed delay. It is
// never negative: the fixed delay is the path's minimum, as propagation
// is, and jitter is what queues and radio links add to it.
//
// Distributions and their parameters:
//
//	Dist       extra delay                     parameters                   mean
//	""/"none"  0                               —                            0
//	"uniform"  U[0, Max]                       Max                          Max/2
//	"normal"   N(Mean, Stddev), clipped at 0   Mean, Stddev (Max optional)  ≈Mean when Mean ≥ 2·Stddev
//	"pareto"   Scale·(U^(−1/Alpha) − 1)        Scale, Alpha (Max optional)  Scale/(Alpha−1) for Alpha > 1
//
// "pareto" is the Pareto type II (Lomax) distribution: Pareto shifted to
// start at 0, so that most packets see little extra delay and a few see
// a lot (heavy tail; Alpha ≤ 2 has infinite variance, Alpha ≤ 1 infinite
// mean). Max, when set, caps any sample: a pareto tail beyond a few
// hundred milliseconds is a retransmission timeout, not jitter.
type Jitter struct {
	Dist   string        `json:"dist,omitempty" yaml:"dist,omitempty"`
	Max    time.Duration `json:"max,omitempty" yaml:"max,omitempty"`
	Mean   time.Duration `json:"mean,omitempty" yaml:"mean,omitempty"`
	Stddev time.Duration `json:"stddev,omitempty" yaml:"stddev,omitempty"`
	Scale  time.Duration `json:"scale,omitempty" yaml:"scale,omitempty"`
	Alpha  float64       `json:"alpha,omitempty" yaml:"alpha,omitempty"`
}

// IsZero reports whether the jitter adds nothing.
func (j Jitter) IsZero() bool { return j.Dist == "" || j.Dist == "none" }

// Validate names the parameter that is missing or out of range for the
// distribution; field names are prefixed with path (e.g. "down.jitter").
func (j Jitter) Validate(path string) error {
	if j.Max < 0 {
		return fmt.Errorf("netem: %s.max %v is negative", path, j.Max)
	}
	switch j.Dist {
	case "", "none":
		return nil
	case "uniform":
		if j.Max <= 0 {
			return fmt.Errorf("netem: %s.max must be positive for uniform jitter", path)
		}
	case "normal":
		if j.Mean < 0 {
			return fmt.Errorf("netem: %s.mean %v is negative", path, j.Mean)
		}
		if j.Stddev <= 0 {
			return fmt.Errorf("netem: %s.stddev must be positive for normal jitter", path)
		}
	case "pareto":
		if j.Scale <= 0 {
			return fmt.Errorf("netem: %s.scale must be positive for pareto jitter", path)
		}
		if !(j.Alpha > 0) || math.IsInf(j.Alpha, 0) {
			return fmt.Errorf("netem: %s.alpha %v must be a positive number for pareto jitter", path, j.Alpha)
		}
	default:
		return fmt.Errorf("netem: %s.dist %q is not one of none, uniform, normal, pareto", path, j.Dist)
	}
	return nil
}

// Sample draws one extra delay. j must be valid.
func (j Jitter) Sample(r *rand.Rand) time.Duration {
	var d float64 // nanoseconds
	switch j.Dist {
	case "uniform":
		d = r.Float64() * float64(j.Max)
	case "normal":
		d = float64(j.Mean) + r.NormFloat64()*float64(j.Stddev)
	case "pareto":
		u := 1 - r.Float64() // (0, 1]: never divides by zero
		d = float64(j.Scale) * (math.Pow(u, -1/j.Alpha) - 1)
	default:
		return 0
	}
	if j.Max > 0 && d > float64(j.Max) {
		d = float64(j.Max)
	}
	// Clip before converting: a pareto tail can exceed int64.
	if !(d > 0) {
		return 0
	}
	if d >= math.MaxInt64/2 {
		return math.MaxInt64 / 2
	}
	return time.Duration(d)
}
