package speedtest

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/netem"
)

// zeros is an io.ReadSeeker of size zero bytes.
type zeros struct{ size, off int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.off >= z.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), z.size-z.off))
	clear(p[:n])
	z.off += int64(n)
	return n, nil
}

func (z *zeros) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		z.off = off
	case io.SeekCurrent:
		z.off += off
	case io.SeekEnd:
		z.off = z.size + off
	}
	return z.off, nil
}

func fileServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "f", time.Time{}, &zeros{size: 64 << 20})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestEstimateMatchesBottleneck(t *testing.T) {
	a, b := fileServer(t), fileServer(t)
	const bw = 20e6
	const rtt = 20 * time.Millisecond
	access := netem.NewBottleneck(bw)
	dial := netem.Dialer(nil, func(netip.AddrPort) (netem.Link, bool) {
		return netem.Link{RTT: rtt, Shared: access}, true
	})
	res, err := Run(context.Background(), Config{URLs: []string{a.URL + "/f", b.URL + "/f"}, Dial: dial,
		MaxConns: 4, MaxDuration: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	errPct := 100 * (res.DownloadBps - bw) / bw
	t.Logf("estimate %.3f Mbit/s (error %+.2f%%), stable %v, %d connections, %d windows in the estimate, %.1fs; latency unloaded %.1fms loaded %.1fms",
		res.DownloadBps/1e6, errPct, res.Stable, res.Connections, res.EstimateWindows, res.DurationMs/1000, res.UnloadedLatencyMs, res.LoadedLatencyMs)
	if math.Abs(errPct) > 5 {
		t.Errorf("estimate through a 20 Mbit/s bottleneck = %.3f Mbit/s, want within 5%%", res.DownloadBps/1e6)
	}
	if res.UnloadedLatencyMs < float64(rtt.Milliseconds()) || res.UnloadedLatencyMs > float64(rtt.Milliseconds())+5 {
		t.Errorf("unloaded latency = %.1fms, want %v + at most 5ms", res.UnloadedLatencyMs, rtt)
	}
	if res.LoadedLatencyMs <= res.UnloadedLatencyMs {
		t.Errorf("loaded latency %.1fms is not above unloaded %.1fms: the download should queue at the bottleneck", res.LoadedLatencyMs, res.UnloadedLatencyMs)
	}
	if res.Connections < 1 || res.Connections > 4 {
		t.Errorf("connections = %d, want 1 to 4", res.Connections)
	}
}

func TestNoTargets(t *testing.T) {
	if _, err := Run(context.Background(), Config{}); err != ErrNoTargets {
		t.Errorf("Run with no URLs = %v, want ErrNoTargets", err)
	}
}

func TestServerErrorFails(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	if _, err := Run(context.Background(), Config{URLs: []string{srv.URL + "/x"}}); err == nil {
		t.Error("Run against a 404 succeeded")
	}
}
