package appliance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/cpclient"
	"github.com/ocdn/ocdn/internal/store"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// listen binds addr (port 0 picks one) for New; the test ends with it
// closed.
func listen(t *testing.T, addr string) []net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return []net.Listener{ln}
}

// controlAt is a client of the one control plane at url.
func controlAt(url, token string) *cpclient.Client {
	return cpclient.Must([]string{url}, &http.Client{Timeout: 5 * time.Second}, token)
}

// fakeControl records heartbeats and hands out a fixed manifest.
type fakeControl struct {
	mu       sync.Mutex
	files    []content.File
	draining chan struct{} // closed at the first heartbeat saying draining
	once     sync.Once
}

func (f *fakeControl) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/v1/heartbeat":
		var hb api.Heartbeat
		json.NewDecoder(r.Body).Decode(&hb)
		if hb.Draining {
			f.once.Do(func() { close(f.draining) })
		}
		json.NewEncoder(w).Encode(api.HeartbeatReply{})
	case "/v1/manifest":
		json.NewEncoder(w).Encode(api.Manifest{Files: f.files})
	default:
		http.NotFound(w, r)
	}
}

// TestDrain: after the first signal /healthz says draining and a heartbeat
// says so, a slow in-flight transfer completes, new connections are served
// during the grace period and refused after it.
func TestDrain(t *testing.T) {
	const p = "t0001/video_3000k.mp4"
	data := bytes.Repeat([]byte("0123456789abcdef"), 8<<20/16)
	sum := sha256.Sum256(data)
	file := content.File{Path: p, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Kind: content.KindVideo}
	dir := t.TempDir()
	st, err := store.Open(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(context.Background(), file, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	fc := &fakeControl{files: []content.File{file}, draining: make(chan struct{})}
	ctl := httptest.NewServer(fc)
	defer ctl.Close()

	keys := urlsign.Generate()
	const grace = 600 * time.Millisecond
	a, err := New(Config{ID: "a1", Listeners: listen(t, "127.0.0.1:0"), Control: controlAt(ctl.URL, ""), StoreDir: dir, Keys: keys,
		HeartbeatInterval: time.Hour, DrainGrace: grace, DrainTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	defer func() { cancel(); a.Kill() }()

	get := func(path string) (int, string, error) {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(a.URL() + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b)), nil
	}
	if code, body, err := get("/healthz"); err != nil || code != 200 {
		t.Fatalf("healthz before drain: %d %q %v", code, body, err)
	}

	tok, _ := keys.Sign(urlsign.Grant{Scope: p, Expires: time.Now().Add(time.Hour)})
	resp, err := http.Get(a.URL() + "/c/" + tok + "/" + p)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 1024)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}

	cancel() // the first SIGTERM
	drainStart := time.Now()
	select {
	case <-fc.draining:
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat with draining=true within 10s of the drain")
	}
	code, body, err := get("/healthz")
	if time.Since(drainStart) < grace {
		if err != nil || code != 503 || body != "draining" {
			t.Errorf("healthz during drain grace: %d %q %v, want 503 draining", code, body, err)
		}
	}

	// The slow client reads on; wait for the listener to close.
	got := make(chan int, 1)
	go func() {
		n := len(head)
		buf := make([]byte, 32<<10)
		for {
			m, err := resp.Body.Read(buf)
			if m > 0 && !bytes.Equal(buf[:m], data[n:n+m]) {
				t.Errorf("wrong bytes at offset %d", n)
			}
			n += m
			if err != nil {
				break
			}
			time.Sleep(5 * time.Millisecond) // pace: a slow player, so the transfer outlasts the grace
		}
		got <- n
	}()
	for {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(a.URL(), "http://"), time.Second)
		if err != nil {
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("dial after grace: %v, want connection refused", err)
			}
			if d := time.Since(drainStart); d < grace {
				t.Errorf("refused after %v, before the %v grace", d, grace)
			}
			break
		}
		c.Close()
		if time.Since(drainStart) > 10*time.Second {
			t.Fatal("still accepting 10s into the drain")
		}
		time.Sleep(20 * time.Millisecond) // polling the listener state
	}
	select {
	case n := <-got:
		if n != len(data) {
			t.Errorf("in-flight transfer got %d of %d bytes", n, len(data))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("in-flight transfer did not finish")
	}
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("Run = %v after a clean drain", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after the drain")
	}
}
