package player

import "time"

// ABR algorithms Config.ABR may name.
const (
	// ABRBuffer is BBA-0 (Huang et al., "A Buffer-Based Approach to Rate
	// Adaptation", SIGCOMM 2014), the default.
	ABRBuffer = "bba"
	// ABRFixed plays the highest rung at or below MaxBitrateKbps
	// throughout, as the first player did.
	ABRFixed = "fixed"
)

// bba is BBA-0's rate map and rung choice. The buffer level B is playback
// time downloaded but not yet played.
//
//   - B ≤ reservoir: the lowest rung (Rmin), to refill the buffer.
//   - B ≥ reservoir + cushion: towards the highest rung (Rmax).
//   - in between, f(B) rises linearly from Rmin to Rmax; the rung only
//     changes when f(B) crosses a neighbouring rung: up to the highest
//     rung below f(B) once f(B) reaches the next rung up, down to the
//     lowest rung above f(B) once f(B) falls to the next rung down. The
//     gap between rungs is the hysteresis that keeps it from
//     oscillating.
//
// One deviation from the paper: upward moves are one rung per segment
// (downward moves are not limited). The paper's buffer is 240 s; with a
// buffer of seconds a jump from Rmin to Rmax can drain it before the next
// decision.
type bba struct {
	ladder             []int // kbps, ascending
	reservoir, cushion time.Duration
}

// rate is f(B) in kbps.
func (a *bba) rate(b time.Duration) float64 {
	rmin, rmax := float64(a.ladder[0]), float64(a.ladder[len(a.ladder)-1])
	switch {
	case b <= a.reservoir:
		return rmin
	case b >= a.reservoir+a.cushion || a.cushion <= 0:
		return rmax
	}
	return rmin + (rmax-rmin)*float64(b-a.reservoir)/float64(a.cushion)
}

// next returns the rung index for the next segment given the previous
// rung and the buffer level.
func (a *bba) next(prev int, b time.Duration) int {
	top := len(a.ladder) - 1
	switch {
	case b <= a.reservoir:
		return 0
	case b >= a.reservoir+a.cushion:
		return min(prev+1, top)
	}
	f := a.rate(b)
	up, down := min(prev+1, top), max(prev-1, 0)
	switch {
	case f >= float64(a.ladder[up]) && up != prev:
		// BBA-0 takes the highest rung strictly below f(B); with buffers
		// of seconds (the lab's) a jump of several rungs can drain the
		// buffer before the next decision, so go up one rung at a time.
		return up
	case f <= float64(a.ladder[down]) && down != prev:
		// The lowest rung strictly above f(B) (at most the next one down).
		r := down
		for r > 0 && float64(a.ladder[r-1]) > f {
			r--
		}
		return r
	}
	return prev
}
