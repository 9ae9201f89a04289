package netns

import (
	"context"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/netem"
)

// Every wrong setting is refused naming it, before tc runs.
func TestTBFValidate(t *testing.T) {
	for _, tc := range []struct {
		tbf  TBF
		want string // in the error; "" for valid
	}{
		{TBF{RateBps: 20e6}, ""},
		{TBF{RateBps: 20e6, BurstBytes: 10000, Latency: 400 * time.Millisecond}, ""},
		{TBF{RateBps: 20e6, LimitBytes: 300000}, ""},
		{TBF{}, "rate_bps"},
		{TBF{RateBps: -1}, "rate_bps"},
		{TBF{RateBps: 4}, "rate_bps"},
		{TBF{RateBps: 2e12}, "rate_bps"},
		{TBF{RateBps: 20e6, BurstBytes: -1}, "burst_bytes"},
		{TBF{RateBps: 20e6, BurstBytes: 1500}, "burst_bytes"},
		{TBF{RateBps: 20e6, Latency: -time.Millisecond}, "latency"},
		{TBF{RateBps: 20e6, Latency: time.Nanosecond}, "latency"},
		{TBF{RateBps: 20e6, LimitBytes: -1}, "limit_bytes"},
		{TBF{RateBps: 20e6, Latency: time.Second, LimitBytes: 1000}, "both set"},
	} {
		err := tc.tbf.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v.Validate() = %v, want nil", tc.tbf, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v.Validate() = %v, want an error naming %s", tc.tbf, err, tc.want)
		}
	}
}

// The words handed to tc: the defaults filled in, units tc reads.
func TestTBFArgs(t *testing.T) {
	for _, tc := range []struct {
		tbf  TBF
		want string
	}{
		{TBF{RateBps: 20e6}, "rate 20000000bit burst 10000 latency 100000us"},
		{TBF{RateBps: 1e6}, "rate 1000000bit burst 3028 latency 100000us"}, // two frames at least
		{TBF{RateBps: 8e6, BurstBytes: 4000, Latency: 400 * time.Millisecond}, "rate 8000000bit burst 4000 latency 400000us"},
		{TBF{RateBps: 8e6, LimitBytes: 50000}, "rate 8000000bit burst 4000 limit 50000"},
	} {
		if got := strings.Join(tc.tbf.args(), " "); got != tc.want {
			t.Errorf("%+v.args() = %q, want %q", tc.tbf, got, tc.want)
		}
	}
}

// Outputs of tc 6.1 (`tc -s -j qdisc show dev IF root`).
const (
	tbfJSON     = `[{"kind":"tbf","handle":"8017:","root":true,"refcnt":3,"options":{"rate":2500000,"burst":10000,"lat":100000},"bytes":7340032,"packets":5012,"drops":3,"overlimits":812,"requeues":0,"backlog":3028,"qlen":2}]`
	noqueueJSON = `[{"kind":"noqueue","handle":"0:","root":true,"refcnt":2,"options":{},"bytes":0,"packets":0,"drops":0,"overlimits":0,"requeues":0,"backlog":0,"qlen":0}]`
)

func TestParseQdiscStats(t *testing.T) {
	st, err := parseQdiscStats([]byte(tbfJSON))
	if err != nil {
		t.Fatal(err)
	}
	want := QdiscStats{Kind: "tbf", RateBps: 20e6, BurstBytes: 10000, LatencyUs: 100000, Bytes: 7340032, Packets: 5012,
		Drops: 3, Overlimits: 812, BacklogBytes: 3028, Qlen: 2}
	if st != want {
		t.Errorf("parseQdiscStats(tbf) = %+v, want %+v", st, want)
	}
	if st, err := parseQdiscStats([]byte(noqueueJSON)); err != nil || st.Kind != "noqueue" || st.RateBps != 0 {
		t.Errorf("parseQdiscStats(noqueue) = %+v, %v; want kind noqueue and no rate", st, err)
	}
	for _, bad := range []string{``, `{}`, `[]`, `[{"kind":"tbf","root":false}]`, `[{"root":true}]`,
		`[{"kind":"tbf","root":true,"options":{"rate":0,"burst":1,"lat":1}}]`, `[{"kind":"tbf","root":true,"bytes":-1}]`} {
		if st, err := parseQdiscStats([]byte(bad)); err == nil {
			t.Errorf("parseQdiscStats(%q) = %+v, want an error", bad, st)
		}
	}
}

// tc's output is outside input: no panic, and a tbf read has a rate.
func FuzzParseQdiscStats(f *testing.F) {
	f.Add([]byte(tbfJSON))
	f.Add([]byte(noqueueJSON))
	f.Add([]byte(`[{"kind":"pfifo_fast","root":true},{"kind":"tbf","root":false}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseQdiscStats(b)
		if err == nil && st.Kind == "tbf" && !(st.RateBps > 0 && st.BurstBytes > 0) {
			t.Errorf("parseQdiscStats(%q) = %+v without an error", b, st)
		}
	})
}

// A tbf on a router's egress caps a bulk TCP transfer between two
// namespaces at its rate: a (server) ── r ──tbf── b (client).
func TestShapedRate(t *testing.T) {
	n := ForTest(t, "ocdn-nstest")
	requireTC(t)
	a, err := n.Host("a")
	must(t, err)
	r, err := n.Host("r")
	must(t, err)
	b, err := n.Host("b")
	must(t, err)
	pp, ad := netip.MustParsePrefix, netip.MustParseAddr
	must(t, n.Link(a, "eth0", r, "ra"))
	must(t, n.Link(r, "rb", b, "eth0"))
	must(t, a.Addr("eth0", pp("10.9.0.1/30")))
	must(t, r.Addr("ra", pp("10.9.0.2/30")))
	must(t, r.Addr("rb", pp("10.9.1.1/30")))
	must(t, b.Addr("eth0", pp("10.9.1.2/30")))
	must(t, a.DefaultRoute(ad("10.9.0.2")))
	must(t, b.DefaultRoute(ad("10.9.1.1")))
	must(t, r.Router())
	// Output runs inside the host: r forwards, the machine may not.
	if out, err := r.Output("cat", "/proc/sys/net/ipv4/ip_forward"); err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Errorf("r.Output(cat ip_forward) = %q, %v; want 1", out, err)
	}
	if _, err := r.Output("sh", "-c", "echo oops >&2; exit 3"); err == nil || !strings.Contains(err.Error(), "oops") || !strings.Contains(err.Error(), "r: sh") {
		t.Errorf("r.Output of a failing command = %v, want an error naming the host and the command, with its stderr", err)
	}

	// Wrong settings and interfaces are refused naming them.
	if err := r.Shape("rb", TBF{RateBps: 20e6, BurstBytes: 100}); err == nil || !strings.Contains(err.Error(), "burst_bytes") || !strings.Contains(err.Error(), "shape rb") {
		t.Errorf("Shape(rb, burst 100) = %v, want an error naming the interface and burst_bytes", err)
	}
	if err := r.Shape("nope", TBF{RateBps: 20e6}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Shape(nope) = %v, want an error naming the interface", err)
	}
	if err := r.Unshape("rb"); err == nil || !strings.Contains(err.Error(), "dev rb") {
		t.Errorf("Unshape of an unshaped interface = %v, want an error naming it", err)
	}

	// Shape replaces: the second rate is the one in force.
	const rate = 20e6
	must(t, r.Shape("rb", TBF{RateBps: 5e6}))
	must(t, r.Shape("rb", TBF{RateBps: rate, Latency: 200 * time.Millisecond}))
	st, err := r.ShapeStats("rb")
	must(t, err)
	if st.Kind != "tbf" || st.RateBps != rate || st.BurstBytes != 10000 || st.LatencyUs < 200000 {
		t.Fatalf("ShapeStats(rb) after Shape = %+v, want tbf at %v bit/s, burst 10000, latency ≥ 200 ms", st, rate)
	}

	const size = 6 << 20
	ln, err := netem.ListenIn(context.Background(), a.Name(), "tcp", "10.9.0.1:7001")
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	served := make(chan error, 1)
	go func() { // owner: the test; ends after one connection
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		// Wait for the client's request, so that the clock starts with
		// the connection established.
		if _, err := c.Read(make([]byte, 1)); err != nil {
			served <- err
			return
		}
		_, err = io.CopyN(c, zeroReader{}, size)
		served <- err
	}()
	c, err := b.DialContext(context.Background(), "tcp", "10.9.0.1:7001")
	must(t, err)
	defer c.Close()
	start := time.Now()
	_, err = c.Write([]byte{1})
	must(t, err)
	got, err := io.Copy(io.Discard, c)
	elapsed := time.Since(start)
	must(t, err)
	must(t, <-served)
	if got != size {
		t.Fatalf("read %d bytes, want %d", got, size)
	}
	after, err := r.ShapeStats("rb")
	must(t, err)
	goodput := float64(got) * 8 / elapsed.Seconds()
	wire := float64(after.Bytes-st.Bytes) * 8 / elapsed.Seconds()
	t.Logf("%d MiB through tbf %.0f Mbit/s in %v: goodput %.2f Mbit/s (%.1f%% of the rate), tbf sent %.2f Mbit/s of frames; %d packets, %d drops, %d overlimits",
		size>>20, rate/1e6, elapsed.Round(time.Millisecond), goodput/1e6, 100*goodput/rate, wire/1e6, after.Packets-st.Packets, after.Drops-st.Drops, after.Overlimits-st.Overlimits)
	// Every byte crossed the filter.
	if after.Bytes-st.Bytes < size {
		t.Errorf("tbf sent %d bytes for a %d-byte transfer: the traffic did not cross it", after.Bytes-st.Bytes, size)
	}
	// Above: tight, as a busy machine can only make the transfer slower.
	// Frames carry at most 1448 payload bytes in 1514 (95.6% of the
	// rate); the 10 kB bucket adds 0.1% over 6 MiB. The clock starts
	// after the connection is up, but includes the last byte's trip.
	if goodput > rate {
		t.Errorf("goodput %.2f Mbit/s through a %.0f Mbit/s tbf: the shaper let more through than its rate", goodput/1e6, rate/1e6)
	}
	// Below: loose, for the same reason; a third of the rate still shows
	// the data came through the shaped path and not somewhere else.
	if goodput < rate/3 {
		t.Errorf("goodput %.2f Mbit/s through a %.0f Mbit/s tbf, want at least a third of the rate", goodput/1e6, rate/1e6)
	}

	must(t, r.Unshape("rb"))
	if st, err := r.ShapeStats("rb"); err != nil || st.Kind == "tbf" {
		t.Errorf("ShapeStats(rb) after Unshape = %+v, %v; want the default qdisc", st, err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// requireTC fails (OCDN_REQUIRE_EXTERNAL=1) or skips without tc.
func requireTC(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("tc"); err != nil {
		if os.Getenv("OCDN_REQUIRE_EXTERNAL") == "1" {
			t.Fatal("tc not found (Debian package iproute2)")
		}
		t.Skip("tc not found (Debian package iproute2)")
	}
}
