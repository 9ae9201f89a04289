package measure

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const crashDirEnv = "OCDN_MEASURE_CRASH_CHILD_DIR"

// TestCrashChild is the child half of TestCrashSafety: it opens the
// ingester in the given directory (replaying what the last child left),
// re-uploads the ids listed in OCDN_MEASURE_CRASH_RETRY, then uploads new
// reports from 8 goroutines until killed, printing "ack <id>" for every
// upload acknowledged. Segments are tiny and short-lived so that
// compaction runs all the time and the kill lands in it often.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child process of TestCrashSafety")
	}
	in, err := Open(dir, nil, Options{SegmentMaxBytes: 16 << 10, SegmentMaxAge: 20 * time.Millisecond})
	if err != nil {
		fmt.Println("open-error", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	ack := func(id string, res Result) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf("ack %s %v\n", id, res.Duplicate)
	}
	ctx := context.Background()
	start := time.Now().Add(-time.Minute)
	for _, id := range strings.Fields(os.Getenv("OCDN_MEASURE_CRASH_RETRY")) {
		res, err := in.Ingest(ctx, testClient, testReport(id, 3, start))
		if err != nil {
			fmt.Println("error", err)
			os.Exit(4)
		}
		ack(id, res)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
			for time.Since(start) < time.Minute+10*time.Second {
				id := randID(rng)
				res, err := in.Ingest(ctx, testClient, testReport(id, 3, start))
				if err != nil {
					fmt.Println("error", err)
					os.Exit(4)
				}
				ack(id, res)
			}
		})
	}
	wg.Wait()
	os.Exit(5) // not killed in time: the parent reports it
}

// startChild runs the test binary's test named run with env added, and
// returns the command and a channel of its output lines (closed when its
// standard output closes).
func startChild(t *testing.T, run string, env ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() { // owner: the test; ends when the child's stdout closes
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return cmd, lines
}

// TestCrashSafety SIGKILLs an ingesting child at random moments, several
// times over the same directory, then checks that every acknowledged
// report is stored exactly once: read back with parquet-go, and with
// DuckDB as an independent reader.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; slow")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	acked := map[string]bool{}
	var ackedList []string
	const rounds = 6
	for round := range rounds {
		// Re-upload a few ids acknowledged earlier: they must come back
		// as duplicates whatever state the last crash left.
		var retry []string
		for i := 0; i < 5 && len(ackedList) > 0; i++ {
			retry = append(retry, ackedList[rng.IntN(len(ackedList))])
		}
		cmd, lines := startChild(t, "TestCrashChild", crashDirEnv+"="+dir, "OCDN_MEASURE_CRASH_RETRY="+strings.Join(retry, " "))
		// Kill after a random number of acknowledgements (so the
		// moment varies from just after replay to deep into the run).
		target := 1 + rng.IntN(400)
		n := 0
		killed := false
		for line := range lines {
			f := strings.Fields(line)
			switch {
			case len(f) == 3 && f[0] == "ack":
				if f[2] == "false" && acked[f[1]] {
					t.Errorf("round %d: %s acknowledged as new but was acknowledged before", round, f[1])
				}
				if f[2] == "true" && !acked[f[1]] {
					t.Errorf("round %d: %s reported duplicate but never acknowledged", round, f[1])
				}
				if !acked[f[1]] {
					acked[f[1]] = true
					ackedList = append(ackedList, f[1])
				}
				n++
			case len(f) > 0 && (f[0] == "error" || f[0] == "open-error"):
				t.Errorf("round %d: child: %s", round, line)
			}
			if !killed && n >= target {
				// A random extra delay lets the kill land mid-fsync or
				// mid-compaction rather than right after a print.
				time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("round %d: child exited by itself (%v) after %d acks, want SIGKILL", round, err, n)
		}
		t.Logf("round %d: killed after %d acks (target %d), %d retried", round, n, target, len(retry))
	}
	if len(acked) == 0 {
		t.Fatal("no report was acknowledged")
	}

	recoverDir(t, dir, Options{})
	if w := walFiles(t, dir); len(w) != 0 {
		t.Errorf("WAL not empty after Flush and Close: %v", w)
	}

	check := func(reader string, counts map[string]int) {
		t.Helper()
		ids := map[string]int{}
		for k, c := range counts {
			if c != 1 {
				t.Errorf("%s: pulse %s stored %d times, want once", reader, k, c)
			}
			ids[k[:strings.IndexByte(k, '/')]]++
		}
		for id := range acked {
			if ids[id] != 3 {
				t.Errorf("%s: acknowledged report %s has %d of its 3 pulses", reader, id, ids[id])
			}
		}
		t.Logf("%s: %d acknowledged reports, %d stored (the rest were written but killed before their ack)", reader, len(acked), len(ids))
	}
	goCounts := map[string]int{}
	for _, r := range readTable[PulseRow](t, dir, "pulses") {
		goCounts[fmt.Sprintf("%s/%d", r.ReportID, r.Seq)]++
	}
	check("parquet-go", goCounts)
	check("duckdb", duckPulseCounts(t, dir))
}
