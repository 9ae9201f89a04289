package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/probe"
)

// sourceClient is an HTTP client whose connections come from src.
func sourceClient(src netip.Addr, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: timeout}
	if src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: timeout}
}

func defaultSpoolDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "ocdn", "probe-spool")
	}
	return filepath.Join(os.TempDir(), "ocdn-probe-spool")
}

func newProbeCmd(g *globals) *cobra.Command {
	var control, source, spool, reportURL string
	var once, asJSON bool
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "probe --control URL [--once | --every 1m]",
		Short: "Run the measurement recipe the control plane chooses and upload the report",
		Long: `Fetch a probe recipe (GET /v1/recipe): the appliances steering would use for
this client plus alternatives at other sites, in shuffled order, with the probe
types (tcp_connect, tls_handshake, http_ttfb, throughput), the number of pulses,
the delay between them and each pulse's timeout. Run it, write the report to
the spool directory, and upload spooled reports to POST /v1/reports (or the
recipe's report_url). Reports the server cannot take now stay in the spool and
are retried with backoff; reports it rejects as invalid move to
SPOOL/rejected with the reason. --once (the default) runs one recipe and one
upload attempt; --every runs a recipe per interval until interrupted.`,
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
			logger, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			logger = logger.With("component", "probe")
			control = strings.TrimSuffix(control, "/")
			client := sourceClient(src, 30*time.Second)
			up := &probe.Uploader{Dir: spool, URL: reportURL, Client: client, Logger: logger}
			if up.URL == "" {
				up.URL = control + "/v1/reports"
			}
			ctx, stop := signalContext(cmd.Context(), cmd.ErrOrStderr())
			defer stop()
			runOnce := func() error {
				rep, err := runRecipe(ctx, client, control, src, spool, up)
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
			go up.Run(ctx)
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
	cmd.Flags().StringVar(&control, "control", "", "control plane URL, e.g. http://127.0.0.1:8080 (required)")
	cmd.Flags().StringVar(&source, "source", "", "client source address to bind (default: the kernel's choice)")
	cmd.Flags().StringVar(&spool, "spool", defaultSpoolDir(), "directory holding reports not yet uploaded")
	cmd.Flags().StringVar(&reportURL, "report-url", "", "where to upload reports (default: the recipe's report_url, else CONTROL/v1/reports)")
	cmd.Flags().BoolVar(&once, "once", false, "run one recipe and one upload attempt, then exit (the default)")
	cmd.Flags().DurationVar(&every, "every", 0, "run a recipe at this interval until interrupted (e.g. 1m)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each report as JSON instead of a summary")
	cmd.MarkFlagRequired("control")
	return cmd
}

// runRecipe fetches a recipe, runs it from src and spools the report.
func runRecipe(ctx context.Context, client *http.Client, control string, src netip.Addr, spool string, up *probe.Uploader) (*measure.Report, error) {
	rec, err := probe.FetchRecipe(ctx, client, control)
	if err != nil {
		return nil, err
	}
	if rec.ReportURL != "" && up.URL == control+"/v1/reports" {
		up.URL = rec.ReportURL
	}
	rep, err := probe.Run(ctx, rec, probe.Options{Source: src})
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
