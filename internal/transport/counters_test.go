package transport

import (
	"bufio"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/metrictest"
	"github.com/ocdn/ocdn/internal/serve"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// TestSamplingCounted: the counters that account for sampling's own work
// (make bench-edge multiplies them by the benchmarks' cost of each)
// count, for a sampled connection served by the real HTTP server, its
// draw at accept, its requests, its periodic and final samples and the
// batch they are spooled in; for a connection the draw left unsampled,
// served by the same code with the recorder installed, nothing.
func TestSamplingCounted(t *testing.T) {
	for _, tc := range []struct {
		name string
		rate float64
		// want of connections sampled, requests on them, final samples
		// and batches spooled; periodic samples are 1 or more when sampled.
		conns, requests, final, batches float64
		periodic                        bool
	}{
		{name: "sampled", rate: 1, conns: 1, requests: 3, final: 1, batches: 1, periodic: true},
		// The smallest rate above 0 draws like 0.1 does, and never
		// samples: the listener's path for the 90% that are not.
		{name: "unsampled", rate: math.SmallestNonzeroFloat64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(Config{Appliance: "a1", Dir: t.TempDir(), SampleRate: tc.rate, Interval: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			g := &urlsign.Grant{Experiment: "e", Arm: "a"}
			srv, stop := serveRecorded(t, r, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				r.OnGrant(req, "t/f", g)
				io.WriteString(w, "ok")
			}), serve.Options{ConnContext: r.ConnContext})
			c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL(), "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			for range 3 {
				if _, err := io.WriteString(c, "GET /c/x/t/f HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if tc.periodic {
				// The connection stays open until its timer has sampled it.
				waitFor(t, "a periodic sample", func() bool { return value(r.m.sampledPeriodic) >= 1 })
			}
			c.Close()
			if tc.final > 0 {
				waitFor(t, "the final sample", func() bool { return value(r.m.sampledFinal) >= tc.final })
			}
			// With the server stopped every connection is closed: an
			// unsampled one has had its chance to count anything.
			stop()
			r.cut()
			for _, m := range []struct {
				name string
				c    prometheus.Counter
				want float64
			}{
				{"ocdn_transport_connections_sampled_total", r.m.connsSampled, tc.conns},
				{"ocdn_transport_sampled_connection_requests_total", r.m.sampledRequests, tc.requests},
				{`ocdn_transport_records_sampled_total{reason="final"}`, r.m.sampledFinal, tc.final},
				{"ocdn_transport_batches_spooled_total", r.m.batchesSpooled, tc.batches},
			} {
				if got := value(m.c); got != m.want {
					t.Errorf("%s = %v, want %v", m.name, got, m.want)
				}
			}
			if got := value(r.m.sampledPeriodic); (got >= 1) != tc.periodic {
				t.Errorf(`ocdn_transport_records_sampled_total{reason="periodic"} = %v, want 1 or more: %v`, got, tc.periodic)
			}
		})
	}
}

// waitFor polls cond until it holds, failing after 30s (a loaded
// machine makes the wait longer, never the test fail sooner).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 30s", what)
		}
		<-tick.C
	}
}

// TestMetricNames: every transport metric passes Prometheus's lint and
// carries the ocdn_transport_ prefix.
func TestMetricNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(Config{Appliance: "a1", Dir: t.TempDir(), SampleRate: 0.1, Registry: reg}); err != nil {
		t.Fatal(err)
	}
	mfs := metrictest.Lint(t, reg, "ocdn_transport_")
	if len(mfs) != 10 {
		t.Errorf("gathered %d metric families, want the 10 New registers", len(mfs))
	}
}
