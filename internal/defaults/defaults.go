// Package defaults fills the unset fields of settings structs. ocdn's
// settings use the zero value (or any value at or below zero, which is
// never meaningful for a count, a duration, a rate or a share) for "use
// the default", so each settings type's withDefaults is a list of
// Positive calls rather than a list of if-blocks.
package defaults

// Number is the field types Positive fills.
type Number interface {
	~int | ~int32 | ~int64 | ~uint32 | ~float64 // ~int64 covers time.Duration
}

// Positive sets *field to def when it is zero or negative.
func Positive[T Number](field *T, def T) {
	if *field <= 0 {
		*field = def
	}
}
