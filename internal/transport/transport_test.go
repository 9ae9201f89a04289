package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/serve"
	"github.com/ocdn/ocdn/internal/tcpinfo"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// TestUnknownCongestionControlRefused: a default the kernel lacks is
// refused at start, naming the ones it offers.
func TestUnknownCongestionControlRefused(t *testing.T) {
	avail, err := tcpinfo.Available()
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{Appliance: "a1", Dir: t.TempDir(), SampleRate: 1, CongestionControl: "nosuchcc"})
	if err == nil || !errors.Is(err, tcpinfo.ErrUnavailable) {
		t.Fatalf("New(congestion_control nosuchcc) = %v, want ErrUnavailable", err)
	}
	for _, want := range append([]string{"transport.congestion_control", "nosuchcc"}, avail...) {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// flakySender fails while down is set and records what it accepted.
type flakySender struct {
	mu   sync.Mutex
	down bool
	got  []*measure.TransportBatch
}

func (s *flakySender) SendTransport(_ context.Context, b *measure.TransportBatch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errors.New("connection refused")
	}
	s.got = append(s.got, b)
	return nil
}

func record(i int) measure.TransportRecord {
	return measure.TransportRecord{SampleTime: time.Now(), ClientPrefix: "127.0.0.0/24", CongestionControl: "cubic",
		Reason: measure.ReasonFinal, ConnAgeUs: int64(i)}
}

// TestSpoolDropsOldestWhileAway: with the control plane away, batches
// queue on disk within max_bytes, the oldest are dropped and counted, and
// the rest are delivered, oldest first with their ids, once it returns;
// a restarted recorder resumes the spool.
func TestSpoolDropsOldestWhileAway(t *testing.T) {
	dir := t.TempDir()
	snd := &flakySender{down: true}
	reg := prometheus.NewRegistry()
	// One batch of 10 records is about 2.6 KB of JSON: 8 KB holds three.
	cfg := Config{Appliance: "a1", Dir: dir, MaxBytes: 8 << 10, Sender: snd, BatchRecords: 10, Registry: reg}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 100 {
		r.add(record(i))
		if (i+1)%10 == 0 {
			r.cut()
			if err := r.deliver(ctx); err == nil {
				t.Fatal("deliver with the control plane away = nil")
			}
		}
	}
	dropped := value(r.m.dropped.WithLabelValues(dropSpoolFull))
	if dropped == 0 || int(dropped)%10 != 0 {
		t.Fatalf("dropped = %v, want whole batches of the oldest", dropped)
	}
	if r.spool.bytes > cfg.MaxBytes {
		t.Errorf("spool holds %d bytes, over max_bytes %d", r.spool.bytes, cfg.MaxBytes)
	}
	if got := value(r.m.queued); int(got) != 100-int(dropped) {
		t.Errorf("queued = %v, want %v", got, 100-dropped)
	}
	// A restart finds the same spool.
	r2, err := New(Config{Appliance: "a1", Dir: dir, MaxBytes: 8 << 10, Sender: snd, BatchRecords: 10})
	if err != nil {
		t.Fatal(err)
	}
	if r2.spool.records != r.spool.records || r2.spool.bytes != r.spool.bytes {
		t.Errorf("reopened spool = %d records / %d bytes, want %d / %d", r2.spool.records, r2.spool.bytes, r.spool.records, r.spool.bytes)
	}
	snd.mu.Lock()
	snd.down = false
	snd.mu.Unlock()
	if err := r.deliver(ctx); err != nil {
		t.Fatal(err)
	}
	var ages []int64
	for _, b := range snd.got {
		for _, rec := range b.Records {
			ages = append(ages, rec.ConnAgeUs)
		}
	}
	if len(ages) != 100-int(dropped) || ages[0] != int64(dropped) || ages[len(ages)-1] != 99 {
		t.Errorf("delivered %d records from %v to %v, want the newest %d (from %v to 99)", len(ages), ages[0], ages[len(ages)-1], 100-int(dropped), dropped)
	}
	if sent := value(r.m.sent); int(sent) != len(ages) {
		t.Errorf("sent = %v, want %d", sent, len(ages))
	}
	if r.spool.bytes != 0 || len(r.spool.files) != 0 || value(r.m.queued) != 0 {
		t.Errorf("after delivery the spool holds %d bytes in %d files, queued %v", r.spool.bytes, len(r.spool.files), value(r.m.queued))
	}
	// Redelivering the same batch (an answer lost) keeps its id: that is
	// what the ingester dedupes on.
	ids := map[string]bool{}
	for _, b := range snd.got {
		if ids[b.ID] {
			t.Errorf("batch id %s sent twice in one pass", b.ID)
		}
		ids[b.ID] = true
	}
}

// TestInvalidRecordLeftOut: a record the control plane would refuse is
// counted and left out, and the records around it are delivered: in
// the batch, it would have had the whole batch refused.
func TestInvalidRecordLeftOut(t *testing.T) {
	snd := &flakySender{}
	r, err := New(Config{Appliance: "a1", Dir: t.TempDir(), Sender: snd, BatchRecords: 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		rec := record(i)
		if i == 1 {
			rec.LostSegments, rec.UnackedSegments, rec.DataSegmentsOut = 5, 5, 1 // more lost than sent
		}
		r.add(rec)
	}
	r.cut()
	if err := r.deliver(context.Background()); err != nil {
		t.Fatal(err)
	}
	var ages []int64
	for _, b := range snd.got {
		for _, rec := range b.Records {
			ages = append(ages, rec.ConnAgeUs)
		}
	}
	if !slices.Equal(ages, []int64{0, 2}) {
		t.Errorf("delivered records %v, want 0 and 2 (1 left out)", ages)
	}
	if got := value(r.m.dropped.WithLabelValues(dropInvalid)); got != 1 {
		t.Errorf("dropped invalid = %v, want 1", got)
	}
}

// TestTrackedConnections: over real loopback TCP and the real HTTP
// server, every connection is sampled with rate 1, a token's congestion
// control is set on the socket before the answer, and the final sample
// names the file, the arm and the congestion control the socket ran.
func TestTrackedConnections(t *testing.T) {
	t.Run("http", func(t *testing.T) { testTrackedConnections(t, false) })
	// Under TLS the server's connection is a *tls.Conn over the tracked
	// one: OnGrant must still find it.
	t.Run("https", func(t *testing.T) { testTrackedConnections(t, true) })
}

func testTrackedConnections(t *testing.T, useTLS bool) {
	snd := &flakySender{}
	r, err := New(Config{Appliance: "a1", Dir: t.TempDir(), SampleRate: 1, Sender: snd})
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("x", 1<<20)
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		g := &urlsign.Grant{Experiment: "cc1", Arm: req.URL.Query().Get("arm"), CongestionControl: req.URL.Query().Get("cc")}
		r.OnGrant(req, "t0001/f.mp4", g)
		io.WriteString(w, body)
	})
	opts := serve.Options{ConnContext: r.ConnContext}
	client := http.DefaultClient
	if useTLS {
		cert, err := serve.SelfSigned("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(leaf)
		opts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	}
	srv, _ := serveRecorded(t, r, h, opts)
	for _, tc := range []struct{ arm, cc, want string }{
		{"bbr", "bbr", "bbr"}, {"reno", "reno", "reno"}, {"bogus", "nosuchcc", ""},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL()+"/?arm="+tc.arm+"&cc="+tc.cc, nil)
		req.Close = true
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != int64(len(body)) {
			t.Fatalf("read %d bytes, want %d", n, len(body))
		}
	}
	// The server closes each connection after its answer; the final
	// samples are queued by then or shortly after.
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		r.mu.Lock()
		finals := 0
		for _, p := range r.pending {
			if p.Reason == measure.ReasonFinal {
				finals++
			}
		}
		r.mu.Unlock()
		if finals == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d final samples queued, want 3", finals)
		}
		<-tick.C
	}
	r.cut()
	if err := r.deliver(context.Background()); err != nil {
		t.Fatal(err)
	}
	byArm := map[string]measure.TransportRecord{}
	for _, b := range snd.got {
		for _, rec := range b.Records {
			if rec.Reason == measure.ReasonFinal {
				byArm[rec.Arm] = rec
			}
		}
	}
	def, err := defaultCongestion()
	if err != nil {
		t.Fatal(err)
	}
	for arm, want := range map[string]string{"bbr": "bbr", "reno": "reno", "bogus": def} {
		rec, ok := byArm[arm]
		if !ok {
			t.Errorf("no final record for arm %s", arm)
			continue
		}
		if rec.CongestionControl != want || rec.File != "t0001/f.mp4" || rec.Experiment != "cc1" || rec.ClientPrefix != "127.0.0.0/24" {
			t.Errorf("arm %s: record %+v, want congestion control %s, file, experiment and prefix set", arm, rec, want)
		}
		// The final sample is taken at Close, when the tail of the answer
		// may still sit in the send buffer: some of it, not all, is sent.
		if rec.BytesAcked == 0 || rec.BytesSent-rec.BytesRetrans > int64(len(body))+4096 || rec.DataSegmentsOut == 0 || rec.MinRTTUs <= 0 {
			t.Errorf("arm %s: record %+v does not show the answer being sent", arm, rec)
		}
	}
	if got := value(r.m.ccUnavailable); got != 1 {
		t.Errorf("ocdn_transport_cc_unavailable_total = %v, want 1", got)
	}
}

// serveRecorded serves h on a loopback listener wrapped by r (sampling
// at accept), with opts; stop ends the server and waits for it (also at
// the test's end; calling it again does nothing).
func serveRecorded(t *testing.T, r *Recorder, h http.Handler, opts serve.Options) (srv *serve.Server, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln, err := r.Listener(ln)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	srv = serve.New(tln, h, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	return srv, stop
}

// defaultCongestion is the kernel's default congestion control.
func defaultCongestion() (string, error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
	return strings.TrimSpace(string(b)), err
}

// value reads a counter or gauge.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}
