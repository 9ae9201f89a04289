// Package transport provides an appliance's transport records: it samples
// TCP_INFO of a share of the content connections (tcpinfo.Monitor), tags
// each sample with what the appliance knows of the connection (the
// client's /24 or /48, the file last requested, the experiment arm of the
// URL token), sets each connection's congestion control (the appliance's
// default, or the one the token's arm names), and delivers the records to
// the control plane in batches through a bounded on-disk spool, so that
// an absent control plane costs records (counted), never serving.
//
// The cost for a connection that is not sampled: one random draw at
// accept and, per connection, one context value holding it (so that a
// token naming a congestion control can reach its socket); per request,
// one context lookup. A sampled connection is wrapped (its Close takes
// the final sample first) and pays 3 getsockopt calls per sample.
package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/tcpinfo"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// Sender delivers one batch to the control plane. It returns nil once
// the batch is stored (or was already), an error wrapping ErrRejected
// when the control plane refused it as invalid (resending cannot help),
// and any other error when it should be tried again later.
type Sender interface {
	SendTransport(ctx context.Context, b *measure.TransportBatch) error
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, b *measure.TransportBatch) error

// SendTransport calls f.
func (f SenderFunc) SendTransport(ctx context.Context, b *measure.TransportBatch) error {
	return f(ctx, b)
}

// ErrRejected marks a batch the control plane refused as invalid.
var ErrRejected = errors.New("transport: batch rejected by the control plane")

// Config configures a Recorder.
type Config struct {
	// Appliance and Site name the serving appliance in every batch.
	Appliance, Site string
	// SampleRate is the fraction of connections sampled (0 to 1);
	// Interval the time between samples of a long connection (0: only
	// the final sample).
	SampleRate float64
	Interval   time.Duration
	// CongestionControl is set on the listeners (accepted connections
	// inherit it) when not empty; New refuses a name the kernel lacks.
	CongestionControl string
	// Dir is the spool directory (required); MaxBytes bounds it
	// (default 64 MiB).
	Dir      string
	MaxBytes int64
	// Sender delivers batches; nil keeps them in the spool.
	Sender Sender
	// BatchInterval is how often records are cut into a batch and
	// delivery is tried (default 2s); BatchRecords cuts one sooner
	// (default 1000).
	BatchInterval time.Duration
	BatchRecords  int
	// RetryDelay is the wait after a failed delivery (default 5s).
	RetryDelay time.Duration
	Logger     *slog.Logger
	Registry   prometheus.Registerer
	Now        func() time.Time
}

// DefaultMaxBytes bounds the spool when Config.MaxBytes is 0.
const DefaultMaxBytes = 64 << 20

// Recorder samples connections and delivers their records. Its one
// goroutine is Run's; per-connection timers belong to tcpinfo.Monitor and
// stop at each connection's Close.
type Recorder struct {
	cfg   Config
	log   *slog.Logger
	mon   *tcpinfo.Monitor
	spool *spool
	m     *metrics

	mu      sync.Mutex
	pending []measure.TransportRecord
	kick    chan struct{}

	// lastReject is the last refusal logged (Run's goroutine only).
	lastReject string
	// invalidLogged is set once a record failing validation was logged.
	invalidLogged atomic.Bool

	// unavailable holds congestion controls a token named that this
	// kernel refused, so they are not tried again on every request.
	unavailable sync.Map
}

// New checks cfg (the default congestion control against the kernel),
// opens the spool (resuming what an earlier run left) and returns a
// Recorder; call Run to deliver.
func New(cfg Config) (*Recorder, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.BatchInterval <= 0 {
		cfg.BatchInterval = 2 * time.Second
	}
	if cfg.BatchRecords <= 0 {
		cfg.BatchRecords = 1000
	}
	cfg.BatchRecords = min(cfg.BatchRecords, measure.MaxTransportRecords)
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = 5 * time.Second
	}
	if cfg.Appliance == "" {
		return nil, errors.New("transport: the appliance id is required")
	}
	if cfg.Dir == "" {
		return nil, errors.New("transport: dir: a spool directory is required")
	}
	if cfg.CongestionControl != "" {
		if err := tcpinfo.CheckCongestion(cfg.CongestionControl); err != nil {
			return nil, fmt.Errorf("transport.congestion_control: %w", err)
		}
	}
	if _, err := tcpinfo.NewMonitor(tcpinfo.MonitorConfig{SampleRate: cfg.SampleRate, Interval: cfg.Interval}); err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	// The listener draws which connections are sampled itself, before
	// it allocates anything for one; the monitor then tracks every
	// connection it is given.
	mon, err := tcpinfo.NewMonitor(tcpinfo.MonitorConfig{SampleRate: 1, Interval: cfg.Interval})
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	r := &Recorder{cfg: cfg, log: cfg.Logger.With("component", "transport"), mon: mon, kick: make(chan struct{}, 1)}
	if r.m, err = newMetrics(cfg.Registry); err != nil {
		return nil, err
	}
	if r.spool, err = openSpool(cfg.Dir, cfg.MaxBytes); err != nil {
		return nil, err
	}
	r.m.spoolBytes.Set(float64(r.spool.bytes))
	r.m.queued.Set(float64(r.spool.records))
	return r, nil
}

// Listener wraps ln: its connections are drawn for sampling at accept,
// and a sampled one takes its final sample when closed. With a default
// congestion control, it is set on ln's socket, which accepted
// connections inherit.
func (r *Recorder) Listener(ln net.Listener) (net.Listener, error) {
	if cc := r.cfg.CongestionControl; cc != "" {
		tl, ok := ln.(*net.TCPListener)
		if !ok {
			return nil, fmt.Errorf("transport: congestion_control %s needs a TCP listener, not %T", cc, ln)
		}
		raw, err := tl.SyscallConn()
		if err != nil {
			return nil, fmt.Errorf("transport: %w", err)
		}
		if err := tcpinfo.ControlCongestion(cc)("tcp", ln.Addr().String(), raw); err != nil {
			return nil, fmt.Errorf("transport: setting congestion_control on %s: %w", ln.Addr(), err)
		}
	}
	return &listener{Listener: ln, r: r}, nil
}

type listener struct {
	net.Listener
	r *Recorder
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	return l.r.draw(c), nil
}

// draw is what accepting a connection costs: c as it is, or, drawn for
// sampling, wrapped and tracked. Its own function so that the benchmarks
// measure the listener's code.
func (r *Recorder) draw(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if rate := r.cfg.SampleRate; !ok || rate <= 0 || (rate < 1 && rand.Float64() >= rate) {
		return c
	}
	t := &trackedConn{tcpConn: tc, r: r}
	if t.flow = r.mon.Track(tc, t.emit); t.flow == nil {
		return tc
	}
	r.m.connsSampled.Inc()
	t.accepted = r.cfg.Now()
	if ap, err := netip.ParseAddrPort(tc.RemoteAddr().String()); err == nil {
		t.prefix = measure.DefaultPrefix(ap.Addr())
	}
	return t
}

// tcpConn is net.TCPConn under a name that does not clash with the
// TCPConn method when embedded.
type tcpConn = net.TCPConn

// trackedConn is a sampled connection.
type trackedConn struct {
	*tcpConn
	r        *Recorder
	flow     *tcpinfo.Flow
	accepted time.Time
	prefix   string

	mu              sync.Mutex
	file, exp, arm  string
	congestion      string // set from a token; "" for the default
	congestionTried string
}

// TCPConn is the connection underneath, for the HTTP server's sendfile
// path (internal/serve/h1).
func (c *trackedConn) TCPConn() *net.TCPConn { return c.tcpConn }

// Close takes the final sample, then closes the socket.
func (c *trackedConn) Close() error {
	c.flow.Finish()
	return c.tcpConn.Close()
}

func (c *trackedConn) emit(rec *tcpinfo.Record, why tcpinfo.Reason) {
	now := c.r.cfg.Now()
	t := measure.TransportRecordOf(rec)
	t.SampleTime, t.ClientPrefix, t.Reason = now, c.prefix, why.String()
	t.ConnAgeUs = max(now.Sub(c.accepted).Microseconds(), 0)
	c.mu.Lock()
	t.File, t.Experiment, t.Arm = c.file, c.exp, c.arm
	c.mu.Unlock()
	c.r.add(t)
}

// connKey is the context key of the connection a request came on.
type connKey struct{}

// ConnContext is the HTTP server's ConnContext (serve.Options): it puts
// the connection, as the listener returned it (under TLS too: the server
// hands over that one, not its TLS wrapper), into every request's
// context for OnGrant.
func (r *Recorder) ConnContext(ctx context.Context, c net.Conn) context.Context {
	switch c.(type) {
	case *trackedConn, *net.TCPConn:
		return context.WithValue(ctx, connKey{}, c)
	}
	return ctx
}

// OnGrant is edge.Config.OnGrant: a request for path with a verified
// token. It records the file and arm on a sampled connection and sets
// the congestion control the token names, before the response is
// written.
func (r *Recorder) OnGrant(req *http.Request, path string, g *urlsign.Grant) {
	switch c := req.Context().Value(connKey{}).(type) {
	case *trackedConn:
		r.m.sampledRequests.Inc()
		c.mu.Lock()
		c.file, c.exp, c.arm = path, g.Experiment, g.Arm
		if cc := g.CongestionControl; cc != "" && cc != c.congestionTried {
			c.congestionTried = cc
			if r.setCongestion(c.tcpConn, cc) {
				c.congestion = cc
			}
		}
		c.mu.Unlock()
	case *net.TCPConn:
		if cc := g.CongestionControl; cc != "" {
			r.setCongestion(c, cc)
		}
	}
}

// setCongestion sets cc on c; a name the kernel lacks is counted, logged
// once, remembered, and the connection keeps the default.
func (r *Recorder) setCongestion(c *net.TCPConn, cc string) bool {
	if _, bad := r.unavailable.Load(cc); bad {
		r.m.ccUnavailable.Inc()
		return false
	}
	err := tcpinfo.SetCongestion(c, cc)
	if err == nil {
		return true
	}
	r.m.ccUnavailable.Inc()
	if errors.Is(err, tcpinfo.ErrUnavailable) {
		if _, seen := r.unavailable.LoadOrStore(cc, struct{}{}); !seen {
			r.log.Warn("a token names a congestion control this kernel lacks; serving with the default", "congestion_control", cc, "err", err)
		}
	}
	return false
}

// add queues one record; past four batches in memory (Run is not
// keeping up) the record is dropped and counted. A record the control
// plane would refuse (a kernel's figures this code did not foresee) is
// left out and counted here: in a batch, it would lose the batch.
func (r *Recorder) add(t measure.TransportRecord) {
	if t.Reason == measure.ReasonPeriodic {
		r.m.sampledPeriodic.Inc()
	} else {
		r.m.sampledFinal.Inc()
	}
	if err := t.Validate(r.cfg.Now()); err != nil {
		r.m.dropped.WithLabelValues(dropInvalid).Inc()
		if r.invalidLogged.CompareAndSwap(false, true) {
			r.log.Error("a transport record the control plane would refuse; left out (repeats are only counted)", "err", err)
		}
		return
	}
	r.mu.Lock()
	if len(r.pending) >= 4*r.cfg.BatchRecords {
		r.mu.Unlock()
		r.m.dropped.WithLabelValues(dropMemory).Inc()
		return
	}
	r.pending = append(r.pending, t)
	full := len(r.pending) >= r.cfg.BatchRecords
	r.mu.Unlock()
	r.m.queued.Inc()
	if full {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}
