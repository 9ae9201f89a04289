package sim

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/sim/world"
)

// benchSessions serves b.N sessions on one goroutine through the real
// steering and cache-hit code (Sim.session: demand draws, steer.Engine's
// AppendRanked over the world's RIB, failover, miss classification,
// accounting), in a world warmed as a run's first step is. Run with
// -cpu 1 for the per-core figure.
func benchSessions(b *testing.B, w *world.World) {
	sc, err := LoadScenario("")
	if err != nil {
		b.Fatal(err)
	}
	sc.Churn.File = ""
	sm, err := New(w, sc, Options{Workers: 1})
	if err != nil {
		b.Fatal(err)
	}
	if err := sm.prepare(context.Background()); err != nil {
		b.Fatal(err)
	}
	// Metros in proportion to their subscribers, as a day's steps draw them.
	items := make([]int32, len(sm.metroSubs))
	for i := range items {
		items[i] = int32(i)
	}
	metros := newAlias(items, func(i int) float64 { return sm.metroSubs[i] })
	sh := sm.shards[0]
	sh.c.reset()
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sm.session(sh, rng, int(metros.draw(rng)), 0)
		if len(sh.ends) > 1<<20 {
			sh.ends = sh.ends[:0]
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
	// On a shared machine wall time counts other processes' turns too;
	// per CPU second of this process is the per-core figure.
	if cpu := (cpuTime() - cpu0).Seconds(); cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu, "sessions/cpu-s")
	}
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSessionsTestWorld runs on the small world the tests make.
func BenchmarkSessionsTestWorld(b *testing.B) { benchSessions(b, testWorld(b)) }

// BenchmarkSessionsFullWorld runs on the world `make world` builds (or
// $OCDN_SIM_WORLD): the 1.06M-prefix table and thousands of sites.
func BenchmarkSessionsFullWorld(b *testing.B) {
	path := os.Getenv("OCDN_SIM_WORLD")
	if path == "" {
		path = filepath.Join("..", "..", "world", "world.yaml")
	}
	w, err := world.Load(path)
	if err != nil {
		b.Fatalf("world %s: %v (run make world, or set OCDN_SIM_WORLD)", path, err)
	}
	benchSessions(b, w)
}
