package appliance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
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
	a, err := New(Config{Listen: "127.1.203.1:0", StoreDir: t.TempDir(), Keys: keys})
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
	fetch("", "")
	if got := a.ClientBytes(); got != 1000 {
		t.Fatalf("after a player's range ClientBytes = %d, want 1000", got)
	}
	fetch(api.MeasurementHeader, "probe")
	fetch(api.MeasurementHeader, "speedtest")
	fetch("X-Ocdn-Fill", "peer")
	if got := a.ClientBytes(); got != 1000 {
		t.Errorf("after probe, speed-test and fill ranges ClientBytes = %d, want still 1000", got)
	}
}
