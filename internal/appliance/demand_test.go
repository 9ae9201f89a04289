package appliance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// TestMeasurementsAreNotDemand: bytes served to a player count as demand
// (popularity, offload, misses); the same bytes fetched by a probe or a
// speed test, or by another appliance filling, do not.
func TestMeasurementsAreNotDemand(t *testing.T) {
	const p = "t0001/video_1000k.mp4"
	data := bytes.Repeat([]byte("ocdn"), 64<<10)
	sum := sha256.Sum256(data)
	keys := urlsign.Generate()
	a, err := New(Config{Listeners: listen(t, "127.1.203.1:0"), StoreDir: t.TempDir(), Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Store().Put(context.Background(), content.File{Path: p, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	tok, err := keys.Sign(urlsign.Grant{Scope: "t0001/", Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(header, value string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, a.URL()+"/c/"+tok+"/"+p, nil)
		req.Header.Set("Range", "bytes=0-999")
		if header != "" {
			req.Header.Set(header, value)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent || n != 1000 {
			t.Fatalf("GET with %s: %s, %d bytes", header, resp.Status, n)
		}
	}
	// The server counts after the body is sent, so the client may finish
	// first: wait for the count rather than read it at once.
	waitFor := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for a.ClientBytes() < want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := a.ClientBytes(); got != want {
			t.Fatalf("ClientBytes = %d, want %d", got, want)
		}
	}
	fetch("", "")
	waitFor(1000)
	fetch(api.MeasurementHeader, "probe")
	fetch(api.MeasurementHeader, "speedtest")
	fetch("X-Ocdn-Fill", "peer")
	// A last player's range: once it is counted, the three before it have
	// long been handled; had they counted, the total would be 5000.
	fetch("", "")
	waitFor(2000)
	time.Sleep(50 * time.Millisecond)
	if got := a.ClientBytes(); got != 2000 {
		t.Errorf("after probe, speed-test, fill and a second player range ClientBytes = %d, want 2000", got)
	}
}

// TestDemandSurvivesControlPlaneOutage: demand counted while the control
// plane refuses reports is delivered with the next report that succeeds.
func TestDemandSurvivesControlPlaneOutage(t *testing.T) {
	const p = "t0001/video_1000k.mp4"
	data := bytes.Repeat([]byte("ocdn"), 64<<10)
	sum := sha256.Sum256(data)
	keys := urlsign.Generate()
	var mu sync.Mutex
	refusals, reported := 2, int64(0)
	ctl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/demand" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if refusals > 0 {
			refusals--
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var d api.DemandReport
		json.NewDecoder(r.Body).Decode(&d)
		reported += d.Files[p]
		w.Write([]byte("{}"))
	}))
	defer ctl.Close()
	a, err := New(Config{ID: "a1", Listeners: listen(t, "127.1.203.2:0"), Control: controlAt(ctl.URL, ""), StoreDir: t.TempDir(), Keys: keys, HeartbeatInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Store().Put(context.Background(), content.File{Path: p, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	tok, _ := keys.Sign(urlsign.Grant{Scope: "t0001/", Expires: time.Now().Add(time.Hour)})
	for i := 0; i < 3; i++ {
		resp, err := http.Get(a.URL() + "/c/" + tok + "/" + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		time.Sleep(120 * time.Millisecond) // spread the bytes over several report periods
	}
	want := int64(3 * len(data))
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got, left := reported, refusals
		mu.Unlock()
		if got == want && left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("control plane received %d bytes of demand after %d refusals left, want %d", got, left, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
