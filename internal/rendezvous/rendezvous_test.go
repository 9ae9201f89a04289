package rendezvous

import (
	"math/bits"
	"testing"
)

// A splitmix64 generator seeded with 0 first mixes its state advanced by
// the golden gamma; the published first output is 0xe220a8397b1dcdaf.
func TestMixIsSplitmix64(t *testing.T) {
	if got := Mix(0x9e3779b97f4a7c15); got != 0xe220a8397b1dcdaf {
		t.Errorf("Mix(golden gamma) = %#x, want 0xe220a8397b1dcdaf", got)
	}
	// Inputs differing in one bit give outputs differing in about half.
	for bit := range 64 {
		d := Mix(1<<bit) ^ Mix(0)
		if n := bits.OnesCount64(d); n < 16 || n > 48 {
			t.Errorf("flipping input bit %d flips %d output bits", bit, n)
		}
	}
}
