// Package console provides the operator and researcher web console the
// control plane serves at /ui/: the fleet on a map and in a table, route
// lookups with the full steering explanation, the consistency and
// no-backup reports, fill and placement, live measurement quantiles and
// experiment arms, and drain and enable actions with confirmation and an
// audit log.
//
// Pages are rendered on the server (html/template, so everything
// user-supplied is escaped by context); a small script (static/app.js)
// refreshes the live part of each page and draws the plots with uPlot.
// The chart library and the world outline come from npm (`make
// console-assets`) and are embedded at build time; a binary built without
// them still serves every page, without plots and map outline, and says
// so. docs/console.md describes the pages, the access model and the
// assets.
//
// Access: a viewer token reads, an operator token also acts (both from
// the control plane's config). After the login form the session is an
// HTTP-only, SameSite=Strict cookie holding a ticket signed with the
// role's token; every POST carries a CSRF token derived from the session
// and passes net/http's cross-origin protection. The console grants no
// more than the API does: what the API serves only to the admin token
// (route lookups, steering explanations, the fill summary, placement and
// replans, drain and enable) needs an operator session here, and actions
// call the same control-plane functions the API's handlers call, recorded
// in the same audit log.
package console

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/control"
	"github.com/ocdn/ocdn/internal/cpstore"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/rib"
	"github.com/ocdn/ocdn/internal/stats"
)

// Plane is what the console reads from and asks of the control plane;
// *control.Server implements it.
type Plane interface {
	Appliances() []api.ApplianceStatus
	Latest(id string) (api.Heartbeat, bool)
	Consistency() rib.Report
	Lookup(addr netip.Addr) (netip.Prefix, []rib.Candidate, bool)
	Explain(client netip.Addr, path string, n int) (api.FileSteer, error)
	FillSummary() api.FillSummary
	// PlacementStatus is the control plane's record of its replans and,
	// per site, the top files by predicted demand (top ≤ 0: none).
	PlacementStatus(top int) api.PlacementStatus
	Drain(req control.DrainRequest) ([]string, error)
	Enable(ctx context.Context, req control.DrainRequest) ([]string, error)
}

// Measurements are the live measurement aggregates; *measure.Ingester
// implements it.
type Measurements interface {
	Aggregates() []measure.Aggregate
	Sketch(group, site, metric string) *stats.Sketch
}

// AuditLog is where operator actions are recorded; *cpstore.Store
// implements it.
type AuditLog interface {
	AdminLog(ctx context.Context) ([]cpstore.AdminAction, error)
}

// Config wires a console.
type Config struct {
	Plane Plane
	// Measure, when set, feeds the measurement page; MeasureDir, when
	// set, is where the ingester writes Parquet, read for the experiment
	// arms.
	Measure    Measurements
	MeasureDir string
	// Audit, when set, is shown on the audit page.
	Audit     AuditLog
	Inventory config.Inventory
	Catalog   *content.Catalog
	// ViewerToken and OperatorToken are the console's credentials; at
	// least one must be set, and they must differ.
	ViewerToken, OperatorToken string
	// SampleEvery is how often the console samples the control plane for
	// its plots and event list (default 5s); History bounds the samples
	// kept (default 720).
	SampleEvery time.Duration
	History     int
	// ArmsEvery is how often the experiment arms are recomputed from
	// the Parquet files (default 30s).
	ArmsEvery time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
}

// MinTokenLen keeps guessable passwords out: the console may face a
// network, and a token is all that guards it.
const MinTokenLen = 16

// Console serves the web console. It is an http.Handler for the paths
// under /ui/; Run keeps its history.
type Console struct {
	cfg   Config
	log   *slog.Logger
	pages map[string]*template.Template
	mux   http.Handler
	geo   geoMap
	hist  *history

	armsMu sync.Mutex
	arms   armsView
	// armsFiles is what armsLoop gathered from each Parquet file (by
	// path) of the last computation; only armsLoop touches it.
	armsFiles map[string]*armsFile
}

// New checks the config and parses the templates.
func New(cfg Config) (*Console, error) {
	if cfg.Plane == nil || cfg.Catalog == nil {
		return nil, errors.New("console: plane and catalog are required")
	}
	if cfg.ViewerToken == "" && cfg.OperatorToken == "" {
		return nil, errors.New("console: needs a viewer or an operator token")
	}
	for _, t := range []struct{ field, tok string }{{"viewer token", cfg.ViewerToken}, {"operator token", cfg.OperatorToken}} {
		if t.tok != "" && len(t.tok) < MinTokenLen {
			return nil, fmt.Errorf("console: %s: %d characters, want at least %d (make one with `openssl rand -hex 16`)", t.field, len(t.tok), MinTokenLen)
		}
	}
	if cfg.ViewerToken != "" && cfg.ViewerToken == cfg.OperatorToken {
		return nil, errors.New("console: the viewer and operator tokens are the same: a viewer could act")
	}
	if cfg.SampleEvery <= 0 {
		cfg.SampleEvery = 5 * time.Second
	}
	if cfg.History <= 0 {
		cfg.History = 720
	}
	if cfg.ArmsEvery <= 0 {
		cfg.ArmsEvery = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Console{cfg: cfg, log: cfg.Logger.With("component", "console"), hist: newHistory(cfg.History, trailSamples(cfg.SampleEvery))}
	var err error
	if c.pages, err = parseTemplates(); err != nil {
		return nil, err
	}
	c.geo = newGeoMap(cfg.Inventory.Sites, c.log)
	c.routes()
	return c, nil
}

// measureTrail is the least time a plotted measurement quantile spans.
const measureTrail = 10 * time.Second

// trailSamples is how many samples span the measurement window: at least
// measureTrail, and at least six samples.
func trailSamples(every time.Duration) int {
	return max(6, int((measureTrail+every-1)/every))
}

// trailWindow is how much time each plotted measurement quantile spans.
func (c *Console) trailWindow() time.Duration {
	return time.Duration(trailSamples(c.cfg.SampleEvery)) * c.cfg.SampleEvery
}

// Run samples the control plane every SampleEvery and recomputes the
// experiment arms every ArmsEvery until ctx ends; it owns both loops.
func (c *Console) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	if c.cfg.MeasureDir != "" {
		wg.Add(1)
		go func() { defer wg.Done(); c.armsLoop(ctx) }()
	}
	t := time.NewTicker(c.cfg.SampleEvery)
	defer t.Stop()
	for {
		c.sample()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ServeHTTP serves the console's paths (under /ui/).
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

// Mount serves the console at /ui/ in front of api, which keeps every
// other path.
func Mount(api http.Handler, c *Console) http.Handler {
	if c == nil {
		return api
	}
	mux := http.NewServeMux()
	mux.Handle("/ui/", c)
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	mux.Handle("/", api)
	return mux
}
