package rib

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"
)

// clientAddrs returns n addresses inside random prefixes of the table, so
// that lookups measure the routed case clients actually hit.
func clientAddrs(prefixes []netip.Prefix, n int) []netip.Addr {
	rng := rand.New(rand.NewPCG(7, 7))
	out := make([]netip.Addr, n)
	for i := range out {
		p := prefixes[rng.IntN(len(prefixes))]
		b := p.Addr().AsSlice()
		for j := range b {
			bitsBefore := j * 8
			if bitsBefore+8 > p.Bits() {
				keep := max(0, p.Bits()-bitsBefore)
				mask := byte(0xff >> keep)
				b[j] = b[j]&^mask | byte(rng.IntN(256))&mask
			}
		}
		out[i], _ = netip.AddrFromSlice(b)
	}
	return out
}

func BenchmarkLookupFullTable(b *testing.B) {
	prefixes, cands := loadFullTable(b)
	tbl, err := NewTable(cands)
	if err != nil {
		b.Fatal(err)
	}
	addrs := clientAddrs(prefixes, 1<<16)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, ok := tbl.Lookup(addrs[i&(len(addrs)-1)]); !ok {
			b.Fatal("client address not routed")
		}
		i++
	}
}

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func BenchmarkBuildFullTable(b *testing.B) {
	_, cands := loadFullTable(b)
	benchBuildHeap(b, func() (any, error) { return NewTable(cands) })
}

// BenchmarkRIBReplaceFullTable is the same build through the RIB, which
// also keeps the appliance's prefix set for later Replace and Drop.
func BenchmarkRIBReplaceFullTable(b *testing.B) {
	_, cands := loadFullTable(b)
	benchBuildHeap(b, func() (any, error) {
		r := New()
		return r, r.Replace("global", cands["global"])
	})
}

// benchBuildHeap times build and reports the live heap what it built
// holds, measured outside the timer.
func benchBuildHeap(b *testing.B, build func() (any, error)) {
	var heap uint64
	for b.Loop() {
		before := heapInUse()
		built, err := build()
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		heap = heapInUse() - before
		runtime.KeepAlive(built)
		b.StartTimer()
	}
	b.ReportMetric(float64(heap)/1e6, "heap-MB")
}

// BenchmarkApplyWithConcurrentLookups applies single-route updates (an
// embedded appliance announcing and withdrawing full-table prefixes) while
// another goroutine looks up client addresses non-stop, as steering does.
func BenchmarkApplyWithConcurrentLookups(b *testing.B) {
	prefixes, cands := loadFullTable(b)
	routes := cands["global"]
	r := New()
	if err := r.Replace("global", routes); err != nil {
		b.Fatal(err)
	}
	addrs := clientAddrs(prefixes, 1<<16)
	rng := rand.New(rand.NewPCG(3, 3))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var lookups int
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				lookups = i
				return
			default:
			}
			r.Snapshot().Lookup(addrs[i&(len(addrs)-1)])
		}
	})
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		rt := Route{Prefix: prefixes[rng.IntN(len(prefixes))], Attrs: Attrs{LocalPref: 200, ASPath: []uint32{64500}}}
		if rng.IntN(2) == 0 {
			if err := r.Apply("isp1", []Route{rt}, nil); err != nil {
				b.Fatal(err)
			}
		} else {
			if err := r.Apply("isp1", nil, []netip.Prefix{rt.Prefix}); err != nil {
				b.Fatal(err)
			}
		}
	}
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "updates/s")
	b.ReportMetric(float64(lookups)/elapsed.Seconds(), "lookups/s")
}

func BenchmarkLoadMRTUpdates(b *testing.B) {
	data := readData(b, "ris-updates.20160811.1600.gz")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := LoadMRT(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
