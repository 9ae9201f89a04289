package sim

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/sim/world"
)

// benchSessions serves at least b.N sessions on one goroutine through the
// real steering and cache-hit code, a shard's step at a time as a run
// does (runShard: demand draws metro by metro, then serveFetches:
// steer.Engine's AppendRanked over the world's RIB, failover, miss
// classification, accounting), at the evening peak of the first day in a
// world warmed as a run's first step is. Run with -cpu 1 for the per-core
// figure.
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
	// 20:00 UTC: evening in Europe and Africa, afternoon in the Americas.
	t := sc.Start.Add(20 * time.Hour)
	sm.buildTitleTables(t)
	sm.setRates(t)
	sh := sm.shards[0]
	sm.refreshServe()
	sm.views[0].sync(sm)
	sh.use(sm.views[0])
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	n := int64(0)
	for k := 0; n < int64(b.N); k++ {
		sm.runShard(sh, k, t)
		n += sh.c.sessions
	}
	b.StopTimer()
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "sessions/s")
	// On a shared machine wall time counts other processes' turns too;
	// per CPU second of this process is the per-core figure.
	if cpu := (cpuTime() - cpu0).Seconds(); cpu > 0 {
		b.ReportMetric(float64(n)/cpu, "sessions/cpu-s")
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
