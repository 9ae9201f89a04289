package transport

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/measure"
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

// The benchmarks below are the unit costs of sampling's own work, one
// for each thing its counters count; scripts/bench-edge.sh runs them and
// multiplies (edgebench accounted):
//
//	UnsampledConnection  connections not drawn for sampling
//	SampledConnection    ocdn_transport_connections_sampled_total
//	PeriodicSample       ocdn_transport_records_sampled_total{reason="periodic"}
//	OnGrant/unsampled    requests on connections not sampled
//	OnGrant/sampled      ocdn_transport_sampled_connection_requests_total
//	SpoolBatch           ocdn_transport_batches_spooled_total and the
//	                     records in them
//
// Each runs the code the appliance runs (the listener's draw, the
// server's ConnContext and the context chain a request's lookup walks),
// on a loopback connection, without the accept and close that every
// connection pays sampled or not. Each reports cpu-ns/op beside ns/op:
// the process's CPU time per iteration (all threads, the collector's
// too), the unit bench-edge reads the appliance's CPU in; ns/op is wall
// time, which counts fsync's waits and, on a loaded machine, the time
// the neighbours ran.

// BenchmarkUnsampledConnection is what sampling at a rate below 1 adds
// to a connection it does not sample: the draw at accept and the context
// value holding the connection (for OnGrant).
func BenchmarkUnsampledConnection(b *testing.B) {
	// The smallest rate above 0 draws as 0.1 does and never samples.
	r, tc := benchRecorder(b, math.SmallestNonzeroFloat64)
	ctx := context.Background()
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		c := r.draw(tc)
		if _, ok := c.(*trackedConn); ok {
			b.Fatal("drawn for sampling at rate 5e-324")
		}
		r.ConnContext(ctx, c)
	}
	cpu.report(b)
}

// BenchmarkSampledConnection is what sampling adds to one sampled
// connection, apart from its accept and close: the draw, the sampler,
// flow and periodic timer (Track), the client prefix and the context
// value at accept, and at close the final sample (three getsockopt
// calls) made into a record and queued. BenchmarkPeriodicSample adds one
// periodic sample per Interval of a connection's life.
func BenchmarkSampledConnection(b *testing.B) {
	r, tc := benchTracked(b)
	ctx := context.Background()
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		t, ok := r.draw(tc).(*trackedConn)
		if !ok {
			b.Fatal("not drawn for sampling at rate 1")
		}
		r.ConnContext(ctx, t)
		t.flow.Finish() // what trackedConn.Close does before closing the socket
		drainPending(r)
	}
	cpu.report(b)
}

// BenchmarkPeriodicSample is one periodic sample of a connection: the
// three getsockopt calls, the record and its queueing. In the appliance
// the connection's timer runs it on a goroutine of its own and resets
// itself, which this leaves out (a goroutine start, ~1 us at most).
func BenchmarkPeriodicSample(b *testing.B) {
	r, tc := benchTracked(b)
	t := &trackedConn{tcpConn: tc, r: r, prefix: "127.0.0.0/24"}
	s, err := tcpinfo.NewSampler(tc)
	if err != nil {
		b.Fatal(err)
	}
	var rec tcpinfo.Record
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if err := s.Sample(&rec); err != nil {
			b.Fatal(err)
		}
		t.emit(&rec, tcpinfo.Periodic)
		drainPending(r)
	}
	cpu.report(b)
}

// BenchmarkOnGrant is the per-request cost on the serving path: the
// context lookup of the connection and, for a sampled one, noting the
// file and arm under its lock. The request's context is built as the
// HTTP server (internal/serve/h1 newConn) builds it, so the lookup walks
// the same chain.
func BenchmarkOnGrant(b *testing.B) {
	r, tc := benchTracked(b)
	g := &urlsign.Grant{Experiment: "e", Arm: "a"}
	for _, c := range []struct {
		name string
		conn net.Conn
	}{{"unsampled", tc}, {"sampled", &trackedConn{tcpConn: tc, r: r}}} {
		b.Run(c.name, func(b *testing.B) {
			srvCtx, cancelSrv := context.WithCancel(context.Background())
			defer cancelSrv()
			ctx := context.WithValue(srvCtx, http.LocalAddrContextKey, tc.LocalAddr())
			ctx, cancel := context.WithCancel(r.ConnContext(ctx, c.conn))
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", "/c/x/t/f", nil)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				r.OnGrant(req, "t/f", g)
			}
			cpu.report(b)
		})
	}
}

// BenchmarkSpoolBatch is Run's work for one batch of n records with no
// control plane (as in make bench-edge): cutting it, encoding it as JSON
// and writing it to the spool (a temporary file, fsync, rename), and
// removing it, as delivery or the spool's bound eventually does. Two
// sizes give a cost per batch and one per record.
func BenchmarkSpoolBatch(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			r, tc := benchTracked(b)
			s, err := tcpinfo.NewSampler(tc)
			if err != nil {
				b.Fatal(err)
			}
			var rec tcpinfo.Record
			if err := s.Sample(&rec); err != nil {
				b.Fatal(err)
			}
			one := measure.TransportRecordOf(&rec)
			one.SampleTime, one.ClientPrefix, one.Reason, one.File = time.Now(), "127.0.0.0/24", measure.ReasonFinal, "t0001/f.mp4"
			recs := make([]measure.TransportRecord, n)
			for i := range recs {
				recs[i] = one
			}
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				r.mu.Lock()
				r.pending = append(r.pending[:0], recs...)
				r.mu.Unlock()
				r.cut()
				for len(r.spool.files) > 0 {
					if err := r.spool.remove(r.spool.files[0]); err != nil {
						b.Fatal(err)
					}
				}
			}
			cpu.report(b)
		})
	}
}

// benchTracked is a Recorder sampling every connection, and the server
// side of a loopback TCP connection.
func benchTracked(b *testing.B) (*Recorder, *net.TCPConn) {
	b.Helper()
	return benchRecorder(b, 1)
}

// benchRecorder is a Recorder sampling at rate, and the server side of a
// loopback TCP connection. Its Interval is the appliance's default (a
// timer is made and stopped; none fires within a benchmark).
func benchRecorder(b *testing.B, rate float64) (*Recorder, *net.TCPConn) {
	b.Helper()
	r, err := New(Config{Appliance: "a1", Dir: b.TempDir(), SampleRate: rate, Interval: 5 * time.Second})
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

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err) // cannot fail for RUSAGE_SELF with a valid pointer
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuClock measures a benchmark loop's CPU time.
type cpuClock time.Duration

func startCPU() cpuClock { return cpuClock(processCPU()) }

// report adds cpu-ns/op; call it after the b.Loop loop (b.N is then
// the iterations it ran).
func (c cpuClock) report(b *testing.B) {
	b.ReportMetric(float64(processCPU()-time.Duration(c))/float64(b.N), "cpu-ns/op")
}

// drainPending empties the in-memory queue, so that records are queued
// (not dropped as over the limit) on every iteration.
func drainPending(r *Recorder) {
	r.mu.Lock()
	r.pending = r.pending[:0]
	r.mu.Unlock()
}
