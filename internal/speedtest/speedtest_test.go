package speedtest

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/cpclient"
	"github.com/ocdn/ocdn/internal/cpclient/cptest"
	"github.com/ocdn/ocdn/internal/netem"
	"github.com/ocdn/ocdn/internal/steer"
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

// TestTargetsAndRunSurviveReplicaKill: a speed test session against two
// control-plane replicas whose first dies after answering the title: the
// steering request goes to the live replica, the test runs to the end on
// the URLs it got, and the next session asks the live replica only.
func TestTargetsAndRunSurviveReplicaKill(t *testing.T) {
	cat, err := content.Synth(content.SynthSpec{Titles: 1, LadderKbps: []int{400, 3000}, Duration: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	title := cat.Titles()[0]
	a1, a2 := fileServer(t), fileServer(t)
	pl := cptest.New(t, cptest.Config{Catalog: cat, Steer: func(call int, file string) []steer.Choice {
		return []steer.Choice{{URL: a1.URL + "/c/tok/" + file, Appliance: "oca1"}, {URL: a2.URL + "/c/tok/" + file, Appliance: "oca2"}}
	}})
	a, b := pl.Replica(0), pl.Replica(1)
	a.KillAfter(1)
	var dials cptest.Dials
	cp := cpclient.Must(pl.URLs(), dials.Client(), "")

	file, urls, err := Targets(context.Background(), cp, title, "", 5)
	if err != nil {
		t.Fatalf("Targets with a replica killed mid-session: %v", err)
	}
	if want := title + "/video_3000k.mp4"; file != want {
		t.Errorf("Targets chose %s, want the largest file %s", file, want)
	}
	if want := []string{a1.URL + "/c/tok/" + file, a2.URL + "/c/tok/" + file}; !slices.Equal(urls, want) {
		t.Errorf("Targets URLs = %v, want %v", urls, want)
	}
	if a.Hits("/v1/titles/"+title) != 1 || a.Hits("/v1/steer") != 0 || b.Hits("/v1/steer") != 1 {
		t.Errorf("title on the killed replica %d, steering on it %d and on the live one %d; want 1, 0, 1",
			a.Hits("/v1/titles/"+title), a.Hits("/v1/steer"), b.Hits("/v1/steer"))
	}
	res, err := Run(context.Background(), Config{URLs: urls, MaxConns: 2, Window: 50 * time.Millisecond,
		StableWindows: 3, Tolerance: 0.5, MaxDuration: 2 * time.Second, LatencyProbes: 1})
	if err != nil || res.Bytes == 0 {
		t.Fatalf("Run on the steered URLs = %+v, %v; want a completed test", res, err)
	}

	before := dials.To(a.URL)
	if _, _, err := Targets(context.Background(), cp, "", file, 5); err != nil {
		t.Fatalf("second session: %v", err)
	}
	if got := dials.To(a.URL) - before; got != 0 || b.Hits("/v1/steer") != 2 {
		t.Errorf("second session: %d dials to the dead replica, %d steering requests on the live one; want 0 and 2", got, b.Hits("/v1/steer"))
	}
}

func TestTargetsErrors(t *testing.T) {
	cat, err := content.Synth(content.SynthSpec{Titles: 1, LadderKbps: []int{400}, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pl := cptest.New(t, cptest.Config{Replicas: 1, Catalog: cat, Steer: func(int, string) []steer.Choice { return nil }})
	cp := cpclient.Must(pl.URLs(), nil, "")
	if _, _, err := Targets(context.Background(), cp, "nope", "", 5); err == nil || !strings.Contains(err.Error(), "title nope") {
		t.Errorf("Targets for an unknown title = %v, want an error naming it", err)
	}
	if _, _, err := Targets(context.Background(), cp, cat.Titles()[0], "", 5); !errors.Is(err, ErrNoTargets) {
		t.Errorf("Targets with steering empty = %v, want ErrNoTargets", err)
	}
}
