package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ocdn/ocdn/internal/lab"
	"github.com/ocdn/ocdn/internal/sim"
	"github.com/ocdn/ocdn/internal/sim/world"
)

func newSimCmd(g *globals) *cobra.Command {
	var worldPath, scenarioFile, out, cpuProfile, memProfile string
	var seed uint64
	var workers int
	var memLimit int64
	var printScenario bool
	cmd := &cobra.Command{
		Use:   "sim --world W [--scenario S] [--out DIR]",
		Short: "Simulate days of global demand over a world, on the project's own steering, placement, fill and health code",
		Long: `Simulate a CDN deployment serving a real internet's clients: every session is
steered by internal/steer over a RIB built from the world, manifests come from
internal/placement and internal/content's popularity on a schedule, fill runs in
site-local windows with rate caps and peer → tier → origin escalation, and
appliances fail and recover through internal/health. Prints a summary; with
--out writes Parquet tables (hive-partitioned by date), summary.json and
report.html.

--world is a world file (ocdn sim world build) or lab:FILE / lab:default to
simulate a lab scenario's CDN. docs/sim.md describes the model.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if printScenario {
				_, err := cmd.OutOrStdout().Write(sim.DefaultScenario)
				return err
			}
			logger, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			w, sc, err := loadSimInputs(worldPath, scenarioFile)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("seed") {
				sc.Seed = seed
			}
			opt := sim.Options{Workers: workers, Out: out, Logger: logger}
			if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				opt.Progress = f
			}
			if out != "" {
				if err := os.MkdirAll(out, 0o755); err != nil {
					return err
				}
			}
			if memLimit > 0 {
				// A soft limit: the collector works harder near it rather
				// than letting garbage double a multi-gigabyte heap.
				debug.SetMemoryLimit(memLimit)
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			sm, err := sim.New(w, sc, opt)
			if err != nil {
				return err
			}
			ctx, stop := signalContext(cmd.Context(), cmd.ErrOrStderr())
			defer stop()
			s, err := sm.Run(ctx)
			if err != nil {
				return err
			}
			if memProfile != "" {
				f, err := os.Create(memProfile)
				if err != nil {
					return err
				}
				runtime.GC()
				err = pprof.WriteHeapProfile(f)
				f.Close()
				runtime.KeepAlive(sm)
				if err != nil {
					return err
				}
			}
			sim.PrintSummary(cmd.OutOrStdout(), s)
			if out != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "tables, summary.json and report.html in %s\n", out)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&worldPath, "world", "", "world file (ocdn sim world build), or lab:FILE or lab:default for a lab scenario's CDN")
	cmd.Flags().StringVar(&scenarioFile, "scenario", "", "scenario file (default: the built-in one, see --print-scenario); ignored for lab worlds")
	cmd.Flags().StringVar(&out, "out", "", "directory for Parquet tables, summary.json and report.html")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "random seed (overrides the scenario's)")
	cmd.Flags().IntVar(&workers, "workers", 0, "goroutines serving sessions (default: one per core); results do not depend on it")
	cmd.Flags().BoolVar(&printScenario, "print-scenario", false, "print the built-in scenario and exit")
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	cmd.Flags().Int64Var(&memLimit, "memory-limit", 5<<30, "soft memory limit in bytes for the Go runtime (0: none)")
	cmd.Flags().StringVar(&memProfile, "memprofile", "", "write a heap profile at the end of the run to this file")
	cmd.AddCommand(newSimWorldCmd(), newSimCompareCmd(g))
	return cmd
}

// loadSimInputs reads a world (or a lab scenario as one) and a scenario.
func loadSimInputs(worldPath, scenarioFile string) (*world.World, *sim.Scenario, error) {
	if worldPath == "" {
		return nil, nil, fmt.Errorf("--world is required: a world file from `ocdn sim world build` (make world), or lab:default")
	}
	if rest, ok := strings.CutPrefix(worldPath, "lab:"); ok {
		if rest == "default" {
			rest = ""
		}
		lsc, err := lab.LoadScenario(rest)
		if err != nil {
			return nil, nil, err
		}
		return sim.FromLab(lsc)
	}
	w, err := world.Load(worldPath)
	if err != nil {
		return nil, nil, err
	}
	sc, err := sim.LoadScenario(scenarioFile)
	if err != nil {
		return nil, nil, err
	}
	return w, sc, nil
}

func newSimWorldCmd() *cobra.Command {
	worldCmd := &cobra.Command{Use: "world", Short: "Build simulator worlds from real data"}
	var routes, ipdb, zoneTab, model, out string
	var printModel bool
	build := &cobra.Command{
		Use:   "build",
		Short: "Build a world: the full table's prefixes, their AS and country, a population model and a deployment",
		Long: `Build a world from the full-table prefix list, the IP-to-AS and IP-to-country
tables of the npm packages @ip-location-db/asn and @ip-location-db/asn-country
(installed by ` + "`" + world.DataTarget + "`" + `) and the tz database's zone.tab. The model
(--model, default: --print-model) holds every assumption: subscriber shares,
address-space weighting, the deployment generator and the routing model.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if printModel {
				_, err := cmd.OutOrStdout().Write(world.DefaultModel)
				return err
			}
			in := world.BuildInput{Routes: routes, IPLocationDB: ipdb, ZoneTab: zoneTab}
			if model != "" {
				data, err := os.ReadFile(model)
				if err != nil {
					return err
				}
				in.Model, in.ModelName = data, model
			}
			if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				in.Progress = func(s string) { fmt.Fprintln(f, "world:", s) }
			}
			w, st, err := world.Build(in)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return err
			}
			if err := w.Write(out); err != nil {
				return err
			}
			b, _ := json.Marshal(st)
			fmt.Fprintf(cmd.OutOrStdout(), "world %s: %d of %d prefixes (%d without an AS, %d without a country), %d ASes, %d countries, %.0f subscribers, %d embedded and %d IXP sites, %d appliances\n%s\n",
				out, st.PrefixesMapped, st.PrefixesRead, st.NoAS, st.NoCountry, st.ASes, st.Countries, st.Subscribers, st.EmbeddedSites, st.IXPSites, st.Appliances, b)
			return nil
		},
	}
	build.Flags().StringVar(&routes, "routes", filepath.Join("..", "shared", "data", "routes", "full-table-prefixes.txt.gz"), "the full table as a prefix list (optionally gzipped)")
	build.Flags().StringVar(&ipdb, "ip-location-db", filepath.Join(".cache", "world-data", "node_modules", "@ip-location-db"), "directory of the npm packages asn/ and asn-country/ ("+world.DataTarget+")")
	build.Flags().StringVar(&zoneTab, "zone-tab", "/usr/share/zoneinfo/zone.tab", "the tz database's zone.tab")
	build.Flags().StringVar(&model, "model", "", "model YAML (default: the built-in one)")
	build.Flags().StringVar(&out, "out", filepath.Join("world", "world.yaml"), "world file to write (its data files go beside it)")
	build.Flags().BoolVar(&printModel, "print-model", false, "print the built-in model and exit")
	worldCmd.AddCommand(build)
	return worldCmd
}

func newSimCompareCmd(g *globals) *cobra.Command {
	var worldPath, out string
	var runs, workers int
	var seed0 uint64
	var level float64
	cmd := &cobra.Command{
		Use:   "compare A.yaml B.yaml --world W [--runs N]",
		Short: "Run two scenarios over the same seeds and report every figure's difference with a confidence interval",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := g.logger(cmd.ErrOrStderr()); err != nil {
				return err
			}
			w, a, err := loadSimInputs(worldPath, args[0])
			if err != nil {
				return err
			}
			b, err := sim.LoadScenario(args[1])
			if err != nil {
				return err
			}
			if a.Name == b.Name {
				a.Name, b.Name = args[0], args[1]
			}
			ctx, stop := signalContext(cmd.Context(), cmd.ErrOrStderr())
			defer stop()
			progress := func(s string) { fmt.Fprintln(cmd.ErrOrStderr(), s) }
			c, err := sim.Compare(ctx, w, a, b, runs, seed0, level, sim.Options{Workers: workers}, progress)
			if err != nil {
				return err
			}
			c.Print(cmd.OutOrStdout())
			if out != "" {
				data, err := json.MarshalIndent(c, "", "  ")
				if err != nil {
					return err
				}
				return os.WriteFile(out, append(data, '\n'), 0o644)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&worldPath, "world", "", "world file")
	cmd.Flags().IntVar(&runs, "runs", 5, "runs of each scenario (seeds seed, seed+1, …)")
	cmd.Flags().Uint64Var(&seed0, "seed", 1, "first seed")
	cmd.Flags().Float64Var(&level, "level", 0.95, "confidence level")
	cmd.Flags().IntVar(&workers, "workers", 0, "goroutines serving sessions (default: one per core)")
	cmd.Flags().StringVar(&out, "json", "", "also write the comparison as JSON to this file")
	return cmd
}
