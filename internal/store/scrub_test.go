package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/metrictest"
	"github.com/ocdn/ocdn/internal/store"
	"github.com/ocdn/ocdn/internal/store/storetest"
)

func TestScrubOnceQuarantinesCorruptObjects(t *testing.T) {
	root := t.TempDir()
	s := open(t, root, 0)
	good1 := put(t, s, "t1/a.mp4", bytes.Repeat([]byte("a"), 300<<10))
	bad := put(t, s, "t1/b.mp4", bytes.Repeat([]byte("b"), 300<<10))
	gone := put(t, s, "t2/c.mp4", []byte("deleted behind the store's back"))
	good2 := put(t, s, "t2/d.mp4", []byte("d"))
	flipByte(t, storetest.ObjectFile(root, bad), 200<<10)
	if err := os.Remove(storetest.ObjectFile(root, gone)); err != nil {
		t.Fatal(err)
	}
	_, _, gen := s.Usage()

	problems, err := s.ScrubOnce(context.Background(), 1<<40)
	if err != nil {
		t.Fatalf("ScrubOnce = %v", err)
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.Path)
	}
	if diff := cmp.Diff([]string{"t1/b.mp4", "t2/c.mp4"}, got); diff != "" {
		t.Errorf("ScrubOnce problems = %+v; paths (-want +got):\n%s", problems, diff)
	}
	if diff := cmp.Diff([]string{good1.Path, good2.Path}, paths(s.List())); diff != "" {
		t.Errorf("objects after scrub (-want +got):\n%s", diff)
	}
	if used, _, gen2 := s.Usage(); used != good1.Size+good2.Size || gen2 == gen {
		t.Errorf("Usage() = %d, gen %d; want %d and a new generation (was %d)", used, gen2, good1.Size+good2.Size, gen)
	}
	if got := read(t, s, good1.Path); !bytes.Equal(got, bytes.Repeat([]byte("a"), 300<<10)) {
		t.Errorf("good object changed by the scrubber")
	}
	q := tree(t, filepath.Join(root, "quarantine"))
	if len(q) != 1 || filepath.Dir(q[0]) != "t1" {
		t.Errorf("quarantine/ holds %q, want the one corrupt file under t1/", q)
	}
	if _, err := os.Stat(storetest.ObjectFile(root, bad)); !os.IsNotExist(err) {
		t.Errorf("corrupt object still in objects/: %v", err)
	}
	st := s.ScrubStats()
	want := store.ScrubStats{Passes: 1, Objects: 4, Bytes: uint64(good1.Size + bad.Size + good2.Size), Quarantined: 2}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("ScrubStats (-want +got):\n%s", diff)
	}
	// A fresh copy can be filled again, and a second pass finds nothing.
	put(t, s, bad.Path, bytes.Repeat([]byte("b"), 300<<10))
	if problems, err := s.ScrubOnce(context.Background(), 1<<40); err != nil || len(problems) != 0 {
		t.Errorf("second ScrubOnce = %+v, %v; want no problems", problems, err)
	}
	// The index a restart rebuilds agrees: the quarantined file is gone.
	if diff := cmp.Diff(s.List(), open(t, root, 0).List()); diff != "" {
		t.Errorf("List after reopen (-before +after):\n%s", diff)
	}
}

// TestScrubPacesReads runs the background scrubber in a synctest bubble:
// the fake clock shows it never reads faster than its rate, finishes a
// pass, quarantines, and returns when its context ends.
func TestScrubPacesReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		root := t.TempDir()
		s := open(t, root, 0)
		var total int64
		for _, p := range []string{"t1/a", "t1/b", "t1/c", "t1/d"} {
			total += put(t, s, p, bytes.Repeat([]byte(p), 128<<10)).Size // 512 KiB each
		}
		bad := file("t1/c", bytes.Repeat([]byte("t1/c"), 128<<10))
		flipByte(t, storetest.ObjectFile(root, bad), 1)

		const rate = 256 << 10 // bytes per second
		const burst = 256 << 10
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Scrub(ctx, rate, nil) }()

		start := time.Now()
		for range 4 {
			time.Sleep(time.Second)
			synctest.Wait()
			elapsed := time.Since(start).Seconds()
			if got, limit := s.ScrubStats().Bytes, uint64(burst+rate*elapsed); got > limit {
				t.Errorf("after %.0fs scrubbed %d bytes, more than the %d the rate allows", elapsed, got, limit)
			}
		}
		if got := s.ScrubStats().Bytes; got < 3*rate {
			t.Errorf("after 4s scrubbed only %d bytes at %d bytes/s", got, rate)
		}
		time.Sleep(time.Duration(total/rate) * time.Second)
		synctest.Wait()
		if st := s.ScrubStats(); st.Passes != 1 || st.Quarantined != 1 {
			t.Errorf("ScrubStats after one pass's time = %+v, want 1 pass and 1 quarantined", st)
		}
		if _, ok := s.Lookup("t1/c"); ok {
			t.Error("corrupt t1/c still in the index")
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Scrub returned %v after cancel, want nil", err)
		}
	})
}

// TestScrubYieldsWhileBusy: while its busy signal is up the scrubber reads
// at a tenth of its rate (and says so in its rate gauge), and at the full
// rate again once it drops.
func TestScrubYieldsWhileBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := open(t, t.TempDir(), 0)
		for _, p := range []string{"t1/a", "t1/b", "t1/c", "t1/d"} {
			put(t, s, p, bytes.Repeat([]byte(p), 256<<10)) // 1 MiB each
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(s.Collectors()...)
		rateNow := func() float64 {
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				if mf.GetName() == "ocdn_store_scrub_rate_bytes_per_second" {
					return mf.Metric[0].GetGauge().GetValue()
				}
			}
			t.Fatal("no ocdn_store_scrub_rate_bytes_per_second")
			return 0
		}
		const rate = 256 << 10 // bytes per second
		const burst = 256 << 10
		var busy atomic.Bool
		busy.Store(true)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Scrub(ctx, rate, busy.Load) }()

		time.Sleep(8 * time.Second)
		synctest.Wait()
		slow := s.ScrubStats().Bytes
		if limit := uint64(burst + 8*rate/store.ScrubYield); slow > limit {
			t.Errorf("busy for 8s: scrubbed %d bytes, more than the %d a tenth of the rate allows", slow, limit)
		}
		if slow == 0 {
			t.Error("busy for 8s: scrubbed nothing; it must slow down, not stop")
		}
		if got := rateNow(); got != rate/store.ScrubYield {
			t.Errorf("rate gauge while busy = %v, want %v", got, rate/store.ScrubYield)
		}
		busy.Store(false)
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if fast := s.ScrubStats().Bytes - slow; fast < 3*rate {
			t.Errorf("4s after busy dropped: scrubbed %d bytes, want at least %d at the full rate", fast, 3*rate)
		}
		if got := rateNow(); got != rate {
			t.Errorf("rate gauge once idle = %v, want %v", got, rate)
		}
		cancel()
		<-done
		if got := rateNow(); got != 0 {
			t.Errorf("rate gauge after Scrub returned = %v, want 0", got)
		}
	})
}

func TestScrubRejectsBadRate(t *testing.T) {
	s := open(t, t.TempDir(), 0)
	if err := s.Scrub(context.Background(), 0, nil); err == nil {
		t.Error("Scrub(rate 0) = nil, want an error")
	}
}

// TestMetricNames lints the store's metrics: Prometheus conventions, the
// ocdn_store_ prefix, and a unit (or _objects, a count) at the end.
func TestMetricNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(open(t, t.TempDir(), 0).Collectors()...)
	for _, mf := range metrictest.Lint(t, reg, "ocdn_store_") {
		name := mf.GetName()
		ok := false
		for _, u := range []string{"_total", "_bytes", "_seconds", "_objects", "_bytes_per_second"} {
			ok = ok || strings.HasSuffix(name, u)
		}
		if !ok {
			t.Errorf("metric %s: name should end in a unit", name)
		}
	}
}
