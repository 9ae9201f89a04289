package control

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/rib"
)

// discard is a ResponseWriter that keeps nothing, so that the benchmark
// measures the handler.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkSteerHandler is one GET /v1/steer through the control plane's
// handler (routing, decision, signed URLs, JSON, and demand attribution
// to the client's home site), without a network.
func BenchmarkSteerHandler(b *testing.B) {
	t := &testing.T{}
	s, _, cat := newTestServer(t)
	h := s.Handler()
	f := cat.Files[0].Path
	beat(t, h, "e1", 1, []string{f})
	beat(t, h, "x1", 1, []string{f})
	report(t, h, api.RouteReport{Appliance: "e1", Epoch: "a", Seq: 1, Snapshot: true, Announce: []rib.Route{route("10.64.0.0/16")}})
	req := httptest.NewRequest("GET", "/v1/steer?files="+f+"&n=5", nil)
	req.RemoteAddr = "10.64.3.4:5555"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discard{h: http.Header{}}
		for pb.Next() {
			h.ServeHTTP(w, req)
		}
	})
}

// BenchmarkObserveSteer is what demand attribution adds to an answer of
// four files: the client's home site and four counter increments.
func BenchmarkObserveSteer(b *testing.B) {
	t := &testing.T{}
	s, _, cat := newTestServer(t)
	h := s.Handler()
	report(t, h, api.RouteReport{Appliance: "e1", Epoch: "a", Seq: 1, Snapshot: true, Announce: []rib.Route{route("10.64.0.0/16")}})
	snap := s.snap.Load()
	client := netip.MustParseAddr("10.64.3.4")
	files := []steerFile{{path: cat.Files[0].Path, index: 0}, {path: cat.Files[1].Path, index: 1}, {path: cat.Files[0].Path, index: 0}, {path: cat.Files[1].Path, index: 1}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.observeSteer(snap, client, files)
		}
	})
}
