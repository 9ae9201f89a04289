package cli

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/ocdn/ocdn/internal/auth"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/daemon"
)

func newOriginCmd(g *globals) *cobra.Command {
	var configFile, catalogFile, dir, listen string
	cmd := &cobra.Command{
		Use:   "origin (--config FILE | --catalog FILE [--dir DIR] [--listen ADDR])",
		Short: "Serve a catalog's files with byte ranges: the source appliances fill from",
		Long: `Serve every file of a catalog at /o/{title}/{file} with byte ranges. A synthetic
catalog (ocdn catalog synth) is served from its derived bytes; any other needs a
directory, the one the catalog was built from. /v1/catalog returns the catalog;
/metrics and /healthz are for operators. The config file (docs/formats.md) has
listen (one address or a list), catalog, dir and tls; the flags are the same
settings for a quick start without one. SIGTERM drains, a second one exits;
SIGHUP reloads the TLS certificate.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			var cfg config.Origin
			switch {
			case configFile != "" && (catalogFile != "" || dir != "" || cmd.Flags().Changed("listen")):
				return errors.New("--config names every setting: drop --catalog, --dir and --listen")
			case configFile != "":
				if err := config.Load(configFile, &cfg); err != nil {
					return err
				}
			case catalogFile == "":
				return errors.New("give --config FILE, or --catalog FILE")
			default:
				yaml := fmt.Sprintf("listen: %q\ncatalog: %q\ndir: %q\n", listen, catalogFile, dir)
				if err := config.Decode("flags", []byte(yaml), &cfg); err != nil {
					return err
				}
			}
			o, err := daemon.NewOrigin(&cfg, daemon.Hooks{Logger: logger})
			if err != nil {
				return err
			}
			ctx, stop := signalContext(cmd.Context(), cmd.ErrOrStderr())
			defer stop()
			return o.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "origin YAML config file")
	cmd.Flags().StringVar(&catalogFile, "catalog", "", "catalog JSON file (without --config)")
	cmd.Flags().StringVar(&dir, "dir", "", "directory holding the catalog's files as DIR/title/file (required unless the catalog is synthetic)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8081", "address to serve on (without --config)")
	return cmd
}

func newControlCmd(g *globals) *cobra.Command {
	var configFile, storeDSN, mintToken string
	var mintTTL time.Duration
	cmd := &cobra.Command{
		Use:   "control --config FILE",
		Short: "Run the control plane: inventory, BGP routes, health, placement, steering, measurements",
		Long: `Run the control plane described by a YAML config file (docs/formats.md): listen
addresses and TLS, catalog, origin URL, URL-signing keys, credentials, the state
store (SQLite, or postgres://… shared by replicas), measurement ingest and probe
recipes, measured steering, turn-up checks, placement and the popularity feed, the
fill window, and the inventory of ISPs, sites and appliances.

API: GET /v1/steer?files=title/file[,…]&n=5 returns, per file, a ranked list of
signed URLs; appliances use /v1/heartbeat, /v1/manifest, /v1/fill, /v1/routes
and /v1/keys; clients fetch probe recipes at /v1/recipe and upload reports to
/v1/reports (with measure configured); operators use /v1/appliances,
/v1/routes/lookup, /v1/admin/*. /metrics and /healthz are for operators;
/healthz says "degraded" while the state store is unreachable (steering goes on
from memory). SIGTERM drains, a second one exits; SIGHUP reloads the TLS
certificate.`,
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
			if storeDSN != "" {
				cfg.Store = storeDSN
			}
			if mintToken != "" {
				return printToken(cmd, &cfg, mintToken, mintTTL)
			}
			ctx, stop := signalContext(cmd.Context(), cmd.ErrOrStderr())
			defer stop()
			c, err := daemon.NewControl(ctx, &cfg, daemon.Hooks{Logger: logger})
			if err != nil {
				return fmt.Errorf("%s: %w", configFile, err)
			}
			return c.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "control-plane YAML config file (required)")
	cmd.Flags().StringVar(&storeDSN, "store", "", "state store: a SQLite file or postgres://… (overrides the config's store)")
	cmd.Flags().StringVar(&mintToken, "mint-token", "", "print a credential for appliance ID (from appliance_secret_file) and exit")
	cmd.Flags().DurationVar(&mintTTL, "mint-token-ttl", 365*24*time.Hour, "validity of --mint-token")
	cmd.MarkFlagRequired("config")
	return cmd
}

// printToken prints an appliance credential minted from the config's
// appliance secret.
func printToken(cmd *cobra.Command, cfg *config.Control, id string, ttl time.Duration) error {
	if cfg.ApplianceSecretFile == "" {
		return errors.New("--mint-token needs appliance_secret_file in the config")
	}
	b, err := os.ReadFile(cfg.ApplianceSecretFile)
	if err != nil {
		return fmt.Errorf("appliance_secret_file: %w", err)
	}
	sec, err := auth.ParseSecret(b)
	if err != nil {
		return fmt.Errorf("appliance_secret_file %s: %w", cfg.ApplianceSecretFile, err)
	}
	fmt.Fprintln(cmd.OutOrStdout(), sec.Mint(id, time.Now().Add(ttl)))
	return nil
}

func newApplianceCmd(g *globals) *cobra.Command {
	var configFile, storeDir, listen, opsListen, keyFile, tlsCert, tlsKey, accessLog, transportDir string
	var transportRate float64
	var scrubRate string
	var standalone bool
	var gcPercent int
	var hooks labHooks
	cmd := &cobra.Command{
		Use:   "appliance (--config FILE | --standalone --store DIR --listen ADDR --key-file F [--tls-cert F --tls-key F])",
		Short: "Run an edge appliance: serve signed byte ranges from the store, fill it, learn routes, report health",
		Long: `Run an edge appliance. With --config (docs/formats.md) it joins a control plane
through the replicas in control_urls: it fetches its manifest, fills missing files
in its site's nightly window from peers, other sites or the origin (verifying
each SHA-256 before it becomes servable), serves /c/{token}/{title}/{file} on
every listen address, learns the client prefixes it may serve over BGP from the
ISP's routers (the bgp section) and reports them, and heartbeats its health,
load and content. With --standalone it serves whatever is in --store without
any control plane (for operators and benchmarks).

SIGTERM drains: /healthz answers 503 "draining" and heartbeats say so, new
connections are still accepted for drain_grace (so the control plane can steer
clients away), then the listener closes and in-flight transfers get
drain_timeout to finish. A second SIGTERM exits at once. SIGHUP reloads the TLS
certificate without dropping connections. The content port answers /c/… and
/healthz only; /metrics and GET /v1/status (what the appliance served, filled
and queued, and its BGP sessions) are on ops_listen.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if gcPercent < 1 {
				return fmt.Errorf("--gc-percent %d: want 1 or more", gcPercent)
			}
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(gcPercent)
			}
			var cfg config.ApplianceDaemon
			standaloneFlags := storeDir != "" || listen != "" || opsListen != "" || keyFile != "" || tlsCert != "" || tlsKey != "" || accessLog != "" ||
				transportDir != "" || cmd.Flags().Changed("transport-sample-rate") || scrubRate != ""
			switch {
			case configFile != "" && (standalone || standaloneFlags):
				return errors.New("--config names every setting: drop --standalone and its flags (or set standalone: true in the file)")
			case configFile != "":
				if err := config.Load(configFile, &cfg); err != nil {
					return err
				}
			case standalone:
				if (tlsCert == "") != (tlsKey == "") {
					return errors.New("--tls-cert and --tls-key go together")
				}
				cfg = config.ApplianceDaemon{Standalone: true, ID: "standalone", Store: storeDir, KeyFile: keyFile, AccessLog: accessLog,
					Transport: config.ApplianceTransport{Dir: transportDir}}
				if cmd.Flags().Changed("transport-sample-rate") {
					cfg.Transport.SampleRate = &transportRate
				}
				if scrubRate != "" {
					r, err := config.ParseByteSize(scrubRate)
					if err != nil {
						return fmt.Errorf("--scrub-rate: %w", err)
					}
					cfg.ScrubRate = &r
				}
				if cfg.Listen, err = parseListen("--listen", listen); err != nil {
					return err
				}
				if opsListen != "" {
					if cfg.OpsListen, err = parseListen("--ops-listen", opsListen); err != nil {
						return err
					}
				}
				if tlsCert != "" {
					cfg.TLS = &config.TLSFiles{CertFile: tlsCert, KeyFile: tlsKey}
				}
				if err := cfg.Validate(); err != nil {
					return fmt.Errorf("--standalone: %w", err)
				}
			default:
				return errors.New("give either --config FILE or --standalone with --store, --listen and --key-file")
			}
			h, err := hooks.hooks()
			if err != nil {
				return err
			}
			h.Logger, h.Software = logger, "ocdn "+Version
			a, err := daemon.NewAppliance(&cfg, h, g.jsonLogs())
			if err != nil {
				if configFile != "" {
					return fmt.Errorf("%s: %w", configFile, err)
				}
				return err
			}
			logger.Info("appliance serving", "urls", a.URLs(), "objects", len(a.Appliance().Store().List()))
			ctx, stop := signalContext(cmd.Context(), cmd.ErrOrStderr())
			defer stop()
			return a.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "appliance YAML config file")
	cmd.Flags().BoolVar(&standalone, "standalone", false, "serve the store without a control plane")
	cmd.Flags().StringVar(&storeDir, "store", "", "store directory (with --standalone)")
	cmd.Flags().StringVar(&listen, "listen", "", "address to serve on, e.g. 127.1.0.1:8080 (with --standalone)")
	cmd.Flags().StringVar(&opsListen, "ops-listen", "", "address for /metrics, /healthz and /v1/status, e.g. 127.0.0.1:9180 (with --standalone; not served otherwise)")
	cmd.Flags().StringVar(&keyFile, "key-file", "", "URL-signing key file (with --standalone)")
	cmd.Flags().StringVar(&tlsCert, "tls-cert", "", "PEM certificate chain: serve HTTPS, HTTP/2 and HTTP/1.1 (with --standalone)")
	cmd.Flags().StringVar(&tlsKey, "tls-key", "", "PEM private key for --tls-cert (with --standalone)")
	cmd.Flags().StringVar(&accessLog, "access-log", "", `access log (with --standalone): a file (buffered, flushed every second), "off", or empty for the daemon log`)
	cmd.Flags().Float64Var(&transportRate, "transport-sample-rate", config.DefaultTransportSampleRate, "fraction of connections whose TCP_INFO is sampled (with --standalone; 0 installs nothing)")
	cmd.Flags().StringVar(&scrubRate, "scrub-rate", "", "bytes per second the store scrubber re-hashes, e.g. 40MB, 0 for off (with --standalone; default scrub_rate's)")
	cmd.Flags().StringVar(&transportDir, "transport-dir", "", "spool of transport records (with --standalone; default STORE-transport-spool)")
	cmd.Flags().IntVar(&gcPercent, "gc-percent", 400, "Go collector target (as GOGC, which overrides it): the live heap is a few MB, so at Go's 100 the collector ran ~20 times a second under load; 400 spends ~12 MB more heap to cut that 4-fold")
	hooks.register(cmd)
	return cmd
}

// parseListen reads a listen flag into a listen list.
func parseListen(flag, s string) (config.AddrList, error) {
	var a config.AddrPort
	if err := a.UnmarshalText([]byte(s)); err != nil || !a.IsValid() {
		return nil, fmt.Errorf("%s %q is not IP:port", flag, s)
	}
	return config.AddrList{a}, nil
}
