package bgp

import (
	"context"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ocdn/ocdn/internal/bgp/bgptest"
)

// leakedGoroutines returns the stacks of goroutines running GoBGP or speaker
// code, polling until there are none or the deadline passes: goroutines
// that are exiting need a moment to be gone from the runtime's list.
func leakedGoroutines(t *testing.T) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "github.com/osrg/gobgp") || strings.Contains(g, "internal/bgp.(*Speaker)") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return leaked
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // polling for goroutine exit, not waiting for an event
	}
}

// TestRunReturnsAfterCancel: Run stops GoBGP and returns when its context
// ends, leaving no goroutine behind, and refuses a second Run.
func TestRunReturnsAfterCancel(t *testing.T) {
	tn := newTestNet()
	port := bgptest.FreePort(t, tn.Speaker)
	sp, err := New(Config{
		LocalASN: speakerAS, RouterID: tn.Speaker,
		ListenAddr: netip.AddrPortFrom(tn.Speaker, port),
		Neighbors: []NeighborConfig{
			// Nobody listens there: the speaker keeps trying to connect.
			{Address: tn.Router, Port: bgptest.FreePort(t, tn.Router), PeerASN: routerAS, Family: FamilyIPv4},
			{Address: tn.Router2, PeerASN: routerAS, Family: FamilyIPv6, Passive: true},
		},
	}, nil, func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sp.Run(ctx) }()

	// The speaker is up once it accepts TCP connections on its listen address.
	waitListening(t, netip.AddrPortFrom(tn.Speaker, port))
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run() = %v, want nil after cancel", err)
		}
	case <-time.After(eventTimeout):
		t.Fatal("Run did not return after cancel")
	}
	if leaked := leakedGoroutines(t); len(leaked) > 0 {
		t.Errorf("%d goroutines left after Run returned:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	}
	if err := sp.Run(context.Background()); err == nil {
		t.Error("second Run() = nil, want an error")
	}
	for _, st := range sp.Status() {
		if st.State == StateEstablished {
			t.Errorf("Status() after Run = %+v", st)
		}
	}
}

// TestRunFailsOnBusyPort: a listen address already in use is an error from
// Run, not a silent speaker that nobody can reach.
func TestRunFailsOnBusyPort(t *testing.T) {
	tn := newTestNet()
	port := bgptest.FreePort(t, tn.Speaker)
	l, err := (&netListenConfig).Listen(context.Background(), "tcp", netip.AddrPortFrom(tn.Speaker, port).String())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sp, err := New(Config{
		LocalASN: speakerAS, RouterID: tn.Speaker,
		ListenAddr: netip.AddrPortFrom(tn.Speaker, port),
		Neighbors:  []NeighborConfig{{Address: tn.Router, PeerASN: routerAS, Family: FamilyIPv4, Passive: true}},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	if err := sp.Run(ctx); err == nil {
		t.Error("Run() on a busy port = nil, want an error")
	}
	if leaked := leakedGoroutines(t); len(leaked) > 0 {
		t.Errorf("%d goroutines left after Run failed:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	}
}

// TestMetrics checks names, labels and values exported by the collector on
// a private registry after a BIRD session with accepted and rejected routes.
func TestMetrics(t *testing.T) {
	tn := newTestNet()
	port := bgptest.FreePort(t, tn.Speaker)
	bird := bgptest.StartBIRD(t, bgptest.BIRDConfig(tn.Router, bgptest.BIRDSession{Name: "isp", Local: tn.Router, LocalPort: bgptest.FreePort(t, tn.Router),
		LocalAS: routerAS, Neighbor: tn.Speaker, NeighborPort: port, PeerAS: speakerAS,
		Routes: []bgptest.Route{{Prefix: netip.MustParsePrefix("185.50.0.0/16")}, {Prefix: netip.MustParsePrefix("185.51.0.0/16")}, {Prefix: netip.MustParsePrefix("0.0.0.0/0")}}}))
	sp := startSpeaker(t, Config{
		LocalASN: speakerAS, RouterID: tn.Speaker, ListenAddr: netip.AddrPortFrom(tn.Speaker, port),
		Neighbors: []NeighborConfig{{Address: tn.Router, PeerASN: routerAS, Family: FamilyIPv4, Passive: true}},
	})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(sp)
	bird.WaitState(t, "isp", "Established")
	sp.events.waitFor(t, "3 prefixes", func([]Event) bool { return sp.status(tn.Router).PrefixesReceived == 3 })

	nb := tn.Router.String()
	want := map[string]float64{
		`ocdn_bgp_session_up{family="ipv4",neighbor="` + nb + `"}`:        1,
		`ocdn_bgp_prefixes_received{family="ipv4",neighbor="` + nb + `"}`: 3,
		`ocdn_bgp_prefixes_accepted{family="ipv4",neighbor="` + nb + `"}`: 2,
		`ocdn_bgp_routes_rejected_total{reason="default_route"}`:          1,
		`ocdn_bgp_routes_rejected_total{reason="bogon"}`:                  0,
		`ocdn_bgp_routes_rejected_total{reason="too_specific"}`:           0,
		`ocdn_bgp_routes_rejected_total{reason="wrong_family"}`:           0,
	}
	got := gather(t, reg)
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("metric %s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	// idle→active→opensent→openconfirm→established, at least 3 changes.
	if tr := got[`ocdn_bgp_session_transitions_total{neighbor="`+nb+`"}`]; tr < 3 {
		t.Errorf("ocdn_bgp_session_transitions_total = %v, want >= 3", tr)
	}
	for k := range got {
		if !strings.HasPrefix(k, "ocdn_bgp_") {
			t.Errorf("metric %s lacks the ocdn_bgp_ prefix", k)
		}
	}

	bird.Kill(t)
	sp.events.waitFor(t, "SessionDown", func(evs []Event) bool { return hasEvent(evs, SessionDown, tn.Router) })
	if got := gather(t, reg); got[`ocdn_bgp_session_up{family="ipv4",neighbor="`+nb+`"}`] != 0 {
		t.Errorf("ocdn_bgp_session_up after the router died = 1, want 0")
	}
}

// gather flattens a registry into "name{labels}" → value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+`="`+lp.GetValue()+`"`)
			}
			out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	}
	return -1
}
