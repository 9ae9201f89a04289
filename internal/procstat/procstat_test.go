package procstat

import (
	"crypto/sha256"
	"os"
	"runtime"
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

func TestBusyMeter(t *testing.T) {
	busy, total, err := MachineCPU()
	if err != nil {
		t.Fatal(err)
	}
	if busy <= 0 || total < busy {
		t.Fatalf("MachineCPU = busy %v, total %v: want 0 < busy <= total", busy, total)
	}
	m := NewBusyMeter(time.Second)
	if f := m.Fraction(); f != 0 {
		t.Errorf("Fraction before a window passed = %v, want 0", f)
	}
	// Keep every CPU busy for a window: the fraction must show most of it
	// (other processes may idle, never make the CPUs less busy than this).
	stop := make(chan struct{})
	for range runtime.NumCPU() {
		go func() {
			var sum [32]byte
			for {
				select {
				case <-stop:
					return
				default:
					sum = sha256.Sum256(sum[:])
				}
			}
		}()
	}
	time.Sleep(1100 * time.Millisecond)
	f := m.Fraction()
	close(stop)
	if f < 0.7 || f > 1 {
		t.Errorf("Fraction with every CPU spinning = %.2f, want at least 0.7", f)
	}
	if g := m.Fraction(); g != f {
		t.Errorf("Fraction within the window = %.2f, then %.2f: want the same window's figure", f, g)
	}
}
