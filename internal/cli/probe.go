package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/ocdn/ocdn/internal/clientnet"
	"github.com/ocdn/ocdn/internal/cpclient"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/probe"
)

// netFlags are how the command-line clients reach appliances and the
// control plane: the CA bundle they verify with and the resolver names go
// through.
type netFlags struct{ ca, resolver string }

func (f *netFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.ca, "ca", "", "PEM bundle of the CAs that sign appliance certificates (ocdn pki's ca.pem; default: the system's roots)")
	cmd.Flags().StringVar(&f.resolver, "resolver", "", "DNS server ADDR:PORT that appliance names are resolved through (default: the system's resolver)")
}

// dialer is a client bound to src (when valid) that resolves and
// verifies as the flags say. A connection must be made within 5 s, so
// that an unreachable control-plane replica costs little before the next
// one is tried.
func (f *netFlags) dialer(src netip.Addr) (*clientnet.Dialer, error) {
	resolver, err := f.resolverAddr()
	if err != nil {
		return nil, err
	}
	cfg := clientnet.Config{CAFile: f.ca, Source: src, Resolver: resolver, Timeout: 5 * time.Second}
	d, err := clientnet.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	return d, nil
}

// resolverAddr is --resolver parsed (invalid when not given).
func (f *netFlags) resolverAddr() (netip.AddrPort, error) {
	if f.resolver == "" {
		return netip.AddrPort{}, nil
	}
	ap, err := netip.ParseAddrPort(f.resolver)
	if err != nil {
		return ap, fmt.Errorf("--resolver %q: want ADDR:PORT, such as 127.0.0.1:53 or [::1]:53", f.resolver)
	}
	return ap, nil
}

// dialerClient is an HTTP client of d whose requests may take timeout.
func dialerClient(d *clientnet.Dialer, timeout time.Duration) *http.Client {
	return &http.Client{Transport: d.Transport(), Timeout: timeout}
}

func defaultSpoolDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "ocdn", "probe-spool")
	}
	return filepath.Join(os.TempDir(), "ocdn-probe-spool")
}

func newProbeCmd(g *globals) *cobra.Command {
	var control []string
	var nf netFlags
	var source, spool, reportURL string
	var once, asJSON, dualStack bool
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "probe --control URL[,URL...] [--once | --every 1m]",
		Short: "Run the measurement recipe the control plane chooses and upload the report",
		Long: `Fetch a probe recipe (GET /v1/recipe): the appliances steering would use for
this client plus alternatives at other sites, in shuffled order, with the probe
types (tcp_connect, tls_handshake, http_ttfb, throughput), the number of pulses,
the delay between them and each pulse's timeout. Run it, write the report to
the spool directory, and upload spooled reports to POST /v1/reports (or the
recipe's report_url). Reports the server cannot take now stay in the spool and
are retried with backoff; reports it rejects as invalid move to
SPOOL/rejected with the reason. --once (the default) runs one recipe and one
upload attempt; --every runs a recipe per interval until interrupted.
--control lists the control plane's replicas: the recipe and the reports go to
the one that answered last, and to the next when it refuses, times out or
answers 5xx, so a report one replica could not take is delivered to another at
once (the report id lets the control plane recognise a report sent twice).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if once && cmd.Flags().Changed("every") {
				return errors.New("give --once or --every, not both")
			}
			if cmd.Flags().Changed("every") && every < time.Second {
				return fmt.Errorf("--every %v: at least 1s", every)
			}
			src, err := parseSource(source)
			if err != nil {
				return err
			}
			urls, err := parseControl(control)
			if err != nil {
				return err
			}
			logger, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			logger = logger.With("component", "probe")
			d, err := nf.dialer(src)
			if err != nil {
				return err
			}
			client := dialerClient(d, 30*time.Second)
			cp := cpclient.Must(urls, client, "")
			up := &probe.Uploader{Dir: spool, Control: cp, URL: reportURL, Client: client, Logger: logger}
			ctx, stop := signalContext(cmd.Context(), cmd.ErrOrStderr())
			defer stop()
			runOnce := func() error {
				rep, err := runRecipe(ctx, cp, d, spool, up, dualStack)
				if err != nil {
					return err
				}
				return printReport(cmd.OutOrStdout(), rep, asJSON)
			}
			if !cmd.Flags().Changed("every") {
				if err := runOnce(); err != nil {
					return err
				}
				if err := up.Flush(ctx); err != nil {
					ids, _ := up.Pending()
					return fmt.Errorf("upload: %w (%d reports stay in %s)", err, len(ids), spool)
				}
				return nil
			}
			uploaded := make(chan struct{})
			go func() { defer close(uploaded); up.Run(ctx) }()
			defer func() { stop(); <-uploaded }()
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				if err := runOnce(); err != nil && ctx.Err() == nil {
					logger.Warn("recipe run failed; trying again at the next interval", "err", err)
				}
				up.Kick()
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
				}
			}
		},
	}
	addControlFlag(cmd, &control)
	cmd.Flags().StringVar(&source, "source", "", "client source address to bind (default: the kernel's choice)")
	nf.add(cmd)
	cmd.Flags().StringVar(&spool, "spool", defaultSpoolDir(), "directory holding reports not yet uploaded")
	cmd.Flags().StringVar(&reportURL, "report-url", "", "where to upload reports (default: the recipe's report_url, else /v1/reports on the control plane's replicas)")
	cmd.Flags().BoolVar(&once, "once", false, "run one recipe and one upload attempt, then exit (the default)")
	cmd.Flags().DurationVar(&every, "every", 0, "run a recipe at this interval until interrupted (e.g. 1m)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each report as JSON instead of a summary")
	cmd.Flags().BoolVar(&dualStack, "dual-stack", false, "this host has IPv4 and IPv6: ask for a recipe that also probes dual-stack appliances over the other family (when the control plane's measure.recipe.families is both)")
	return cmd
}

// runRecipe fetches a recipe, runs it from src and spools the report,
// which goes where the recipe says unless --report-url says otherwise.
func runRecipe(ctx context.Context, cp *cpclient.Client, d *clientnet.Dialer, spool string, up *probe.Uploader, dualStack bool) (*measure.Report, error) {
	rec, err := probe.FetchRecipe(ctx, cp, dualStack)
	if err != nil {
		return nil, err
	}
	up.UseRecipe(rec)
	rep, err := probe.Run(ctx, rec, probe.Options{Dial: d.DialContext, TLSConfig: d.TLSConfig(), Resolver: d.Resolver()})
	if err != nil {
		return nil, err
	}
	if _, err := probe.Spool(spool, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

func printReport(w io.Writer, rep *measure.Report, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	type key struct{ target, appliance, typ string }
	groups := map[key][]measure.Pulse{}
	var keys []key
	for _, p := range rep.Pulses {
		k := key{p.Target, p.Appliance, p.Type}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], p)
	}
	fmt.Fprintf(w, "report %s (recipe %s, %d pulses)\n", rep.ID, rep.Recipe, len(rep.Pulses))
	fmt.Fprintf(w, "%-14s %-14s %-14s %4s %s\n", "target", "appliance", "type", "ok", "median")
	for _, k := range keys {
		var vals []float64
		for _, p := range groups[k] {
			if p.Status != measure.StatusOK {
				continue
			}
			switch p.Type {
			case measure.TypeTCPConnect:
				vals = append(vals, p.ConnectMs)
			case measure.TypeTLSHandshake:
				vals = append(vals, p.TLSMs)
			case measure.TypeHTTPTTFB:
				vals = append(vals, p.TTFBMs)
			case measure.TypeThroughput:
				vals = append(vals, p.ThroughputBps/1e6)
			}
		}
		med := "-"
		if len(vals) > 0 {
			slices.Sort(vals)
			unit := "ms"
			if k.typ == measure.TypeThroughput {
				unit = "Mbit/s"
			}
			med = fmt.Sprintf("%.2f %s", vals[len(vals)/2], unit)
		}
		fmt.Fprintf(w, "%-14s %-14s %-14s %2d/%d %s\n", k.target, k.appliance, k.typ, len(vals), len(groups[k]), med)
	}
	return nil
}
