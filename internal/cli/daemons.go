package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/ocdn/ocdn/internal/appliance"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/control"
	"github.com/ocdn/ocdn/internal/edge"
	"github.com/ocdn/ocdn/internal/origin"
	"github.com/ocdn/ocdn/internal/serve"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// newRegistry is a Prometheus registry with the Go and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// withOps adds /metrics and /healthz to a daemon's handler.
func withOps(h http.Handler, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return mux
}

func newOriginCmd(g *globals) *cobra.Command {
	var catalogFile, dir, listen string
	cmd := &cobra.Command{
		Use:   "origin --catalog FILE [--dir DIR]",
		Short: "Serve a catalog's files with byte ranges: the source appliances fill from",
		Long: `Serve every file of a catalog at /o/{title}/{file} with byte ranges. A synthetic
catalog (ocdn catalog synth) is served from its derived bytes; any other needs
--dir, the directory the catalog was built from. /v1/catalog returns the catalog;
/metrics and /healthz are for operators. SIGTERM drains, a second one exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cat, err := content.Load(catalogFile)
			if err != nil {
				return err
			}
			reg := newRegistry()
			o, err := origin.New(origin.Config{Catalog: cat, Dir: dir, Logger: logger, Registry: reg})
			if err != nil {
				return err
			}
			srv, err := serve.Listen(listen, withOps(o, reg), serve.Options{Logger: logger})
			if err != nil {
				return err
			}
			logger.Info("origin serving", "addr", srv.Addr().String(), "files", len(cat.Files))
			ctx, stop := signalContext(cmd.Context(), cmd.ErrOrStderr())
			defer stop()
			return srv.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&catalogFile, "catalog", "", "catalog JSON file (required)")
	cmd.Flags().StringVar(&dir, "dir", "", "directory holding the catalog's files as DIR/title/file (required unless the catalog is synthetic)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8081", "address to serve on")
	cmd.MarkFlagRequired("catalog")
	return cmd
}

func newControlCmd(g *globals) *cobra.Command {
	var configFile, storeDSN, mintToken string
	var mintTTL time.Duration
	cmd := &cobra.Command{
		Use:   "control --config FILE",
		Short: "Run the control plane: inventory, health, manifests and the steering API",
		Long: `Run the control plane described by a YAML config file: listen address, catalog,
origin URL, URL-signing key file, and the inventory of ISPs (with client
prefixes), sites (embedded, private, ixp, fallback) and appliances.

API: GET /v1/steer?files=title/file[,…]&n=5 returns, per file, a ranked list of
signed URLs; POST /v1/heartbeat and GET /v1/manifest?appliance=ID are for
appliances; GET /v1/appliances lists their states. /metrics and /healthz are
for operators. SIGTERM drains, a second one exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			var cfg config.Control
			if err := config.Load(configFile, &cfg); err != nil {
				return err
			}
			cat, err := content.Load(cfg.Catalog)
			if err != nil {
				return err
			}
			keys, err := urlsign.LoadKeySet(cfg.KeyFile)
			if err != nil {
				return err
			}
			admin := ""
			if cfg.AdminTokenFile != "" {
				b, err := os.ReadFile(cfg.AdminTokenFile)
				if err != nil {
					return err
				}
				admin = strings.TrimSpace(string(b))
			}
			reg := newRegistry()
			hc, err := controlHealthConfig(cmd.Context(), &cfg, configFile, storeDSN)
			if err != nil {
				return err
			}
			if mintToken != "" {
				if len(hc.ApplianceSecret) == 0 {
					return errors.New("--mint-token needs appliance_secret_file in the config")
				}
				fmt.Fprintln(cmd.OutOrStdout(), hc.ApplianceSecret.Mint(mintToken, time.Now().Add(mintTTL)))
				return nil
			}
			if hc.Store != nil {
				defer hc.Store.Close()
			}
			ctl, err := control.New(control.Config{Inventory: cfg.Inventory, Catalog: cat, OriginURL: cfg.OriginURL, Keys: keys,
				AdminToken: admin, HeartbeatInterval: cfg.HeartbeatInterval, Replicas: cfg.Replicas, TokenTTL: cfg.TokenTTL,
				Logger: logger, Registry: reg, Store: hc.Store, SyncInterval: cfg.SyncInterval, ApplianceSecret: hc.ApplianceSecret,
				ActivePoll: cfg.ActivePoll})
			if err != nil {
				return fmt.Errorf("%s: %w", configFile, err)
			}
			for _, rf := range cfg.RouteFiles {
				routes, format, err := readRoutesFile(rf.File)
				if err != nil {
					return err
				}
				if err := ctl.LoadSiteRoutes(rf.Site, routes); err != nil {
					return fmt.Errorf("%s: %w", rf.File, err)
				}
				logger.Info("global routes loaded", "site", rf.Site, "file", rf.File, "format", format, "routes", len(routes))
			}
			srv, err := serve.Listen(cfg.Listen, withOps(ctl.Handler(), reg), serve.Options{Logger: logger})
			if err != nil {
				return err
			}
			logger.Info("control plane serving", "addr", srv.Addr().String(), "appliances", len(cfg.Appliances))
			ctx, stop := signalContext(cmd.Context(), cmd.ErrOrStderr())
			defer stop()
			return runAll(ctx, srv.Run, ctl.Run)
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "control-plane YAML config file (required)")
	cmd.Flags().StringVar(&storeDSN, "store", "", "state store: a SQLite file or postgres://… (overrides the config's store)")
	cmd.Flags().StringVar(&mintToken, "mint-token", "", "print a credential for appliance ID (from appliance_secret_file) and exit")
	cmd.Flags().DurationVar(&mintTTL, "mint-token-ttl", 365*24*time.Hour, "validity of --mint-token")
	cmd.MarkFlagRequired("config")
	return cmd
}

func newApplianceCmd(g *globals) *cobra.Command {
	var configFile, storeDir, listen, keyFile, tlsCert, tlsKey, accessLog string
	var standalone bool
	var drainGrace, drainTimeout time.Duration
	var gcPercent int
	cmd := &cobra.Command{
		Use:   "appliance (--config FILE | --standalone --store DIR --listen ADDR --key-file F) [--tls-cert F --tls-key F]",
		Short: "Run an edge appliance: serve signed byte ranges from the store, fill it, report health",
		Long: `Run an edge appliance. With --config it joins a control plane: it fetches its
manifest, fills missing files from the origin (verifying each SHA-256 before it
becomes servable), serves /c/{token}/{title}/{file}, and heartbeats what it
holds. With --standalone it serves whatever is in --store without any control
plane (for operators and benchmarks). With --tls-cert and --tls-key it serves
HTTPS with HTTP/2.

SIGTERM drains: /healthz answers 503 "draining" and heartbeats say so, new
connections are still accepted for --drain-grace (so the control plane can
steer clients away), then the listener closes and in-flight transfers get
--drain-timeout to finish. A second SIGTERM exits at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if (tlsCert == "") != (tlsKey == "") {
				return errors.New("--tls-cert and --tls-key go together")
			}
			if gcPercent < 1 {
				return fmt.Errorf("--gc-percent %d: want 1 or more", gcPercent)
			}
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(gcPercent)
			}
			var cfg appliance.Config
			switch {
			case standalone && configFile == "":
				if storeDir == "" || listen == "" || keyFile == "" {
					return errors.New("--standalone needs --store, --listen and --key-file")
				}
				cfg = appliance.Config{Listen: listen, StoreDir: storeDir}
			case !standalone && configFile != "":
				var fc config.ApplianceDaemon
				if err := config.Load(configFile, &fc); err != nil {
					return err
				}
				keyFile = fc.KeyFile
				cfg = appliance.Config{ID: fc.ID, Listen: fc.Listen, ControlURL: fc.ControlURL, StoreDir: fc.Store,
					Capacity: int64(fc.Capacity), HeartbeatInterval: fc.HeartbeatInterval, ScrubRate: int64(fc.ScrubRate),
					StaleLimit: fc.StaleLimit, Software: "ocdn " + Version}
				if fc.TokenFile != "" {
					b, err := os.ReadFile(fc.TokenFile)
					if err != nil {
						return fmt.Errorf("token_file: %w", err)
					}
					cfg.Token = strings.TrimSpace(string(b))
				}
			default:
				return errors.New("give either --config FILE or --standalone with --store, --listen and --key-file")
			}
			if cfg.Keys, err = urlsign.LoadKeySet(keyFile); err != nil {
				return err
			}
			if tlsCert != "" {
				cert, err := tls.LoadX509KeyPair(tlsCert, tlsKey)
				if err != nil {
					return fmt.Errorf("--tls-cert/--tls-key: %w", err)
				}
				cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			}
			cfg.DrainGrace, cfg.DrainTimeout = drainGrace, drainTimeout
			cfg.Logger, cfg.Registry = logger, newRegistry()
			switch accessLog {
			case "":
			case "off":
				cfg.AccessLog = slog.New(slog.DiscardHandler)
			default:
				f, err := os.OpenFile(accessLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
				if err != nil {
					return fmt.Errorf("--access-log: %w", err)
				}
				defer f.Close()
				bw := edge.NewBufferedWriter(f, 0)
				// Independent of --log-level: an access log is all or nothing.
				cfg.AccessLog = edge.NewAccessLogger(bw)
				if strings.EqualFold(g.logFormat, "json") {
					cfg.AccessLog = slog.New(slog.NewJSONHandler(bw, nil))
				}
				fctx, stopFlush := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { defer close(done); bw.FlushEvery(fctx, time.Second) }()
				defer func() { stopFlush(); <-done }() // before f.Close

			}
			a, err := appliance.New(cfg)
			if err != nil {
				return err
			}
			logger.Info("appliance serving", "url", a.URL(), "objects", len(a.Store().List()))
			ctx, stop := signalContext(cmd.Context(), cmd.ErrOrStderr())
			defer stop()
			return a.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "appliance YAML config file")
	cmd.Flags().BoolVar(&standalone, "standalone", false, "serve the store without a control plane")
	cmd.Flags().StringVar(&storeDir, "store", "", "store directory (with --standalone)")
	cmd.Flags().StringVar(&listen, "listen", "", "address to serve on, e.g. 127.1.0.1:8080 (with --standalone)")
	cmd.Flags().StringVar(&keyFile, "key-file", "", "URL-signing key file (with --standalone)")
	cmd.Flags().StringVar(&tlsCert, "tls-cert", "", "PEM certificate chain: serve HTTPS (HTTP/2 and HTTP/1.1)")
	cmd.Flags().StringVar(&tlsKey, "tls-key", "", "PEM private key for --tls-cert")
	cmd.Flags().DurationVar(&drainGrace, "drain-grace", 10*time.Second, "after SIGTERM, keep accepting connections this long while reporting draining")
	cmd.Flags().DurationVar(&drainTimeout, "drain-timeout", 5*time.Minute, "after the listener closes, let in-flight transfers run this long")
	cmd.Flags().StringVar(&accessLog, "access-log", "", `access log: a file (buffered, flushed every second), "off", or empty for the daemon log`)
	cmd.Flags().IntVar(&gcPercent, "gc-percent", 400, "Go collector target (as GOGC, which overrides it): the live heap is a few MB, so at Go's 100 the collector ran ~20 times a second under load; 400 spends ~12 MB more heap to cut that 4-fold")
	return cmd
}

// runAll runs fns until ctx ends and returns the first error; an error
// from one stops the others.
func runAll(ctx context.Context, fns ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(fns))
	for _, f := range fns {
		go func() { errs <- f(ctx) }()
	}
	var first error
	for range fns {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}
