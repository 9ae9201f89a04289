package defaults

import (
	"testing"
	"time"
)

func TestPositive(t *testing.T) {
	n, f, d := 0, -1.5, 3*time.Second
	Positive(&n, 5)
	Positive(&f, 0.25)
	Positive(&d, time.Minute) // set: kept
	if n != 5 || f != 0.25 || d != 3*time.Second {
		t.Fatalf("got %d %v %v, want 5 0.25 3s", n, f, d)
	}
}
