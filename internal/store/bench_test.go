package store_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ocdn/ocdn/internal/store"
)

// BenchmarkOpen measures how long a store of n objects takes to become
// ready after a clean shutdown (a directory walk and a stat per object,
// nothing re-hashed) and after a crash with every object written since
// the last checkpoint (the worst case: Open re-hashes 64 MiB itself and
// VerifyPending the rest, before they are served). The re-hashing reads
// from the page cache here, so it measures SHA-256, not a disk.
//
//	go test -run XXX -bench Open -benchtime 5x ./internal/store/
func BenchmarkOpen(b *testing.B) {
	for _, tc := range []struct{ objects, size int }{{2000, 64 << 10}, {10000, 4 << 10}} {
		root := b.TempDir()
		s, err := store.Open(root, 0, nil)
		if err != nil {
			b.Fatal(err)
		}
		for i := range tc.objects {
			data := bytes.Repeat([]byte{byte(i), byte(i >> 8), byte(i >> 16), 1}, tc.size/4)
			f := file(fmt.Sprintf("t%04d/f%03d.mp4", i/100, i%100), data)
			if err := s.Put(context.Background(), f, bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
		s.Close()
		mb := float64(tc.objects*tc.size) / 1e6
		name := fmt.Sprintf("%dx%dKiB", tc.objects, tc.size>>10)

		b.Run(name+"/clean", func(b *testing.B) {
			for b.Loop() {
				s, err := store.Open(root, 0, nil)
				if err != nil {
					b.Fatal(err)
				}
				if r := s.Opened(); r.Trusted != tc.objects {
					b.Fatalf("Opened() = %+v, want all trusted", r)
				}
				s.Close()
			}
		})
		b.Run(name+"/crash", func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				os.Remove(filepath.Join(root, "checkpoint.json"))
				b.StartTimer()
				s, err := store.Open(root, 0, nil)
				if err != nil {
					b.Fatal(err)
				}
				r := s.Opened()
				b.ReportMetric(float64(r.Duration.Milliseconds()), "open-ms")
				b.ReportMetric(float64(r.Pending), "pending")
				if _, err := s.VerifyPending(context.Background()); err != nil {
					b.Fatal(err)
				}
				if len(s.List()) != tc.objects {
					b.Fatalf("%d objects served after VerifyPending, want %d", len(s.List()), tc.objects)
				}
				b.StopTimer()
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(mb*float64(b.N)/b.Elapsed().Seconds(), "MB/s")
		})
	}
}
