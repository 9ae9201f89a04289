package stats

import (
	"errors"
	"fmt"
	"math"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// SketchRelativeAccuracy is the relative accuracy of every Sketch: a
// reported quantile is within 1% of the value of the exact sample quantile
// of the same rank. It is fixed for the whole project so that sketches
// written by any site or hour can be merged with any other.
const SketchRelativeAccuracy = 0.01

// Sentinel errors of Sketch.
var (
	ErrNegativeValue   = errors.New("stats: negative value (timings and throughputs are non-negative)")
	ErrInvalidValue    = errors.New("stats: value is NaN or infinite")
	ErrInvalidWeight   = errors.New("stats: weight must be finite and non-negative")
	ErrEmptySketch     = errors.New("stats: sketch is empty")
	ErrInvalidQuant    = errors.New("stats: quantile must be in [0, 1]")
	ErrMappingMismatch = errors.New("stats: sketch was built with a different index mapping")
)

// Sketch is a mergeable quantile sketch of non-negative values (DDSketch,
// relative accuracy 1%). Its size grows with the log of the value range,
// not with the count, so an hour of connect times from a site costs a few
// kilobytes however many clients there were.
//
// Assumptions: values are non-negative (negative values are rejected, so a
// sign error upstream shows as an error rather than a silently wrong
// quantile); values below ~1e-308 are counted as zero. The accuracy
// guarantee is relative to the value, so it is meaningless for values near
// zero in absolute terms only if zero itself matters.
//
// A Sketch is not safe for concurrent use.
type Sketch struct {
	s *ddsketch.DDSketch
}

func newMapping() mapping.IndexMapping {
	m, err := mapping.NewDefaultMapping(SketchRelativeAccuracy)
	if err != nil {
		// The accuracy is a valid constant; this cannot fail.
		panic(fmt.Sprintf("stats: building the sketch index mapping: %v", err))
	}
	return m
}

// NewSketch returns an empty sketch with 1% relative accuracy.
func NewSketch() *Sketch {
	return &Sketch{s: ddsketch.NewDDSketchFromStoreProvider(newMapping(), store.DefaultProvider)}
}

// Add records one observation.
func (s *Sketch) Add(v float64) error { return s.AddWeighted(v, 1) }

// AddWeighted records v with weight w (for example a count of identical
// observations, or a sampling weight). A zero weight is a no-op.
func (s *Sketch) AddWeighted(v, w float64) error {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return ErrInvalidValue
	case v < 0:
		return fmt.Errorf("%w: %g", ErrNegativeValue, v)
	case math.IsNaN(w) || math.IsInf(w, 0) || w < 0:
		return fmt.Errorf("%w: %g", ErrInvalidWeight, w)
	case w == 0:
		return nil
	}
	if err := s.s.AddWithCount(v, w); err != nil {
		return fmt.Errorf("stats: adding %g to sketch: %w", v, err)
	}
	return nil
}

// Merge adds every observation of other into s; other is not modified.
// After the merge s answers as a sketch of the union of both inputs would,
// which is what makes per-hour, per-site sketches composable.
func (s *Sketch) Merge(other *Sketch) error {
	if err := s.s.MergeWith(other.s); err != nil {
		return fmt.Errorf("%w: %v", ErrMappingMismatch, err)
	}
	return nil
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1) of the recorded values,
// within 1% relative error of the exact sample quantile.
func (s *Sketch) Quantile(q float64) (float64, error) {
	if !(q >= 0 && q <= 1) {
		return math.NaN(), fmt.Errorf("%w: %g", ErrInvalidQuant, q)
	}
	if s.s.IsEmpty() {
		return math.NaN(), ErrEmptySketch
	}
	v, err := s.s.GetValueAtQuantile(q)
	if err != nil {
		return math.NaN(), fmt.Errorf("stats: sketch quantile %g: %w", q, err)
	}
	return v, nil
}

// Count returns the total weight recorded (the number of observations when
// every weight is 1).
func (s *Sketch) Count() float64 { return s.s.GetCount() }

// MarshalBinary encodes the sketch in DDSketch's compact binary format,
// including the index mapping so the bytes are self-describing.
func (s *Sketch) MarshalBinary() ([]byte, error) {
	var b []byte
	s.s.Encode(&b, false)
	return b, nil
}

// UnmarshalBinary replaces the contents of s with the decoded sketch. It
// rejects encodings that lack the index mapping, that use a mapping other
// than the project's 1% one (they could not be merged), that contain
// negative values, or whose bins could not come from a real sketch
// (index outside the mapping's range, negative or non-finite counts); on
// error s is left unchanged.
//
// The bytes are treated as outside input: they are decoded into a sparse
// (map) store, whose size is bounded by the input length, and checked
// before being copied into the usual paginated store. Decoding straight
// into a paginated store lets a few crafted bytes claim a bin index
// millions of pages away and allocate without bound (found by
// FuzzSketchUnmarshal).
func (s *Sketch) UnmarshalBinary(b []byte) (err error) {
	// The library decoder may panic on malformed input; make that an
	// error, never a crash of the analysis process.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stats: decoding sketch: malformed input: %v", r)
		}
	}()
	d, err := ddsketch.DecodeDDSketch(b, store.SparseStoreConstructor, nil)
	if err != nil {
		return fmt.Errorf("stats: decoding sketch: %w", err)
	}
	if d.IndexMapping == nil {
		return errors.New("stats: decoding sketch: encoding has no index mapping")
	}
	m := newMapping()
	if !d.IndexMapping.Equals(m) {
		return ErrMappingMismatch
	}
	if !d.GetNegativeValueStore().IsEmpty() {
		return fmt.Errorf("stats: decoding sketch: %w", ErrNegativeValue)
	}
	if z := d.GetZeroCount(); !validCount(z) {
		return fmt.Errorf("stats: decoding sketch: invalid zero count %g", z)
	}
	lo, hi := m.Index(m.MinIndexableValue()), m.Index(m.MaxIndexableValue())
	out := NewSketch()
	pos := out.s.GetPositiveValueStore()
	d.GetPositiveValueStore().ForEach(func(index int, count float64) bool {
		if index < lo || index > hi || !validCount(count) {
			err = fmt.Errorf("stats: decoding sketch: invalid bin (index %d, count %g)", index, count)
			return true
		}
		pos.AddWithCount(index, count)
		return false
	})
	if err != nil {
		return err
	}
	if z := d.GetZeroCount(); z > 0 {
		if err := out.s.AddWithCount(0, z); err != nil {
			return fmt.Errorf("stats: decoding sketch: %w", err)
		}
	}
	s.s = out.s
	return nil
}

func validCount(c float64) bool { return c >= 0 && !math.IsInf(c, 0) }
