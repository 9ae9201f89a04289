package measure

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// BenchmarkIngestHTTP posts b.N reports of 20 pulses over real HTTP on
// loopback from 64 concurrent clients, each bound to its own source
// address in a distinct /24 of 127.64.0.0/16 (so the per-prefix rate
// limiter works as in production; its rate is raised so that it measures
// the ingest path, not the limit). After the timed part it compacts and
// checks that the Parquet files hold exactly the pulses acknowledged.
// OCDN_BENCH_DIR puts the ingest directory somewhere other than the test's
// temporary directory (it should be on a real disk: fsync is the cost).
func BenchmarkIngestHTTP(b *testing.B) {
	const pulsesPerReport, clients = 20, 64
	dir := b.TempDir()
	if d := os.Getenv("OCDN_BENCH_DIR"); d != "" {
		var err error
		if dir, err = os.MkdirTemp(d, "bench-ingest-"); err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(dir)
	}
	in, err := Open(dir, nil, Options{})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: in.Handler(RateLimit{PerSecond: 1e6, Burst: 1e6})}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/v1/reports"

	placeholder := "IDIDIDIDIDIDIDIDIDIDIDIDIDIDIDID"
	tmpl, err := json.Marshal(testReport(placeholder, pulsesPerReport, time.Now().Add(-time.Second)))
	if err != nil {
		b.Fatal(err)
	}
	var next, accepted, failed atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.SetBytes(int64(len(tmpl)))
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		local := &net.TCPAddr{IP: net.IPv4(127, 64, byte(c), 1)}
		hc := &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{LocalAddr: local}).DialContext,
			MaxIdleConnsPerHost: 1,
		}}
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				body := bytes.Replace(tmpl, []byte(placeholder), fmt.Appendf(nil, "%032x", i), 1)
				resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				var ar AcceptResponse
				json.NewDecoder(resp.Body).Decode(&ar)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !ar.Accepted || ar.Duplicate {
					failed.Add(1)
					continue
				}
				accepted.Add(int64(ar.Pulses))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(accepted.Load())/elapsed.Seconds(), "pulses/s")
	b.ReportMetric(float64(accepted.Load())/pulsesPerReport/elapsed.Seconds(), "reports/s")

	if err := in.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	if err := in.Close(); err != nil {
		b.Fatal(err)
	}
	stored := countRows(b, filepath.Join(dir, "pulses"))
	if failed.Load() != 0 || stored != accepted.Load() || accepted.Load() != int64(b.N*pulsesPerReport) {
		b.Fatalf("sent %d pulses, %d reports failed, %d pulses acknowledged, %d rows in Parquet",
			b.N*pulsesPerReport, failed.Load(), accepted.Load(), stored)
	}
	b.Logf("%d reports: %d pulses acknowledged in %v, %d rows in Parquet after compaction: nothing lost",
		b.N, accepted.Load(), elapsed.Round(time.Millisecond), stored)
}

// countRows counts the rows of every Parquet file under dir from the
// file footers.
func countRows(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".parquet" {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		pf, err := parquet.OpenFile(f, st.Size())
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		n += pf.NumRows()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}
