package measure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/ocdn/ocdn/internal/cpstore"
	"github.com/ocdn/ocdn/internal/cpstore/pgtest"
)

// openClaims opens the shared claim store at dsn (a SQLite file or
// PostgreSQL) for one replica.
func openClaims(t testing.TB, dsn string) *cpstore.Store {
	t.Helper()
	s, err := cpstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// flakyClaims is a Claims whose database can be switched off.
type flakyClaims struct {
	Claims
	down atomic.Bool
}

var errDatabaseDown = errors.New("injected: database unreachable")

func (f *flakyClaims) ClaimReports(ctx context.Context, holder string, at time.Time, ids []string) (map[string]string, error) {
	if f.down.Load() {
		return nil, errDatabaseDown
	}
	return f.Claims.ClaimReports(ctx, holder, at, ids)
}

// unionCounts counts pulse rows per report id over the stores under root.
func unionCounts(t testing.TB, root string) map[string]int {
	t.Helper()
	files, err := TableFiles(root, "pulses")
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, f := range files {
		rows, err := parquet.ReadFile[PulseRow](f)
		if err != nil {
			t.Fatalf("reading %s: %v", f, err)
		}
		for _, r := range rows {
			n[r.ReportID]++
		}
	}
	return n
}

// Two replicas share claims: whichever stores a report first holds it, the
// other answers "duplicate" and leaves its copy out of Parquet — also when
// both receive it at the same moment, and when the database was down at
// upload time (compaction then waits for it and settles the claim).
func TestClaimsTwoReplicas(t *testing.T) {
	root := t.TempDir()
	// One handle on a SQLite file for both: SQLite is one process's
	// store (replicas share PostgreSQL, as TestClaimsCrash does).
	claims := openClaims(t, filepath.Join(root, "claims.db"))
	now := time.Now().UTC()
	flaky := &flakyClaims{Claims: claims}
	open := func(name string, c Claims) *Ingester {
		// A claim that timed out would make both replicas store a
		// report (correctly: compaction keeps one), which this test
		// counts; on a loaded machine give claims time.
		in, err := Open(filepath.Join(root, name), nil, Options{Claims: c, retryDelay: 10 * time.Millisecond, claimTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	a, b := open("a", flaky), open("b", claims)
	ctx := context.Background()
	ingest := func(in *Ingester, id string) Result {
		t.Helper()
		res, err := in.Ingest(ctx, testClient, testReport(id, 3, now))
		if err != nil {
			t.Fatalf("Ingest(%s) = %v", id, err)
		}
		return res
	}
	if res := ingest(a, "x000000000000000"); res.Duplicate {
		t.Errorf("first upload to a: duplicate, want stored")
	}
	if res := ingest(b, "x000000000000000"); !res.Duplicate {
		t.Errorf("the same report re-sent to b: stored, want duplicate (a holds it)")
	}
	// At the same moment on both: exactly one stores each.
	var stored [2]atomic.Int64
	var wg sync.WaitGroup
	for i := range 100 {
		id := fmt.Sprintf("c%015d", i)
		for r, in := range []*Ingester{a, b} {
			wg.Go(func() {
				res, err := in.Ingest(ctx, testClient, testReport(id, 3, now))
				if err != nil {
					t.Error(err)
				} else if !res.Duplicate {
					stored[r].Add(1)
				}
			})
		}
	}
	wg.Wait()
	if s := stored[0].Load() + stored[1].Load(); s != 100 {
		t.Errorf("100 reports sent to both replicas at once: %d + %d answered stored, want 100 in all", stored[0].Load(), stored[1].Load())
	}
	// The database goes down: both replicas acknowledge from their WAL,
	// and neither can compact until it is back.
	flaky.down.Store(true)
	if res := ingest(a, "d000000000000000"); res.Duplicate {
		t.Errorf("upload to a without the database: duplicate, want stored")
	}
	if res := ingest(b, "d000000000000000"); res.Duplicate {
		t.Errorf("upload to b: duplicate, want stored (a could not claim it)")
	}
	fctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	if err := a.Flush(fctx); !errors.Is(err, errDatabaseDown) {
		t.Errorf("a.Flush with the database down = %v, want the claim error", err)
	}
	cancel()
	flaky.down.Store(false)
	// Flush answers the last attempt's error until the compactor's
	// retry (every 10 ms here) has run.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for err := a.Flush(ctx); err != nil; err = a.Flush(ctx) {
		if !errors.Is(err, errDatabaseDown) {
			t.Fatal(err)
		}
		<-tick.C
	}
	for _, in := range []*Ingester{a, b} {
		if err := in.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := in.Close(); err != nil {
			t.Fatal(err)
		}
	}
	counts := unionCounts(t, root)
	if len(counts) != 102 {
		t.Errorf("union holds %d reports, want 102", len(counts))
	}
	for id, n := range counts {
		if n != 3 {
			t.Errorf("report %s: %d pulse rows in the union, want 3 (stored once)", id, n)
		}
	}
	// ocdn measure export reads the same union.
	if n, err := Export(io.Discard, root, "pulses", "csv"); err != nil || n != 102*3 {
		t.Errorf("Export(root of both stores) = %d rows, %v; want %d", n, err, 102*3)
	}
}

// A second ingester on a directory in use is refused: replicas must not
// share one.
func TestOpenRefusesDirectoryInUse(t *testing.T) {
	dir := t.TempDir()
	in, err := Open(dir, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, nil, Options{}); !errors.Is(err, ErrDirInUse) {
		t.Errorf("second Open = %v, want ErrDirInUse", err)
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	in, err = Open(dir, nil, Options{})
	if err != nil {
		t.Fatalf("Open after Close = %v", err)
	}
	in.Close()
}

const (
	claimChildDirEnv   = "OCDN_MEASURE_CLAIM_CHILD_DIR"
	claimChildDSNEnv   = "OCDN_MEASURE_CLAIM_CHILD_DSN"
	claimChildPointEnv = "OCDN_MEASURE_CLAIM_CHILD_POINT"
	claimChildSeedEnv  = "OCDN_MEASURE_CLAIM_CHILD_SEED"
	claimChildIDEnv    = "OCDN_MEASURE_CLAIM_CHILD_ID"
)

// TestClaimCrashChild is the child of the claim crash tests. With a crash
// point it uploads the report named by claimChildIDEnv (then flushes, for the compaction points)
// and kills itself with SIGKILL at that point. With a seed it uploads
// reports whose ids come from the seed — a sibling child with the same
// seed uploads the same ids, as a client failing over would — from 4
// goroutines until the parent kills it, printing "ack <id> <duplicate>".
func TestClaimCrashChild(t *testing.T) {
	dir := os.Getenv(claimChildDirEnv)
	if dir == "" {
		t.Skip("child process of the claim crash tests")
	}
	claims, err := cpstore.Open(context.Background(), os.Getenv(claimChildDSNEnv))
	if err != nil {
		fmt.Println("open-error", err)
		os.Exit(3)
	}
	point := os.Getenv(claimChildPointEnv)
	// Few segments: compacting one takes a second under the race
	// detector. Kills inside compaction are claimCrashWindows' job;
	// the random kills here aim at uploads racing on one id.
	opts := Options{Claims: claims, SegmentMaxAge: time.Second, claimTimeout: time.Minute,
		hook: func(p string) {
			if p == point {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		}}
	in, err := Open(dir, nil, opts)
	if err != nil {
		fmt.Println("open-error", err)
		os.Exit(3)
	}
	ctx := context.Background()
	now := time.Now().Add(-time.Minute)
	if point != "" {
		id := os.Getenv(claimChildIDEnv)
		res, err := in.Ingest(ctx, testClient, testReport(id, 3, now))
		if err != nil {
			fmt.Println("error", err)
			os.Exit(4)
		}
		fmt.Printf("ack %s %v\n", id, res.Duplicate)
		in.Flush(ctx)
		os.Exit(5) // not killed: the parent reports it
	}
	seed, _ := strconv.ParseUint(os.Getenv(claimChildSeedEnv), 10, 64)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for range 100000 {
				id := randID(rng)
				res, err := in.Ingest(ctx, testClient, testReport(id, 3, now))
				if err != nil {
					fmt.Println("error", err)
					os.Exit(4)
				}
				mu.Lock()
				fmt.Printf("ack %s %v\n", id, res.Duplicate)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	os.Exit(5)
}

func killedBySIGKILL(cmd *exec.Cmd) bool {
	cmd.Wait()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// TestClaimsCrash runs the crash tests of the claim protocol against one
// PostgreSQL server shared by child processes, as replicas share one.
func TestClaimsCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and kills child processes")
	}
	dsn := pgtest.Start(t)
	t.Run("windows", func(t *testing.T) { claimCrashWindows(t, dsn) })
	t.Run("random", func(t *testing.T) { claimCrashRandom(t, dsn) })
}

// claimCrashWindows: replica a dies at each crash window of the claim
// protocol; the client re-sends the report to replica b; a restarts. The
// report ends up in the union of both stores exactly once, held by the
// store the protocol says.
func claimCrashWindows(t *testing.T, dsn string) {
	for _, tc := range []struct {
		point string
		acked bool // the child printed its ack before dying
		// bDup: b answers the re-sent report as a duplicate; holder is
		// the store whose Parquet has it.
		bDup   bool
		holder string
	}{
		// fsynced, not claimed: b claims it first, a drops its copy.
		{"wal-synced", false, false, "b"},
		// claimed, answer lost: b finds a's claim, a writes it after
		// restarting.
		{"claimed", false, true, "a"},
		// acknowledged, killed while compacting (claims made, Parquet
		// not yet written; then Parquet written, segment not removed).
		{"compact-claimed", true, true, "a"},
		{"compact-written", true, true, "a"},
	} {
		t.Run(tc.point, func(t *testing.T) {
			root := t.TempDir()
			id := "crash-window-" + tc.point // a fresh id per case
			cmd, lines := startChild(t, "TestClaimCrashChild", claimChildDirEnv+"="+filepath.Join(root, "a"),
				claimChildDSNEnv+"="+dsn, claimChildPointEnv+"="+tc.point, claimChildIDEnv+"="+id)
			acked := false
			for line := range lines {
				if strings.HasPrefix(line, "ack ") {
					acked = true
				} else {
					t.Errorf("child: %s", line)
				}
			}
			if !killedBySIGKILL(cmd) {
				t.Fatalf("child was not killed at %s (%v)", tc.point, cmd.ProcessState)
			}
			if acked != tc.acked {
				t.Errorf("child acknowledged: %v, want %v", acked, tc.acked)
			}
			claims := openClaims(t, dsn)
			b, err := Open(filepath.Join(root, "b"), nil, Options{Claims: claims})
			if err != nil {
				t.Fatal(err)
			}
			res, err := b.Ingest(context.Background(), testClient, testReport(id, 3, time.Now().Add(-time.Minute)))
			if err != nil || res.Duplicate != tc.bDup {
				t.Errorf("re-send to b = %+v, %v; want duplicate %v", res, err, tc.bDup)
			}
			a, err := Open(filepath.Join(root, "a"), nil, Options{Claims: claims})
			if err != nil {
				t.Fatal(err)
			}
			for _, in := range []*Ingester{a, b} {
				if err := in.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
				if err := in.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if n := unionCounts(t, root)[id]; n != 3 {
				t.Errorf("union: %d pulse rows of the report, want 3 (stored once)", n)
			}
			if n := unionCounts(t, filepath.Join(root, tc.holder))[id]; n != 3 {
				t.Errorf("store %s: %d pulse rows of the report, want 3 (it holds the claim)", tc.holder, n)
			}
		})
	}
}

// claimCrashRandom: two replicas receive the same reports at the same time
// (a client failing over sends each to both) and are SIGKILLed at random
// moments, round after round over the same directories. Every
// acknowledged report ends up in the union exactly once, and no report is
// acknowledged as new by both. (That last holds while claims at upload
// get an answer: the children wait a minute for one rather than the
// default two seconds, which a loaded machine can exceed.)
func claimCrashRandom(t *testing.T, dsn string) {
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	acked := map[string]bool{}
	newBy := map[string]string{}
	const rounds = 3
	for round := range rounds {
		seed := rng.Uint64()
		var cmds [2]*exec.Cmd
		var outs [2]<-chan string
		for r, name := range []string{"a", "b"} {
			cmds[r], outs[r] = startChild(t, "TestClaimCrashChild", claimChildDirEnv+"="+filepath.Join(root, name),
				claimChildDSNEnv+"="+dsn, claimChildSeedEnv+"="+strconv.FormatUint(seed, 10))
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for r, name := range []string{"a", "b"} {
			target := 1 + rng.IntN(300)
			delay := time.Duration(rng.IntN(3000)) * time.Microsecond
			wg.Go(func() {
				n := 0
				killed := false
				for line := range outs[r] {
					f := strings.Fields(line)
					switch {
					case len(f) == 3 && f[0] == "ack":
						mu.Lock()
						acked[f[1]] = true
						if f[2] == "false" {
							if other, ok := newBy[f[1]]; ok {
								t.Errorf("round %d: %s acknowledged as new by %s and by %s", round, f[1], other, name)
							}
							newBy[f[1]] = name
						}
						mu.Unlock()
						n++
					default:
						t.Errorf("round %d: child %s: %s", round, name, line)
					}
					if !killed && n >= target {
						time.Sleep(delay) // let the kill land mid-fsync, mid-claim or mid-compaction
						cmds[r].Process.Signal(syscall.SIGKILL)
						killed = true
					}
				}
				if !killedBySIGKILL(cmds[r]) {
					t.Errorf("round %d: child %s exited by itself after %d acks", round, name, n)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	if len(acked) == 0 {
		t.Fatal("no report was acknowledged")
	}
	claims := openClaims(t, dsn)
	for _, name := range []string{"a", "b"} {
		recoverDir(t, filepath.Join(root, name), Options{Claims: claims})
	}
	counts := unionCounts(t, root)
	for id, n := range counts {
		if n != 3 {
			t.Errorf("report %s: %d pulse rows in the union, want 3", id, n)
		}
	}
	for id := range acked {
		if counts[id] == 0 {
			t.Errorf("acknowledged report %s is missing from the union", id)
		}
	}
	t.Logf("%d reports acknowledged by either replica, %d in the union (the rest were stored but killed before their ack)", len(acked), len(counts))
}
