package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/auth"
	"github.com/ocdn/ocdn/internal/clientnet"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/console"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/control"
	"github.com/ocdn/ocdn/internal/cpstore"
	"github.com/ocdn/ocdn/internal/dns"
	"github.com/ocdn/ocdn/internal/probe"
	"github.com/ocdn/ocdn/internal/rib"
	"github.com/ocdn/ocdn/internal/serve"
	"github.com/ocdn/ocdn/internal/steer"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// Control is a control plane assembled from its config.
type Control struct {
	srv     *control.Server
	console *console.Console // nil without console tokens
	store   *cpstore.Store
	servers []*serve.Server
	dns     *dns.Server // nil without a dns section
	certs   *certs
	reg     *prometheus.Registry
	log     *slog.Logger
}

// ControlFiles are what a control-plane config names, read and checked.
type ControlFiles struct {
	Catalog         *content.Catalog
	Keys            *urlsign.KeySet
	AdminToken      string
	ApplianceSecret auth.Secret
	Feed            content.Feed
	// ViewerToken and OperatorToken are the web console's credentials.
	ViewerToken, OperatorToken string
}

// ReadControlFiles reads and checks every file cfg names except the store
// and the route files; errors name the config field.
func ReadControlFiles(cfg *config.Control) (ControlFiles, error) {
	var f ControlFiles
	var err error
	if f.Catalog, err = content.Load(cfg.Catalog); err != nil {
		return f, fmt.Errorf("catalog: %w", err)
	}
	if f.Keys, err = urlsign.LoadKeySet(cfg.KeyFile); err != nil {
		return f, fmt.Errorf("key_file: %w", err)
	}
	if f.AdminToken, err = readSecretFile("admin_token_file", cfg.AdminTokenFile); err != nil {
		return f, err
	}
	if f.ViewerToken, err = readSecretFile("viewer_token_file", cfg.ViewerTokenFile); err != nil {
		return f, err
	}
	if f.OperatorToken, err = readSecretFile("operator_token_file", cfg.OperatorTokenFile); err != nil {
		return f, err
	}
	// The files differ (config validation); their contents must too, and
	// a token may face a network, so it must not be a short password.
	for _, t := range []struct{ field, path, tok string }{
		{"viewer_token_file", cfg.ViewerTokenFile, f.ViewerToken}, {"operator_token_file", cfg.OperatorTokenFile, f.OperatorToken}} {
		if t.tok != "" && len(t.tok) < console.MinTokenLen {
			return f, fmt.Errorf("%s: %s holds %d characters, want at least %d (openssl rand -hex 16)", t.field, t.path, len(t.tok), console.MinTokenLen)
		}
	}
	switch v := f.ViewerToken; {
	case v != "" && v == f.OperatorToken:
		return f, fmt.Errorf("viewer_token_file: %s holds the operator token: viewers and operators need different tokens", cfg.ViewerTokenFile)
	case v != "" && v == f.AdminToken:
		return f, fmt.Errorf("viewer_token_file: %s holds the admin token: a viewer would hold the admin credential", cfg.ViewerTokenFile)
	}
	if cfg.ApplianceSecretFile != "" {
		b, err := os.ReadFile(cfg.ApplianceSecretFile)
		if err != nil {
			return f, fmt.Errorf("appliance_secret_file: %w", err)
		}
		if f.ApplianceSecret, err = auth.ParseSecret(b); err != nil {
			return f, fmt.Errorf("appliance_secret_file %s: %w", cfg.ApplianceSecretFile, err)
		}
	}
	if cfg.PopularityFeed != "" {
		if f.Feed, err = content.LoadFeed(cfg.PopularityFeed, f.Catalog); err != nil {
			return f, fmt.Errorf("popularity_feed: %w", err)
		}
	}
	return f, nil
}

// NewControl builds a control plane: it reads the files cfg names, listens,
// opens the state store (a replica that cannot reach PostgreSQL fails
// here, naming the DSN with its password masked), loads route files and
// computes the first manifests.
func NewControl(ctx context.Context, cfg *config.Control, h Hooks) (*Control, error) {
	h.defaults()
	files, err := ReadControlFiles(cfg)
	if err != nil {
		return nil, err
	}
	log := h.Logger.With("component", "control-daemon")
	if cfg.InsecureUnauthenticatedAppliances {
		log.Warn("insecure_unauthenticated_appliances is set: anyone may heartbeat, report routes and fetch fill plans as any appliance; a development mode only")
	}
	crt, err := loadCerts("tls", cfg.TLS, log)
	if err != nil {
		return nil, err
	}
	lns, err := listenAll(cfg.Listen, h)
	if err != nil {
		return nil, err
	}
	nsl, err := listenNetns(cfg.ListenNetns, cfg.Listen)
	if err != nil {
		closeAll(lns)
		return nil, err
	}
	lns = append(lns, nsl...)
	c := &Control{certs: crt, reg: h.Registry, log: log}
	ok := false
	defer func() {
		if !ok {
			closeAll(lns)
			if c.dns != nil {
				c.dns.Close()
			}
			if c.store != nil {
				c.store.Close()
			}
		}
	}()
	if c.dns, err = listenDNS(cfg, h, h.Logger); err != nil {
		return nil, err
	}
	dsn := cfg.Store
	if dsn == "" {
		dsn = "control.db"
	}
	if c.store, err = cpstore.Open(ctx, dsn); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	ccfg := control.Config{
		Inventory: cfg.Inventory, Catalog: files.Catalog, OriginURL: strings.TrimSuffix(cfg.OriginURL, "/"), Keys: files.Keys,
		AdminToken: files.AdminToken, HeartbeatInterval: cfg.HeartbeatInterval, Replicas: cfg.Replicas, TokenTTL: cfg.TokenTTL,
		ActivePoll: cfg.ActivePoll, Store: c.store, SyncInterval: cfg.SyncInterval, ApplianceSecret: files.ApplianceSecret,
		Measured: measuredSteering(cfg.Steering),
		Logger:   h.Logger, Registry: h.Registry, Now: h.Now,
	}
	if cfg.DNS != nil {
		ccfg.Domain = cfg.DNS.CanonicalDomain()
	}
	if cfg.ApplianceCAFile != "" {
		if ccfg.ApplianceRoots, err = clientnet.LoadCAs(cfg.ApplianceCAFile); err != nil {
			return nil, fmt.Errorf("appliance_ca_file: %w", err)
		}
	}
	if cfg.TurnUp.On() {
		ccfg.TurnUp = &control.TurnUp{FillShare: cfg.TurnUp.FillShare, SkipDownload: !cfg.TurnUp.Download()}
		if cfg.TurnUp.FillShare == 0 {
			ccfg.TurnUp.FillShare = 1
		}
	}
	if m := cfg.Measure; m != nil {
		ccfg.MeasureDir = m.Dir
		ccfg.ProbeTargets = m.Recipe.Targets
		ccfg.Recipe = probe.RecipeConfig{Pulses: m.Recipe.Pulses, PulseDelay: m.Recipe.PulseDelay, PulseTimeout: m.Recipe.PulseTimeout,
			Types: m.Recipe.Types, RangeBytes: int64(m.Recipe.PulseSize), Interval: m.Recipe.Interval}
		if ccfg.Recipe.Interval == 0 {
			ccfg.Recipe.Interval = 10 * time.Minute
		}
		ccfg.ProbeBothFamilies = m.Recipe.Families == "both"
		if c.dns != nil {
			ccfg.ProbeLog = c.dns.Probes()
		}
	}
	start, end := cfg.Fill.Hours()
	ccfg.Fill = control.FillConfig{StartHour: start, EndHour: end, EscalateAfter: cfg.Fill.EscalateAfter, Feed: files.Feed,
		HalfLife: cfg.Placement.HalfLife, Hysteresis: cfg.Placement.Hysteresis, ReplanInterval: cfg.Placement.ReplanInterval,
		CheckInterval: cfg.Placement.CheckInterval, RankingChange: cfg.Placement.RankingChange, MaxChurn: cfg.Placement.MaxChurn}
	if ccfg.Fill.ReplanInterval == 0 {
		ccfg.Fill.ReplanInterval = time.Hour
	}
	if c.srv, err = control.New(ccfg); err != nil {
		return nil, err
	}
	for _, rf := range cfg.RouteFiles {
		routes, format, err := ReadRoutes(rf.File)
		if err != nil {
			return nil, fmt.Errorf("route_files: %w", err)
		}
		if err := c.srv.LoadSiteRoutes(rf.Site, routes); err != nil {
			return nil, fmt.Errorf("route_files: %s: %w", rf.File, err)
		}
		log.Info("global routes loaded", "site", rf.Site, "file", rf.File, "format", format, "routes", len(routes))
	}
	if files.ViewerToken != "" || files.OperatorToken != "" {
		if c.console, err = newConsole(cfg, files, c.srv, c.store, h); err != nil {
			return nil, err
		}
	}
	grace := h.ShutdownGrace
	if grace == 0 {
		grace = 10 * time.Second
	}
	web, err := withBrowsers(c.srv.Handler(), cfg, h.Registry)
	if err != nil {
		return nil, fmt.Errorf("cors: %w", err)
	}
	full := opsHandler(console.Mount(web, c.console), h.Registry, c.srv.Health)
	opts := serve.Options{Logger: h.Logger, TLS: crt.config(), Grace: grace, Registry: h.Registry}
	if len(cfg.OpsListen) == 0 {
		c.servers = servers(lns, full, opts)
	} else {
		ops, err := listenAll(cfg.OpsListen, Hooks{})
		if err != nil {
			return nil, fmt.Errorf("ops_listen: %w", err)
		}
		c.servers = append(servers(lns, withoutOps(full), opts), servers(ops, full, opts)...)
	}
	ok = true
	return c, nil
}

// newConsole builds the web console served at /ui/ (internal/console) on
// the control plane it shows; it samples every heartbeat interval.
func newConsole(cfg *config.Control, files ControlFiles, srv *control.Server, store *cpstore.Store, h Hooks) (*console.Console, error) {
	cc := console.Config{Plane: srv, Audit: store, Inventory: cfg.Inventory, Catalog: files.Catalog,
		ViewerToken: files.ViewerToken, OperatorToken: files.OperatorToken, SampleEvery: cfg.HeartbeatInterval,
		Logger: h.Logger, Now: h.Now}
	if m := srv.Measure(); m != nil {
		cc.Measure, cc.MeasureDir = m, cfg.Measure.Dir
	}
	con, err := console.New(cc)
	if err != nil {
		return nil, fmt.Errorf("viewer_token_file, operator_token_file: %w", err)
	}
	return con, nil
}

// ReadRoutes reads an MRT dump or a prefix list.
func ReadRoutes(path string) ([]rib.Route, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	routes, format, err := rib.ReadRoutes(f)
	if err != nil {
		return nil, format, fmt.Errorf("%s: %w", path, err)
	}
	return routes, format, nil
}

// Server is the control plane itself (for the lab's report and tests).
func (c *Control) Server() *control.Server { return c.srv }

// URLs are the base URLs the API is served on, one per listen address.
func (c *Control) URLs() []string { return urls(c.servers) }

// Addrs are the addresses the API listens on.
func (c *Control) Addrs() []net.Addr {
	out := make([]net.Addr, len(c.servers))
	for i, s := range c.servers {
		out[i] = s.Addr()
	}
	return out
}

// DNS is the authoritative DNS server (nil without a dns section): its
// addresses, zone and probe log.
func (c *Control) DNS() *dns.Server { return c.dns }

// Registry holds the control plane's metrics.
func (c *Control) Registry() *prometheus.Registry { return c.reg }

// Run serves until ctx ends, then drains and closes the store (and the
// measurement store, compacting it into Parquet).
func (c *Control) Run(ctx context.Context) error {
	defer c.store.Close()
	c.log.Info("control plane serving", "urls", c.URLs())
	fns := []func(context.Context) error{serveAll(c.servers), c.srv.Run,
		func(ctx context.Context) error { watchSIGHUP(ctx, c.certs); return nil }}
	if c.dns != nil {
		fns = append(fns, c.dns.Run)
	}
	if c.console != nil {
		fns = append(fns, c.console.Run)
	}
	return runGroup(ctx, fns...)
}

// measuredSteering maps the steering section onto the control plane's
// settings (validated by config.Control.Validate).
func measuredSteering(st config.Steering) control.MeasuredSteering {
	m := control.MeasuredSteering{Enabled: st.Measured, AllowIXP: st.AllowIXP, Metric: st.Metric,
		MinSamples: st.MinSamples, Margin: st.Margin, Refresh: st.Refresh, Window: st.Window, MaxStep: st.MaxStep,
		QoE: st.QoEWatch, Experiment: st.Experiment}
	if st.Eligibility == config.EligibleEmbeddedIXP {
		m.Eligibility = steer.EligibleEmbeddedIXP
	}
	return m
}
