package appliance

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// recordingControl counts heartbeat records by sequence number.
type recordingControl struct {
	mu   sync.Mutex
	seqs map[uint64]int
	late int
}

func (c *recordingControl) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch r.URL.Path {
	case "/v1/heartbeat":
		var hb api.Heartbeat
		json.NewDecoder(r.Body).Decode(&hb)
		c.seqs[hb.Seq]++
		json.NewEncoder(w).Encode(api.HeartbeatReply{})
	case "/v1/heartbeats":
		var b api.HeartbeatBatch
		json.NewDecoder(r.Body).Decode(&b)
		for _, hb := range b.Heartbeats {
			c.seqs[hb.Seq]++
			c.late++
		}
		json.NewEncoder(w).Encode(api.HeartbeatBatchReply{Recorded: len(b.Heartbeats)})
	case "/v1/manifest":
		json.NewEncoder(w).Encode(api.Manifest{})
	default:
		http.NotFound(w, r)
	}
}

// TestControlPlaneOutageQueuesReports: while the control plane is down
// the appliance keeps serving, says stale-control-plane in /healthz, and
// queues its heartbeats; after the control plane returns on the same
// address every queued record is delivered and no sequence number is
// missing.
func TestControlPlaneOutageQueuesReports(t *testing.T) {
	rc := &recordingControl{seqs: map[uint64]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	srv := &http.Server{Handler: rc}
	go srv.Serve(ln)

	const interval = 100 * time.Millisecond
	a, err := New(Config{ID: "a1", Listeners: listen(t, "127.0.0.1:0"), Control: controlAt("http://"+addr, ""), StoreDir: t.TempDir(), Keys: urlsign.Generate(),
		HeartbeatInterval: interval})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	healthz := func() string {
		resp, err := http.Get(a.URL() + "/healthz")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Status + " " + string(b)
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait("first heartbeat", func() bool { rc.mu.Lock(); defer rc.mu.Unlock(); return len(rc.seqs) > 0 })

	srv.Close() // the control plane goes away
	wait("reports queued", func() bool { return a.Reports().Queued >= 5 })
	if h := healthz(); !strings.Contains(h, "200") || !strings.Contains(h, "stale-control-plane (since") {
		t.Errorf("/healthz during the outage = %q, want 200 saying stale-control-plane", h)
	}
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv2 := &http.Server{Handler: rc}
	go srv2.Serve(ln2)
	defer srv2.Close()
	wait("queue drained", func() bool { r := a.Reports(); return r.Pending == 0 && r.Delivered == r.Queued })
	// The queue goes first; the live heartbeat after it brings the state
	// back to serving.
	wait("serving again", func() bool { return a.ControlPlaneState() == "serving" })
	r := a.Reports()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var max uint64
	for s := range rc.seqs {
		if s > max {
			max = s
		}
	}
	for s := uint64(1); s <= max; s++ {
		if rc.seqs[s] != 1 {
			t.Errorf("heartbeat seq %d recorded %d times, want once", s, rc.seqs[s])
		}
	}
	if int64(rc.late) != r.Delivered || r.Dropped != 0 {
		t.Errorf("control recorded %d late records; appliance %+v", rc.late, r)
	}
	t.Logf("outage: %+v", r)
}

func TestStaleLimitExpires(t *testing.T) {
	a, err := New(Config{ID: "a1", Listeners: listen(t, "127.0.0.1:0"), Control: controlAt("http://127.0.0.1:1", ""), StoreDir: t.TempDir(), Keys: urlsign.Generate(),
		HeartbeatInterval: 50 * time.Millisecond, StaleLimit: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for !a.staleExpired() {
		if time.Now().After(deadline) {
			t.Fatal("stale limit never expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get(a.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), "stale-control-plane-expired") {
		t.Errorf("/healthz after the stale limit = %d %q, want 503 stale-control-plane-expired", resp.StatusCode, b)
	}
}
