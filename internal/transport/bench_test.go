package transport

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/serve"
	"github.com/ocdn/ocdn/internal/tcpinfo"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// BenchmarkConnection is the per-connection cost of transport records on
// the real HTTP server: each iteration opens a TCP connection, makes one
// request answered with 16 KiB and closes. "off" serves without a
// Recorder; the others wrap the listener, install ConnContext and OnGrant
// and sample the given share of connections (1 takes a final sample of
// every one). Compare with
//
//	go test -run '^$' -bench Connection -benchmem -count 6 ./internal/transport | benchstat -col /sampling -
func BenchmarkConnection(b *testing.B) { benchServe(b, false) }

// BenchmarkKeepAlive is the per-request cost: one keep-alive connection,
// a 16 KiB answer per iteration (OnGrant's context lookup and, when the
// connection is sampled, its bookkeeping).
func BenchmarkKeepAlive(b *testing.B) { benchServe(b, true) }

func benchServe(b *testing.B, keepAlive bool) {
	body := make([]byte, 16<<10)
	for _, tc := range []struct {
		name string
		rate float64
		on   bool
	}{{"sampling=off", 0, false}, {"sampling=0", 0, true}, {"sampling=0.1", 0.1, true}, {"sampling=1", 1, true}} {
		if keepAlive && tc.rate == 0.1 {
			continue // one connection: sampled or not, as 1 and 0 show
		}
		b.Run(tc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var opts serve.Options
			onGrant := func(*http.Request, string, *urlsign.Grant) {}
			if tc.on {
				r, err := New(Config{Appliance: "a1", Dir: b.TempDir(), SampleRate: tc.rate, BatchRecords: 1000})
				if err != nil {
					b.Fatal(err)
				}
				if ln, err = r.Listener(ln); err != nil {
					b.Fatal(err)
				}
				opts.ConnContext, onGrant = r.ConnContext, r.OnGrant
				// Records pile up in memory (four batches, then counted
				// drops): delivery is not what is measured.
			}
			g := &urlsign.Grant{Experiment: "e", Arm: "a"}
			srv := serve.New(ln, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				onGrant(req, "t/f", g)
				w.Write(body)
			}), opts)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Run(ctx) }()
			defer func() { cancel(); <-done }()
			addr := ln.Addr().String()
			b.ReportAllocs()
			if keepAlive {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				br := bufio.NewReader(c)
				req := []byte("GET /c/x/t/f HTTP/1.1\r\nHost: x\r\n\r\n")
				for b.Loop() {
					c.Write(req)
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				return
			}
			req := []byte("GET /c/x/t/f HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			for b.Loop() {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				c.Write(req)
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				c.Close()
			}
		})
	}
}

// BenchmarkSampledConnection is what sampling adds to one sampled
// connection, apart from its accept and close: the sampler, flow and
// periodic timer at accept (Track), and at close the final sample (three
// getsockopt calls) made into a record and queued. Divided by the
// requests a connection carries and multiplied by the sample rate, it is
// the expected cost per request; BenchmarkPeriodicSample adds one
// periodic sample per Interval of a connection's life.
func BenchmarkSampledConnection(b *testing.B) {
	r, tc := benchTracked(b)
	b.ReportAllocs()
	for b.Loop() {
		t := &trackedConn{tcpConn: tc, r: r, prefix: "127.0.0.0/24"}
		t.flow = r.mon.Track(tc, t.emit)
		t.flow.Finish()
		drainPending(r)
	}
}

// BenchmarkPeriodicSample is one periodic sample of a connection: the
// three getsockopt calls, the record and its queueing.
func BenchmarkPeriodicSample(b *testing.B) {
	r, tc := benchTracked(b)
	t := &trackedConn{tcpConn: tc, r: r, prefix: "127.0.0.0/24"}
	s, err := tcpinfo.NewSampler(tc)
	if err != nil {
		b.Fatal(err)
	}
	var rec tcpinfo.Record
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Sample(&rec); err != nil {
			b.Fatal(err)
		}
		t.emit(&rec, tcpinfo.Periodic)
		drainPending(r)
	}
}

// BenchmarkOnGrant is the per-request cost on the serving path: the
// context lookup of the connection and, for a sampled one, noting the
// file and arm under its lock.
func BenchmarkOnGrant(b *testing.B) {
	r, tc := benchTracked(b)
	g := &urlsign.Grant{Experiment: "e", Arm: "a"}
	for _, c := range []struct {
		name string
		conn net.Conn
	}{{"unsampled", tc}, {"sampled", &trackedConn{tcpConn: tc, r: r}}} {
		b.Run(c.name, func(b *testing.B) {
			req, _ := http.NewRequestWithContext(r.ConnContext(context.Background(), c.conn), "GET", "/c/x/t/f", nil)
			b.ReportAllocs()
			for b.Loop() {
				r.OnGrant(req, "t/f", g)
			}
		})
	}
}

// benchTracked is a Recorder sampling every connection, and the server
// side of a loopback TCP connection.
func benchTracked(b *testing.B) (*Recorder, *net.TCPConn) {
	b.Helper()
	r, err := New(Config{Appliance: "a1", Dir: b.TempDir(), SampleRate: 1, Interval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { client.Close() })
	c, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return r, c.(*net.TCPConn)
}

// drainPending empties the in-memory queue, so that records are queued
// (not dropped as over the limit) on every iteration.
func drainPending(r *Recorder) {
	r.mu.Lock()
	r.pending = r.pending[:0]
	r.mu.Unlock()
}
