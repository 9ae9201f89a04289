package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ocdn/ocdn/internal/lab"
)

func newLabCmd(g *globals) *cobra.Command {
	var scenarioFile, jsonOut, logFile, dataDir string
	var printScenario bool
	var duration time.Duration
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run a whole CDN on this machine: origin, control plane, sites, appliances, clients",
		Long: `Run a whole CDN on loopback: an origin, a control plane, sites of appliances on
127.1.0.0/16, and ISPs whose clients bind source addresses inside the prefixes
their ISP announces. Appliances fill from the origin, verify every file, then
clients stream titles as byte ranges and fail over down their URL lists; the
scenario's events (such as killing an appliance half-way) are applied on
schedule. A status line is printed every few seconds on a terminal and a report
at the end. Ctrl-C stops every component and prints the report so far.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if printScenario {
				_, err := cmd.OutOrStdout().Write(lab.DefaultScenario)
				return err
			}
			sc, err := lab.LoadScenario(scenarioFile)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("duration") {
				sc.Duration = duration
				if err := sc.Validate(); err != nil {
					return fmt.Errorf("--duration: %w", err)
				}
			}
			var logW io.Writer = io.Discard
			if logFile != "" {
				f, err := os.Create(logFile)
				if err != nil {
					return err
				}
				defer f.Close()
				logW = f
			}
			logger, err := g.logger(logW)
			if err != nil {
				return err
			}
			opts := lab.Options{Logger: logger, DataDir: dataDir}
			if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				opts.Status = f
			}
			ctx, stop := signalContext(cmd.Context(), cmd.ErrOrStderr())
			defer stop()
			rep, err := lab.New(sc, opts).Run(ctx)
			if err != nil {
				return err
			}
			rep.Print(cmd.OutOrStdout())
			if jsonOut != "" {
				b, err := json.MarshalIndent(rep, "", "  ")
				if err != nil {
					return err
				}
				if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
					return err
				}
			}
			if rep.Interrupted {
				return fmt.Errorf("interrupted")
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&duration, "duration", 0, "how long clients stream, overriding the scenario's duration (e.g. 30s)")
	cmd.Flags().StringVar(&scenarioFile, "scenario", "", "scenario YAML file (default: the built-in scenario, see --print-scenario)")
	cmd.Flags().StringVar(&jsonOut, "json", "", "also write the final report as JSON to this file")
	cmd.Flags().BoolVar(&printScenario, "print-scenario", false, "print the built-in scenario as YAML and exit")
	cmd.Flags().StringVar(&dataDir, "data", "", "keep the clients' probe measurements (Parquet) in this directory for ocdn analyze (default: discarded)")
	cmd.Flags().StringVar(&logFile, "log-file", "", "write the components' structured logs to this file (default: discarded)")
	return cmd
}
