// Package appliance provides the edge appliance daemon: it serves content
// from its store, keeps the store in line with the manifest the control
// plane computes (filling from the origin, verifying every byte), and
// reports health and what it holds.
package appliance

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/bgp"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/cors"
	"github.com/ocdn/ocdn/internal/cpclient"
	"github.com/ocdn/ocdn/internal/edge"
	"github.com/ocdn/ocdn/internal/fill"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/procstat"
	"github.com/ocdn/ocdn/internal/serve"
	"github.com/ocdn/ocdn/internal/store"
	"github.com/ocdn/ocdn/internal/transport"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// Config wires an appliance. internal/daemon builds it from the
// appliance's config file.
type Config struct {
	ID string
	// Listeners are where content is served (an IPv4 and an IPv6 socket,
	// say); the caller has bound them. OpsListeners serve /metrics,
	// /healthz and /v1/status to operators (none: not served).
	Listeners    []net.Listener
	OpsListeners []net.Listener
	// Control reaches the control plane's replicas with the appliance's
	// credential; nil means standalone: serve the store as it is, fill
	// nothing, report to nobody.
	Control           *cpclient.Client
	StoreDir          string
	Capacity          int64
	Keys              *urlsign.KeySet
	HeartbeatInterval time.Duration
	// FillConcurrency is how many files download at once.
	FillConcurrency int
	// FillRate caps fill downloads in bytes/s (0 = no cap);
	// FillUrgentRate caps those outside the window (default a quarter).
	FillRate       int64
	FillUrgentRate int64
	// FillRetireGrace is how long a file no longer listed stays after it
	// left steering (default 1m).
	FillRetireGrace time.Duration
	// FillStallTimeout gives up a fill source that sends nothing for this
	// long (default 30s).
	FillStallTimeout time.Duration
	// FillClock is the clock fill windows are read from (default the wall
	// clock; the lab compresses time).
	FillClock fill.Clock
	// FillOutOfCycleBudget is the bytes of urgent files filled outside the
	// window per cycle (default 1 GiB); FillInterval is the time between
	// fill passes (default 10s).
	FillOutOfCycleBudget int64
	FillInterval         time.Duration
	// FillStrictWindow keeps even the first fill of an empty appliance
	// inside the window (see fill.Config.StrictWindow).
	FillStrictWindow bool
	// CorruptFill is fault injection for tests and the lab: fill requests
	// (from other appliances) for these files get wrong bytes.
	CorruptFill []string
	// TLS, when set, serves HTTPS (HTTP/2 and HTTP/1.1) instead of HTTP.
	TLS *tls.Config
	// PeerRoots verifies peers (and the origin) that fill is sent to over
	// https; nil means the system's roots.
	PeerRoots *x509.CertPool
	// DrainGrace is how long, after Run's context ends, the appliance keeps
	// accepting connections while /healthz and heartbeats say draining,
	// so the control plane can steer clients away (default 0: close the
	// listener at once).
	DrainGrace time.Duration
	// DrainTimeout is how long in-flight transfers may continue after the
	// listener closes (default 10s); what is left is then cut off.
	DrainTimeout time.Duration
	// BGP, when set, runs the embedded BGP speaker: the routes it accepts
	// say which clients the appliance may serve and are reported to the
	// control plane.
	BGP *bgp.Config
	// ScrubRate is how many bytes per second the background scrubber
	// re-hashes to find objects that went bad on disk, a tenth of it
	// while more than store.ScrubBusy of the machine's CPU time is busy;
	// 0 means store.DefaultScrubRate, store.ScrubOff (any negative) turns
	// it off.
	ScrubRate int64
	// RouteHold is how long routes of a session that went down are kept,
	// to ride out flaps (default 3 heartbeat intervals).
	RouteHold time.Duration
	Logger    *slog.Logger
	// AccessLog gets one record per content request; nil sends them to
	// Logger. Use a logger with slog.DiscardHandler to turn it off.
	AccessLog *slog.Logger
	Registry  *prometheus.Registry
	// StaleLimit bounds how long the appliance serves on its last keys and
	// content while the control plane is unreachable (default 24h); past
	// it, /healthz answers 503 and heartbeats say so.
	StaleLimit time.Duration
	// MaxQueuedReports bounds the heartbeat records kept for delivery
	// after a control-plane outage (default a day at 5 s).
	MaxQueuedReports int
	// CapacityBitsPerSec is what the appliance can serve; heartbeats
	// report load against it (0: CPU alone).
	CapacityBitsPerSec float64
	// Software is the version reported in heartbeats (default the
	// module version).
	Software string
	// CORS, when set, lets pages of its origins fetch content from a
	// browser (see contentCORS).
	CORS *config.CORS
	// Transport, when set, samples TCP_INFO of content connections and
	// sends the records to the control plane (POST /v1/transport), and
	// sets connections' congestion control (its default, or a token's
	// arm's). The appliance fills in Appliance, Sender, Logger and
	// Registry.
	Transport *transport.Config
}

// Appliance is one edge cache. It owns all of its state: the fill agent
// and demand counters, the URL-signing keys it verifies with, and the
// heartbeat agent live here and go with it.
type Appliance struct {
	cfg      Config
	log      *slog.Logger
	store    *store.Store
	edge     *edge.Handler
	srvs     []*serve.Server
	ops      []*serve.Server // operator endpoints; they stop with the content servers
	draining atomic.Bool
	speaker  *bgp.Speaker
	routes   *routeBook
	fill     *fillState
	keys     atomic.Pointer[urlsign.KeySet]
	hb       hbAgent
	cors     *cors.Policy        // nil without a cors section
	tr       *transport.Recorder // nil without Config.Transport
	idHeader []string            // the value of cors.ApplianceHeader
	root     http.Handler        // what the content listeners serve
}

// New opens the store and prepares to serve on the listeners and, with
// BGP, starts the speaker without sessions (Run adds them). A process
// running several appliances (the lab) constructs every one before it
// runs any: see bgp.Speaker.Start.
func New(cfg Config) (*Appliance, error) {
	if cfg.ID == "" && cfg.Control != nil {
		return nil, errors.New("appliance: an id is required to talk to the control plane")
	}
	if cfg.Keys == nil {
		return nil, errors.New("appliance: URL-signing keys are required")
	}
	if len(cfg.Listeners) == 0 {
		return nil, errors.New("appliance: no listener")
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 5 * time.Second
	}
	if cfg.FillConcurrency <= 0 {
		cfg.FillConcurrency = 2
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.BGP != nil && cfg.RouteHold <= 0 {
		cfg.RouteHold = 3 * cfg.HeartbeatInterval
	}
	log := cfg.Logger.With("component", "appliance", "appliance", cfg.ID)
	st, err := store.Open(cfg.StoreDir, cfg.Capacity, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", cfg.StoreDir, err)
	}
	built := false
	defer func() {
		if !built {
			st.Close()
		}
	}()
	a := &Appliance{cfg: cfg, log: log, store: st, idHeader: []string{cfg.ID}}
	if a.cors, err = cors.FromConfig(cfg.CORS, contentMethods, contentRequestHeaders, cfg.Registry); err != nil {
		return nil, err
	}
	access := cfg.AccessLog
	if access == nil {
		access = cfg.Logger
	}
	ecfg := edge.Config{Store: st, Keys: a.currentKeys, Logger: cfg.Logger,
		AccessLog: access.With("component", "access"), Registry: cfg.Registry}
	listeners := cfg.Listeners
	var connContext func(context.Context, net.Conn) context.Context
	if cfg.Transport != nil {
		tcfg := *cfg.Transport
		tcfg.Appliance, tcfg.Logger, tcfg.Registry = cfg.ID, cfg.Logger, cfg.Registry
		if tcfg.Appliance == "" {
			tcfg.Appliance = "standalone"
		}
		if cfg.Control != nil {
			tcfg.Sender = transport.SenderFunc(a.sendTransport)
		}
		if a.tr, err = transport.New(tcfg); err != nil {
			return nil, err
		}
		listeners = make([]net.Listener, len(cfg.Listeners))
		for i, ln := range cfg.Listeners {
			if listeners[i], err = a.tr.Listener(ln); err != nil {
				return nil, err
			}
		}
		ecfg.OnGrant, connContext = a.tr.OnGrant, a.tr.ConnContext
	}
	a.edge = edge.New(ecfg)
	a.fill = newFillState(a)
	// The content port serves content and /healthz (what the control
	// plane's prober and load balancers check); /metrics and /v1/status
	// are for operators, on the ops listeners only.
	ops := http.NewServeMux()
	ops.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}))
	ops.HandleFunc("GET /healthz", a.handleHealth)
	ops.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(a.Status())
	})
	// Content bypasses ServeMux: its path cleaning would answer
	// /c/tok/../x with a redirect; edge answers every odd path 404 itself.
	a.root = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/c/"):
			// CORS before edge writes anything; a preflight is answered
			// without the store.
			switch a.cors.Apply(w, r) {
			case cors.Answered:
				return
			case cors.Allowed:
				w.Header()[cors.ApplianceHeader] = a.idHeader
			}
			a.serveContent(w, r)
		case r.URL.Path == "/healthz":
			a.handleHealth(w, r)
		default:
			http.NotFound(w, r)
		}
	})
	cfg.Registry.MustRegister(st.Collectors()...)
	if cfg.BGP != nil {
		a.routes = newRouteBook(cfg.RouteHold)
		if a.speaker, err = bgp.New(*cfg.BGP, cfg.Logger, a.routes.onEvent); err != nil {
			return nil, fmt.Errorf("bgp: %w", err)
		}
		// ocdn_bgp_session_up and friends on the appliance's /metrics.
		cfg.Registry.MustRegister(a.speaker)
		if err := a.speaker.Start(context.Background()); err != nil {
			return nil, fmt.Errorf("bgp: %w", err)
		}
	}
	for _, ln := range listeners {
		a.srvs = append(a.srvs, serve.New(ln, a.root, serve.Options{Logger: log, TLS: cfg.TLS, Registry: cfg.Registry,
			DrainGrace: cfg.DrainGrace, Grace: cfg.DrainTimeout, ConnContext: connContext}))
	}
	for _, ln := range cfg.OpsListeners {
		a.ops = append(a.ops, serve.New(ln, ops, serve.Options{Logger: log, Grace: time.Second, Registry: cfg.Registry}))
	}
	built = true
	return a, nil
}

// What a page may ask of the content path in a preflight: the methods
// edge serves, and the request headers players and probes send (ranges,
// conditionals, the measurement mark).
var (
	contentMethods        = []string{http.MethodGet, http.MethodHead}
	contentRequestHeaders = []string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", api.MeasurementHeader}
)

// sendTransport posts a batch to the control plane; a 4xx answer is a
// refusal that resending cannot change.
func (a *Appliance) sendTransport(ctx context.Context, b *measure.TransportBatch) error {
	err := a.cfg.Control.PostJSON(ctx, "/v1/transport", b, nil)
	var se *cpclient.StatusError
	if errors.As(err, &se) && se.Code >= 400 && se.Code < 500 && se.Code != http.StatusTooManyRequests &&
		se.Code != http.StatusUnauthorized && se.Code != http.StatusForbidden {
		return fmt.Errorf("%w: %v", transport.ErrRejected, err)
	}
	return err
}

// URL is the appliance's base URL (its first listener's).
func (a *Appliance) URL() string { return a.srvs[0].URL() }

// OpsURLs are the base URLs of the operator endpoints.
func (a *Appliance) OpsURLs() []string {
	out := make([]string, len(a.ops))
	for i, s := range a.ops {
		out[i] = s.URL()
	}
	return out
}

// URLs are the base URLs of every listener.
func (a *Appliance) URLs() []string {
	out := make([]string, len(a.srvs))
	for i, s := range a.srvs {
		out[i] = s.URL()
	}
	return out
}

// Store is the appliance's object store.
func (a *Appliance) Store() *store.Store { return a.store }

// BytesServed is the total content bytes served to clients.
func (a *Appliance) BytesServed() int64 { return a.edge.BytesServed() }

// Requests is the number of content requests answered.
func (a *Appliance) Requests() int64 { return a.edge.Requests() }

// Kill stops serving at once, dropping every connection, as a crash would.
func (a *Appliance) Kill() {
	for _, s := range append(a.srvs, a.ops...) {
		s.Kill()
	}
}

// Draining reports whether the appliance has begun to drain.
func (a *Appliance) Draining() bool { return a.draining.Load() }

func (a *Appliance) handleHealth(w http.ResponseWriter, r *http.Request) {
	if a.draining.Load() {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	if a.staleExpired() {
		http.Error(w, a.ControlPlaneState(), http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ok " + a.ControlPlaneState() + "\n"))
}

// Run serves, fills and reports until ctx ends; then it drains: /healthz
// answers 503 "draining" and a heartbeat saying so goes out at once, fill
// stops, new connections are still accepted for DrainGrace, then the
// listener closes and in-flight transfers get DrainTimeout to finish.
// Heartbeats continue (saying draining) until the server has stopped. A
// second signal is the caller's to handle (ocdn exits at once).
func (a *Appliance) Run(ctx context.Context) error {
	stopWatch := context.AfterFunc(ctx, func() {
		a.draining.Store(true)
		a.log.Info("draining", "drain_grace", a.cfg.DrainGrace, "drain_timeout", a.cfg.DrainTimeout)
	})
	defer stopWatch()
	hbCtx, stopHB := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHB()
	var wg sync.WaitGroup
	if a.cfg.Control != nil {
		wg.Add(2)
		go func() { defer wg.Done(); a.heartbeatLoop(ctx, hbCtx) }()
		go func() { defer wg.Done(); a.fillLoop(ctx) }()
	}
	// The store verifies what a crash left in doubt, checkpoints, scrubs
	// (slower while the machine's CPUs are busy: clients come first), and
	// records a clean shutdown when ctx ends.
	wg.Add(1)
	go func() {
		defer wg.Done()
		cpu := procstat.NewBusyMeter(time.Second)
		busy := func() bool { return cpu.Fraction() > store.ScrubBusy }
		if err := a.store.Run(ctx, a.cfg.ScrubRate, busy); err != nil {
			a.log.Error("store maintenance stopped", "err", err)
		}
	}()
	// Transport records outlive the drain like heartbeats do: the final
	// samples of the drained connections are spooled when it ends.
	if a.tr != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.tr.Run(hbCtx) }()
	}
	// BGP and route reports outlive the drain like heartbeats do: while
	// clients are steered away the appliance still serves its prefixes.
	if a.speaker != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.speaker.Run(hbCtx); err != nil {
				a.log.Error("bgp speaker stopped", "err", err)
			}
		}()
		if a.cfg.Control != nil {
			wg.Add(1)
			go func() { defer wg.Done(); a.reportRoutes(hbCtx, a.routes) }()
		}
	}
	err := a.serve(ctx)
	stopHB()
	wg.Wait()
	a.edge.Close()
	return err
}

// serve runs every listener's server until ctx ends and they have
// drained; the operator endpoints stay up until the content servers have
// stopped.
func (a *Appliance) serve(ctx context.Context) error {
	opsCtx, stopOps := context.WithCancel(context.WithoutCancel(ctx))
	var ops sync.WaitGroup
	for _, s := range a.ops {
		ops.Add(1)
		go func() { defer ops.Done(); s.Run(opsCtx) }()
	}
	defer func() { stopOps(); ops.Wait() }()
	errs := make(chan error, len(a.srvs))
	for _, s := range a.srvs {
		go func() { errs <- s.Run(ctx) }()
	}
	var first error
	for range a.srvs {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// BGPSessions reports the state of every BGP session (none without BGP).
func (a *Appliance) BGPSessions() []api.BGPSession {
	if a.speaker == nil {
		return nil
	}
	var out []api.BGPSession
	for _, st := range a.speaker.Status() {
		out = append(out, api.BGPSession{Neighbor: st.Address.String(), Family: string(st.Family), State: st.State, PrefixesReceived: st.PrefixesReceived, PrefixesAccepted: st.PrefixesAccepted})
	}
	return out
}

// Status is what GET /v1/status answers.
func (a *Appliance) Status() api.ApplianceRuntime {
	return api.ApplianceRuntime{ID: a.cfg.ID, ControlPlane: a.ControlPlaneState(), Draining: a.draining.Load(),
		BytesServed: a.BytesServed(), ClientBytes: a.ClientBytes(), Requests: a.Requests(), Objects: len(a.store.List()),
		Fill: a.Fill(), Reports: a.Reports(), BGP: a.BGPSessions(), RoutedPrefixes: a.RoutedPrefixes()}
}

// RoutedPrefixes is how many client prefixes the appliance holds a route for.
func (a *Appliance) RoutedPrefixes() int {
	if a.routes == nil {
		return 0
	}
	return a.routes.prefixes()
}
