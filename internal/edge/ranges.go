package edge

import (
	"errors"
	"math"
	"strings"
)

// Range-header outcomes other than success. The handler maps them to HTTP
// status here and nowhere else.
var (
	// ErrMalformedRange: the header is not a valid bytes ranges-specifier
	// (unknown unit, bad syntax, first-pos > last-pos). RFC 9110 §14.2 lets
	// a server ignore such a header; we do, and serve 200 with the whole
	// representation.
	ErrMalformedRange = errors.New("malformed Range header")
	// ErrUnsatisfiableRange: the header is valid but no range overlaps the
	// representation; the answer is 416 with Content-Range: bytes */size.
	ErrUnsatisfiableRange = errors.New("range not satisfiable")
	// ErrExcessiveRanges: more than MaxRanges range-specs, or satisfiable
	// ranges whose lengths add up to more than the representation. Both are
	// range-amplification patterns (RFC 9110 §14.2 lets a server ignore
	// them); we ignore the header and serve 200 with the whole
	// representation, so no response is ever larger than the file plus a
	// bounded per-part overhead.
	ErrExcessiveRanges = errors.New("too many or overlapping ranges")
)

// MaxRanges is the most range-specs one Range header may carry before it is
// ignored. Real players ask for one range; 32 leaves room for odd clients
// while bounding the multipart overhead (about 100 bytes per part) and the
// number of file reads one request can cause.
const MaxRanges = 32

// Range is a satisfiable byte range, both ends inclusive, within [0, size).
type Range struct {
	Start, End int64
}

// Length is the number of bytes in r.
func (r Range) Length() int64 { return r.End - r.Start + 1 }

// ParseRange parses a Range header value (RFC 9110 §14.1.2) against a
// representation of size bytes. It returns the satisfiable ranges in the
// order they were asked for, without coalescing: unsatisfiable range-specs
// among satisfiable ones are dropped, a last-byte-pos past the end (even
// past the largest int64) is clamped to size-1, and a suffix longer than
// the representation selects all of it.
//
// The errors are ErrMalformedRange (ignore the header: 200),
// ErrUnsatisfiableRange (416) and ErrExcessiveRanges (ignore: 200).
// A zero-length representation has no satisfiable range: callers serve it
// whole without consulting the header, since no Content-Range can name an
// empty range.
func ParseRange(header string, size int64) ([]Range, error) {
	return parseRange(header, size, nil)
}

// parseRange is ParseRange appending to dst[:0]: a caller's array for
// the usual single range saves the slice's allocation.
func parseRange(header string, size int64, dst []Range) ([]Range, error) {
	const unit = "bytes="
	if len(header) < len(unit) || !strings.EqualFold(header[:len(unit)], unit) {
		return nil, ErrMalformedRange
	}
	specs := header[len(unit):]
	out := dst[:0]
	var total int64
	n := 0
	for specs != "" || n == 0 {
		var elem string
		elem, specs, _ = strings.Cut(specs, ",")
		elem = trimOWS(elem)
		if elem == "" {
			if specs == "" && n == 0 {
				return nil, ErrMalformedRange // "bytes=" or only commas
			}
			continue // RFC 9110 §5.6.1.2: ignore empty list elements
		}
		n++
		if n > MaxRanges {
			// Keep checking syntax: a malformed header is ignored for that
			// reason first, so the outcome does not depend on its length.
			if err := checkSpec(elem); err != nil {
				return nil, err
			}
			continue
		}
		r, ok, err := parseSpec(elem, size)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, r)
			total += r.Length() // no overflow: each length ≤ size
			if total < 0 {
				total = math.MaxInt64
			}
		}
	}
	switch {
	case n > MaxRanges:
		return nil, ErrExcessiveRanges
	case len(out) == 0:
		return nil, ErrUnsatisfiableRange
	case len(out) > 1 && total > size:
		return nil, ErrExcessiveRanges
	}
	return out, nil
}

func checkSpec(elem string) error {
	_, _, err := parseSpec(elem, 1)
	return err
}

// parseSpec parses one range-spec. ok reports whether it is satisfiable.
func parseSpec(elem string, size int64) (r Range, ok bool, err error) {
	first, last, found := strings.Cut(elem, "-")
	if !found {
		return Range{}, false, ErrMalformedRange
	}
	if first == "" { // suffix-range: "-" suffix-length
		n, valid := parseDigits(last)
		if !valid {
			return Range{}, false, ErrMalformedRange
		}
		if n == 0 || size <= 0 {
			return Range{}, false, nil
		}
		n = min(n, size)
		return Range{Start: size - n, End: size - 1}, true, nil
	}
	start, valid := parseDigits(first)
	if !valid {
		return Range{}, false, ErrMalformedRange
	}
	end := int64(math.MaxInt64)
	if last != "" {
		if end, valid = parseDigits(last); !valid {
			return Range{}, false, ErrMalformedRange
		}
		if start > end {
			return Range{}, false, ErrMalformedRange // RFC 9110 §14.1.1: invalid
		}
	}
	if start >= size {
		return Range{}, false, nil
	}
	return Range{Start: start, End: min(end, size-1)}, true, nil
}

// parseDigits parses 1*DIGIT, saturating at MaxInt64 instead of failing:
// a last-byte-pos too large for int64 is still a valid position past the
// end and is clamped (RFC 9110 §14.1.2).
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxInt64-int64(c-'0'))/10 {
			n = math.MaxInt64
			continue
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
