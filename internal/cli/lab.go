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
	var scenarioFile, jsonOut, logFile, dataDir, printConfigs, workDir string
	var printScenario, processes bool
	var duration time.Duration
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run a whole CDN on this machine: origin, control plane, sites, appliances, clients",
		Long: `Run a whole CDN on loopback: an origin, a control plane, sites of appliances on
127.1.0.0/16, BGP routers for the ISPs, and ISPs whose clients bind source
addresses inside the prefixes their ISP announces. The lab compiles its scenario
into the same config files an operator writes (--print-configs DIR shows them)
and starts every daemon from them: in this process, or with --processes each as
its own ocdn process. Appliances fill from the origin, verify every file, then
clients stream titles as byte ranges and fail over down their URL lists; the
scenario's events (such as killing an appliance half-way) are applied on
schedule. A status line is printed every few seconds on a terminal and a report
at the end. Ctrl-C stops every component and prints the report so far.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if printScenario {
				name := scenarioFile
				if name == "" {
					name = "default"
				}
				b, ok := lab.BuiltinScenarios[name]
				if !ok {
					return fmt.Errorf("--print-scenario: %q is not a built-in scenario (default, lossy)", name)
				}
				_, err := cmd.OutOrStdout().Write(b)
				return err
			}
			sc, err := lab.LoadScenario(scenarioFile)
			if err != nil {
				return err
			}
			if printConfigs != "" {
				d, err := lab.Compile(sc, lab.DefaultEndpoints)
				if err != nil {
					return err
				}
				if err := d.Write(printConfigs); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrote the configs of the scenario's daemons to %s; see docs/deploy.md\n", printConfigs)
				return nil
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
			opts := lab.Options{Logger: logger, DataDir: dataDir, WorkDir: workDir, Processes: processes}
			if processes {
				if opts.Binary, err = os.Executable(); err != nil {
					return fmt.Errorf("--processes: finding the ocdn binary: %w", err)
				}
			}
			if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				opts.Status = f
			} else {
				// The status line says it on a terminal; elsewhere once.
				opts.Console = func(url, tokenFile string) {
					fmt.Fprintf(cmd.ErrOrStderr(), "console: %s (sign in with the operator token in %s)\n", url, tokenFile)
				}
				opts.Pages = func(b lab.BrowserReport) {
					fmt.Fprintln(cmd.ErrOrStderr(), "browser pages:")
					b.PrintPages(cmd.ErrOrStderr(), "  ")
				}
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
	cmd.Flags().StringVar(&scenarioFile, "scenario", "", "scenario YAML file, or the name of a built-in scenario: default, lossy (a lossy, bufferbloated packet-level link and a cubic-vs-bbr experiment; needs root); see --print-scenario")
	cmd.Flags().StringVar(&jsonOut, "json", "", "also write the final report as JSON to this file")
	cmd.Flags().BoolVar(&printScenario, "print-scenario", false, "print the built-in scenario (or the one --scenario names) as YAML and exit")
	cmd.Flags().StringVar(&dataDir, "data", "", "keep the clients' probe measurements (Parquet) in this directory for ocdn analyze (default: discarded)")
	cmd.Flags().StringVar(&logFile, "log-file", "", "write the components' structured logs to this file (default: discarded; with --processes each daemon logs to WORK/logs)")
	cmd.Flags().StringVar(&printConfigs, "print-configs", "", "write the configs of every daemon the scenario runs (control, origin, each appliance, each ISP router) and the files they name to this directory, and exit")
	cmd.Flags().BoolVar(&processes, "processes", false, "run each daemon (origin, control plane, appliances) as its own ocdn process from the compiled configs")
	cmd.Flags().StringVar(&workDir, "work", "", "keep the compiled configs, stores and logs in this directory (default: a temporary one, removed at the end)")
	return cmd
}
