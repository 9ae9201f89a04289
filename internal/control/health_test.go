package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// liveSetup runs a control plane with a real clock and appliances that are
// real listeners answering /healthz.
type liveSetup struct {
	s        *Server
	srv      *http.Server
	url      string
	lns      map[string]net.Listener
	interval time.Duration
}

func newLive(t *testing.T, interval time.Duration, ids ...string) *liveSetup {
	t.Helper()
	cat, err := content.Synth(content.SynthSpec{Titles: 2, LadderKbps: []int{100}, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ls := &liveSetup{lns: map[string]net.Listener{}, interval: interval}
	inv := config.Inventory{
		ISPs:  []config.ISP{{Name: "isp", ASN: 64500, Prefixes: []config.Prefix{{Prefix: netip.MustParsePrefix("10.64.0.0/16")}}}},
		Sites: []config.Site{{ID: "ix", Kind: config.SiteIXP}},
	}
	for i, id := range ids {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.1.9.%d:0", i+1))
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })}
		go hs.Serve(ln)
		t.Cleanup(func() { hs.Close() })
		ls.lns[id] = ln
		inv.Appliances = append(inv.Appliances, config.Appliance{ID: id, Site: "ix",
			Address: config.AddrPort{AddrPort: netip.MustParseAddrPort(ln.Addr().String())}, Capacity: 1 << 30})
	}
	ls.start(t, Config{Inventory: inv, Catalog: cat, OriginURL: "http://origin", Keys: urlsign.Generate(),
		AdminToken: "sekret", HeartbeatInterval: interval, ActivePoll: true})
	return ls
}

// start runs a control plane of cfg, serving its API on loopback, until
// the test ends.
func (ls *liveSetup) start(t *testing.T, cfg Config) {
	t.Helper()
	var err error
	if ls.s, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ls.url = "http://" + ln.Addr().String()
	ls.srv = &http.Server{Handler: ls.s.Handler()}
	go ls.srv.Serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ls.s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; ls.srv.Close() })
}

// heartbeatLoop beats for id every interval until stop is closed.
func (ls *liveSetup) heartbeatLoop(t *testing.T, id string, hb func() api.Heartbeat, stop <-chan struct{}, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(ls.interval)
		defer tk.Stop()
		for {
			h := hb()
			h.Appliance = id
			b, _ := json.Marshal(h)
			if resp, err := http.Post(ls.url+"/v1/heartbeat", "application/json", bytes.NewReader(b)); err == nil {
				resp.Body.Close()
			}
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
}

func (ls *liveSetup) status(id string) ApplianceStatus {
	for _, st := range ls.s.Appliances() {
		if st.ID == id {
			return st
		}
	}
	return ApplianceStatus{}
}

// waitFor polls cond every 10 ms for at most d and returns how long it took.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not after %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func TestKilledApplianceExcludedWithinTwoIntervals(t *testing.T) {
	const interval = time.Second
	ls := newLive(t, interval, "a1", "a2")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	for _, id := range []string{"a1", "a2"} {
		ls.heartbeatLoop(t, id, func() api.Heartbeat { return api.Heartbeat{} }, stop, &wg)
	}
	waitFor(t, 5*interval, "both serving", func() bool { return ls.status("a1").Serving && ls.status("a2").Serving })
	// Kill a1: its listener closes (connections are refused) and its
	// heartbeats stop... here they go on, as a half-dead host might send
	// them, so only the prober can catch it.
	ls.lns["a1"].Close()
	took := waitFor(t, 2*interval, "a1 out of steering", func() bool { return !ls.s.snap.Load().Appliances["a1"].Serving })
	t.Logf("killed appliance excluded after %v (interval %v)", took, interval)
	if st := ls.status("a1"); st.State != "down" || st.Reason != "probe: connection refused" {
		t.Errorf("a1 = %+v, want down with the refused probe as reason", st)
	}
	if !ls.status("a2").Serving {
		t.Errorf("a2 = %+v, want serving", ls.status("a2"))
	}
}

func TestOverloadedApplianceLeavesSteering(t *testing.T) {
	const interval = 500 * time.Millisecond
	ls := newLive(t, interval, "a1")
	var mu sync.Mutex
	cpu := 0.2
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	ls.heartbeatLoop(t, "a1", func() api.Heartbeat {
		mu.Lock()
		defer mu.Unlock()
		return api.Heartbeat{Load: &api.Load{CPU: cpu}}
	}, stop, &wg)
	waitFor(t, 5*interval, "serving", func() bool { return ls.status("a1").Serving })
	mu.Lock()
	cpu = 0.97
	mu.Unlock()
	waitFor(t, 2*interval, "reduced share", func() bool { st := ls.status("a1"); return st.State == "overloaded" })
	took := waitFor(t, 3*interval, "excluded", func() bool { return !ls.status("a1").Serving })
	t.Logf("overloaded appliance excluded %v after its share was reduced", took)
	mu.Lock()
	cpu = 0.5
	mu.Unlock()
	waitFor(t, 3*interval, "back", func() bool { return ls.status("a1").Serving && ls.status("a1").Weight == 1 })
}

func TestHeartbeatValidation(t *testing.T) {
	s, _, _ := newTestServer(t)
	h := s.Handler()
	for _, tc := range []struct {
		body string
		code int
		want string
	}{
		{`{"appliance":"e1","load":{"cpu":1.5}}`, 400, "load.cpu"},
		{`{"appliance":"e1","load":{"bits_per_sec":-1}}`, 400, "load.bits_per_sec"},
		{`{"appliance":"e1","disk":{"disks":1,"failed_disks":2}}`, 400, "disk"},
		{`{"appliance":""}`, 400, "appliance: missing"},
		{`{"appliance":"e1"} {"x":1}`, 400, "trailing"},
		{`{"appliance":"e1","load":{"cpu":0.5,"connections":3},"disk":{"disks":2,"failed_disks":1},"state":"serving","seq":4}`, 200, "known_content_gen"},
	} {
		w := do(t, h, "POST", "/v1/heartbeat", tc.body, "127.1.0.1:5000", "")
		if w.Code != tc.code || !bytes.Contains(w.Body.Bytes(), []byte(tc.want)) {
			t.Errorf("heartbeat %.60q = %d %q, want %d containing %q", tc.body, w.Code, w.Body, tc.code, tc.want)
		}
	}
	if st := s.Appliances()[0]; st.State != "degraded" || st.Reason != "failed disks" {
		t.Errorf("after a heartbeat with a failed disk: %+v, want degraded", st)
	}
}

// TestOverloadedShareInSteering: an overloaded appliance gets only its
// weight's share of new clients.
func TestOverloadedShareInSteering(t *testing.T) {
	s, _, cat := newTestServer(t)
	h := s.Handler()
	file := cat.Files[0].Path
	body := fmt.Sprintf(`{"appliance":"x1","content_gen":1,"held":[%q],"load":{"cpu":0.96}}`, file)
	if w := do(t, h, "POST", "/v1/heartbeat", body, "127.1.0.1:5000", ""); w.Code != 200 {
		t.Fatalf("heartbeat: %d %s", w.Code, w.Body)
	}
	st := statusOf(s, "x1")
	if st.State != "overloaded" || st.Weight <= 0 || st.Weight >= 1 {
		t.Fatalf("x1 = %+v, want overloaded with a share", st)
	}
	got := 0
	const clients = 400
	for i := 0; i < clients; i++ {
		w := do(t, h, "GET", "/v1/steer?files="+file, "", fmt.Sprintf("198.%d.%d.1:1000", 18+i/200, i%200), "")
		if bytes.Contains(w.Body.Bytes(), []byte(`"appliance":"x1"`)) {
			got++
		}
	}
	share := float64(got) / clients
	if share < st.Weight-0.1 || share > st.Weight+0.1 {
		t.Errorf("x1 got %.2f of new clients, want about its weight %.2f", share, st.Weight)
	}
}
