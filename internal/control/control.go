// Package control provides the control plane: the inventory of ISPs, sites
// and appliances, what each appliance holds and whether it is healthy, the
// manifests that tell appliances what to fill, and the steering API that
// hands clients ranked lists of signed URLs.
package control

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gaissmai/bart"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/auth"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/cpstore"
	"github.com/ocdn/ocdn/internal/health"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/probe"
	"github.com/ocdn/ocdn/internal/rib"
	"github.com/ocdn/ocdn/internal/shardmetric"
	"github.com/ocdn/ocdn/internal/steer"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// Config wires a control plane.
type Config struct {
	Inventory config.Inventory
	Catalog   *content.Catalog
	// OriginURL is where appliances fill from (http://host:port).
	OriginURL string
	Keys      *urlsign.KeySet
	// AdminToken authorizes operator-only parameters (client=, explain=1).
	AdminToken        string
	HeartbeatInterval time.Duration
	// Replicas is how many appliances of a site hold each file.
	Replicas int
	TokenTTL time.Duration
	// ActivePoll turns on the active prober: /healthz of every appliance
	// every half heartbeat interval (poll.go).
	ActivePoll bool
	// TurnUp, when set, holds clients back from an appliance until its
	// turn-up checks pass (maintenance.go).
	TurnUp *TurnUp
	// Store, when set, persists appliance state and admin actions and
	// shares them with other replicas, read every SyncInterval (default
	// half the heartbeat interval; state.go).
	Store        *cpstore.Store
	SyncInterval time.Duration
	// ApplianceSecret, when set, makes appliances authenticate with
	// tokens minted from it (internal/auth); KeyPropagation is how long a
	// new URL-signing key is published before it signs (default three
	// heartbeat intervals).
	ApplianceSecret auth.Secret
	KeyPropagation  time.Duration
	// MeasureDir, when set, is where probe reports are stored (Parquet);
	// the control plane then serves GET /v1/recipe and POST /v1/reports.
	MeasureDir string
	// Recipe shapes the probe recipes handed to clients; ProbeTargets is
	// how many steered appliances each probes (default 3).
	Recipe       probe.RecipeConfig
	ProbeTargets int
	// ProbeBothFamilies adds, for a dual-stack client (one that asks with
	// family=both), for every probe target with an address of the other
	// family too, a target over that family (id "<appliance>/ipv6" or
	// "/ipv4"), so clients measure IPv4 and IPv6 to the same appliance.
	ProbeBothFamilies bool
	// ProbeLog is the authoritative DNS server's log of probe-name
	// queries (daemon: the dns section's server); reports' dns pulses are
	// joined with it by nonce. Nil joins nothing.
	ProbeLog ProbeLog
	// Measured lets measurements move clients between eligible sites and
	// runs steering experiments (needs MeasureDir; measured.go).
	Measured MeasuredSteering
	// Fill tunes popularity, placement and fill (fill.go).
	Fill FillConfig
	// Domain, when set, is the CDN's DNS domain: steering URLs name
	// appliances (ipv4-<id>-<site>.<domain>, docs/dns.md) rather than
	// giving their addresses.
	Domain string
	// ApplianceRoots verifies the certificates of appliances that serve
	// TLS (inventory tls: true); nil means the system's roots.
	ApplianceRoots *x509.CertPool
	Logger         *slog.Logger
	Registry       prometheus.Registerer
	Now            func() time.Time
}

// Server is the control plane. It is an http.Handler; Run keeps health
// current.
type Server struct {
	cfg    Config
	log    *slog.Logger
	engine *steer.Engine
	routes *rib.RIB
	locate *bart.Table[config.Location]
	ispOf  *bart.Table[config.ISP]
	// applianceSite maps appliance ids to their site (read-only).
	applianceSite map[string]string
	// eps is how each appliance is reached (read-only; endpoint.go), and
	// checkClient fetches from appliances for the control plane's checks.
	eps         map[string]endpoint
	checkClient *http.Client
	measure     *measure.Ingester
	// msteer is measured steering and the experiment (nil when neither
	// is configured).
	msteer   *measuredSteering
	contexts *measure.ContextSigner // signs recipe contexts; nil without a measurement store
	health   *health.Tracker

	sites map[string]config.Site

	mu   sync.Mutex
	held map[string]map[string]bool // appliance → files it reported
	gen  map[string]uint64          // appliance → content generation last received

	snap      atomic.Pointer[steer.Snapshot]
	changes   atomic.Uint64 // calls of rebuild so far
	rebuildMu sync.Mutex    // held while a snapshot is built and published
	built     uint64        // changes covered by the last snapshot; under rebuildMu

	routeMu  sync.Mutex
	routeSeq map[string]routeState

	// hs is heartbeat bookkeeping (heartbeat.go).
	hs      healthState
	turnUp  turnUpState
	persist persister
	keys    keyRing

	// fill is popularity, manifests and fill progress (fill.go).
	fill *fillState
	// maxFileSize is the catalog's largest file (read-only).
	maxFileSize int64

	metrics metrics
}

type metrics struct {
	steerRequests *prometheus.CounterVec
	// steerOK and steerBad are steerRequests' children, resolved once.
	steerOK, steerBad prometheus.Counter
	steerLatency      *shardmetric.Histogram
	heartbeats        prometheus.Counter
	serving           prometheus.Gauge
	routeReports      prometheus.Counter
	storeUp           prometheus.Gauge
	certFaults        *prometheus.GaugeVec
}

// New validates the config and computes manifests and the first snapshot.
func New(cfg Config) (*Server, error) {
	if err := cfg.Inventory.ValidateInventory(netip.Prefix{}); err != nil {
		return nil, err
	}
	if cfg.Catalog == nil || cfg.Keys == nil {
		return nil, errors.New("control: catalog and keys are required")
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 5 * time.Second
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 2
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.ProbeTargets <= 0 {
		cfg.ProbeTargets = 3
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "control"),
		engine: &steer.Engine{Keys: func() *urlsign.KeySet { return cfg.Keys }, TokenTTL: cfg.TokenTTL, Now: cfg.Now},
		routes: rib.New(),
		locate: new(bart.Table[config.Location]),
		ispOf:  new(bart.Table[config.ISP]),

		applianceSite: map[string]string{},
		health:        health.NewTracker(cfg.HeartbeatInterval, 3),
		sites:         map[string]config.Site{},
		held:          map[string]map[string]bool{},
		gen:           map[string]uint64{},

		routeSeq: map[string]routeState{},
	}
	eps, err := endpoints(cfg.Inventory, cfg.Domain)
	if err != nil {
		return nil, err
	}
	s.eps, s.checkClient = eps, applianceClient(eps, cfg.ApplianceRoots, 10*time.Second)
	s.initMetrics(cfg.Registry)
	s.engine.Keys = s.signingKeys
	for _, site := range cfg.Inventory.Sites {
		s.sites[site.ID] = site
	}
	s.loadLocations()
	for _, a := range cfg.Inventory.Appliances {
		s.applianceSite[a.ID] = a.Site
	}
	if err := s.openMeasure(); err != nil {
		return nil, err
	}
	s.place()
	s.rebuild()
	return s, nil
}

func (s *Server) initMetrics(reg prometheus.Registerer) {
	s.metrics = metrics{
		steerRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ocdn_control_steer_requests_total", Help: "Steering requests by outcome."}, []string{"outcome"}),
		steerLatency: shardmetric.NewHistogram("ocdn_control_steer_duration_seconds", "Time to answer a steering request.",
			prometheus.ExponentialBuckets(0.00005, 4, 10)),
		heartbeats:   prometheus.NewCounter(prometheus.CounterOpts{Name: "ocdn_control_heartbeats_total", Help: "Heartbeats received."}),
		serving:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "ocdn_control_appliances_serving", Help: "Appliances steering may send clients to."}),
		routeReports: prometheus.NewCounter(prometheus.CounterOpts{Name: "ocdn_control_route_reports_total", Help: "Route reports (snapshots and deltas) applied."}),
		storeUp:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "ocdn_control_store_up", Help: "1 while the state store answers, 0 while the control plane serves from memory."}),
		certFaults: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ocdn_control_appliance_certificate_faults",
			Help: "1 while the prober finds an appliance's TLS certificate faulty (fault: name_mismatch, expired, untrusted, unreadable, no_tls), keeping it out of steering."},
			[]string{"appliance", "fault"}),
	}
	s.metrics.steerOK = s.metrics.steerRequests.WithLabelValues("ok")
	s.metrics.steerBad = s.metrics.steerRequests.WithLabelValues("bad_request")
	if reg != nil {
		reg.MustRegister(s.metrics.steerRequests, s.metrics.steerLatency, s.metrics.heartbeats, s.metrics.serving, s.metrics.routeReports, s.metrics.certFaults)
		if s.cfg.Store != nil {
			s.metrics.storeUp.Set(1)
			reg.MustRegister(s.metrics.storeUp)
		}
	}
}

// loadLocations records each ISP's location for its prefixes: the
// distance tie-break needs to know roughly where a client is.
func (s *Server) loadLocations() {
	for _, isp := range s.cfg.Inventory.ISPs {
		for _, p := range isp.Prefixes {
			s.locate.Insert(p.Prefix, isp.Location)
			s.ispOf.Insert(p.Prefix, isp)
		}
	}
}

// rebuild publishes a new steering snapshot from current state, which
// the caller has just changed. Builds are serialized, so a snapshot built
// from older state is never published after one built from newer; a
// caller whose change a build that started after it already covers
// returns at once, so a burst of changes (a site's appliances failing
// their probes together) costs a few builds, not one each.
func (s *Server) rebuild() {
	change := s.changes.Add(1)
	s.rebuildMu.Lock()
	defer s.rebuildMu.Unlock()
	if s.built >= change {
		return
	}
	s.built = s.changes.Load()
	now := s.cfg.Now()
	snap := &steer.Snapshot{
		Routes:     ribView{s.routes},
		Appliances: map[string]*steer.Appliance{},
		Locate:     s.locate.Lookup,
		Measured:   s.measuredView(),
	}
	serving := 0
	s.mu.Lock()
	for _, a := range s.cfg.Inventory.Appliances {
		site := s.sites[a.Site]
		ok, st := s.applianceHealth(a.ID, now)
		sa := &steer.Appliance{ID: a.ID, Site: a.Site, Kind: site.Kind, BaseURL: s.eps[a.ID].base,
			Location: site.Location, Serving: ok, State: string(st.State), Holds: s.held[a.ID], Weight: st.Weight}
		// Steering answers each client with URLs of its own family.
		sa.BaseFamily = steer.FamilyIPv4
		if a.Address.Addr().Is6() {
			sa.BaseFamily = steer.FamilyIPv6
		}
		sa.BaseURL6 = s.eps[a.ID].base6
		if sa.Serving {
			serving++
		}
		snap.Appliances[a.ID] = sa
		if site.Kind == config.SiteIXP || site.Kind == config.SiteFallback {
			snap.Global = append(snap.Global, a.ID)
		}
	}
	s.mu.Unlock()
	s.metrics.serving.Set(float64(serving))
	s.snap.Store(snap)
}

// Run re-evaluates health every half heartbeat interval until ctx ends, so
// an appliance that stops reporting leaves steering within
// MissedBeats+0.5 intervals. On the way out it closes the measurement
// store, compacting what it holds into Parquet.
func (s *Server) Run(ctx context.Context) error {
	if s.measure != nil {
		defer func() {
			if err := s.measure.Close(); err != nil {
				s.log.Error("closing the measurement store", "err", err)
			}
		}()
	}
	if s.msteer != nil {
		mctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); s.msteer.run(mctx, s) }()
		defer func() { stop(); <-done }()
	}
	t := time.NewTicker(s.cfg.HeartbeatInterval / 2)
	defer t.Stop()
	defer s.startBackground(ctx)()
	last := s.states()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.turnUpTick(ctx)
			s.keysTick()
			if cur := s.states(); !equalStates(cur, last) {
				s.log.Info("appliance states changed", "states", cur)
				last = cur
				s.rebuild()
			}
		}
	}
}

func (s *Server) states() map[string]string {
	now := s.cfg.Now()
	out := map[string]string{}
	for _, a := range s.cfg.Inventory.Appliances {
		out[a.ID] = s.healthKey(a.ID, now)
	}
	return out
}

func equalStates(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// ApplianceStatus is one row of GET /v1/appliances.
type ApplianceStatus = api.ApplianceStatus

// Appliances reports every appliance's state.
func (s *Server) Appliances() []ApplianceStatus {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ApplianceStatus, 0, len(s.cfg.Inventory.Appliances))
	for _, a := range s.cfg.Inventory.Appliances {
		last, _ := s.health.LastBeat(a.ID)
		serving, st := s.applianceHealth(a.ID, now)
		out = append(out, ApplianceStatus{ID: a.ID, Site: a.Site, State: string(st.State), Files: len(s.held[a.ID]),
			Prefixes: s.routes.Prefixes(a.ID), LastBeat: last, Serving: serving, Weight: st.Weight, Reason: st.Reason, Unreachable: st.Unreachable})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
