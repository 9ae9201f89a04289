package procstat

import (
	"crypto/sha256"
	"os"
	"testing"
	"time"
)

func TestCPU(t *testing.T) {
	before, err := CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the counter moves (it counts in 10 ms ticks).
	deadline := time.Now().Add(30 * time.Second)
	var sum [32]byte
	for {
		for range 10000 {
			sum = sha256.Sum256(sum[:])
		}
		after, err := CPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if after > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU(self) stayed at %v while burning CPU", before)
		}
	}
	if _, err := CPU(-1); err == nil {
		t.Error("CPU(-1) = nil error")
	}
}
