package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/origin"
	"github.com/ocdn/ocdn/internal/serve"
)

// Origin is an origin assembled from its config.
type Origin struct {
	o       *origin.Origin
	servers []*serve.Server
	certs   *certs
	log     *slog.Logger
	files   int
}

// NewOrigin builds the origin: it reads the catalog, checks the directory
// (a synthetic catalog needs none) and listens.
func NewOrigin(cfg *config.Origin, h Hooks) (*Origin, error) {
	h.defaults()
	cat, err := content.Load(cfg.Catalog)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	log := h.Logger.With("component", "origin-daemon")
	o, err := origin.New(origin.Config{Catalog: cat, Dir: cfg.Dir, Logger: h.Logger, Registry: h.Registry})
	if err != nil {
		return nil, err
	}
	crt, err := loadCerts("tls", cfg.TLS, log)
	if err != nil {
		return nil, err
	}
	lns, err := listenAll(cfg.Listen, h)
	if err != nil {
		return nil, err
	}
	grace := h.ShutdownGrace
	if grace == 0 {
		grace = 10 * time.Second
	}
	healthy := func() (string, bool) { return "ok", true }
	return &Origin{o: o, certs: crt, log: log, files: len(cat.Files),
		servers: servers(lns, opsHandler(o, h.Registry, healthy), serve.Options{Logger: h.Logger, TLS: crt.config(), Grace: grace, Registry: h.Registry})}, nil
}

// Origin is the origin itself.
func (d *Origin) Origin() *origin.Origin { return d.o }

// URLs are the base URLs the origin serves on.
func (d *Origin) URLs() []string { return urls(d.servers) }

// Run serves until ctx ends, then drains.
func (d *Origin) Run(ctx context.Context) error {
	d.log.Info("origin serving", "urls", d.URLs(), "files", d.files)
	return runGroup(ctx, serveAll(d.servers),
		func(ctx context.Context) error { watchSIGHUP(ctx, d.certs); return nil })
}
