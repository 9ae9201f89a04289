package measure

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// testReport returns a valid report with n pulses started at now.
func testReport(id string, n int, now time.Time) *Report {
	r := &Report{ID: id, Recipe: "r1", Context: map[string]string{"exp": "a"}, ClientTime: now}
	types := []string{TypeTCPConnect, TypeTLSHandshake, TypeHTTPTTFB, TypeThroughput}
	for i := range n {
		p := Pulse{Target: fmt.Sprintf("t%d", i%3), Appliance: fmt.Sprintf("oca%d", i%2), Site: "site-a",
			Type: types[i%4], Seq: i, Start: now.Add(time.Duration(i) * time.Millisecond),
			ConnectMs: 5 + float64(i), DurationMs: 20, Status: StatusOK}
		switch p.Type {
		case TypeHTTPTTFB:
			p.TTFBMs, p.HTTPStatus = 12, 200
		case TypeThroughput:
			p.Bytes, p.ThroughputBps, p.HTTPStatus = 1<<20, 8e7, 200
		}
		r.Pulses = append(r.Pulses, p)
	}
	return r
}

func randID(rng *rand.Rand) string {
	return fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
}

var testClient = netip.MustParseAddr("198.51.100.7")

// readTable reads every Parquet file of a table with parquet-go.
func readTable[T any](t testing.TB, dir, table string) []T {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, table, "date=*", "hour=*", "*.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	var all []T
	for _, f := range files {
		rows, err := parquet.ReadFile[T](f)
		if err != nil {
			t.Fatalf("reading %s: %v", f, err)
		}
		all = append(all, rows...)
	}
	return all
}

func walFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "wal"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func netipFrom4(b [4]byte) netip.Addr { return netip.AddrFrom4(b) }

// storeIDOf reads the store name an ingester gave dir.
func storeIDOf(t testing.TB, dir string) string {
	t.Helper()
	id, err := loadStoreID(dir)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// recoverDir opens dir as a restarted process would (replaying its WAL),
// flushes everything into Parquet and closes it.
func recoverDir(t testing.TB, dir string, opts Options) {
	t.Helper()
	in, err := Open(dir, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
}
