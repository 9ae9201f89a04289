// Package cli provides the ocdn command tree. Each subcommand parses its
// flags, composes the daemons and domain packages, and runs them under a
// context that the first SIGINT/SIGTERM cancels (drain) and the second
// abandons (exit at once).
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// globals are the flags every subcommand shares.
type globals struct {
	logLevel  string
	logFormat string
}

// Execute runs the command line and returns the process exit code.
func Execute() int {
	root := NewRoot(os.Stdout, os.Stderr)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "ocdn:", err)
		return 1
	}
	return 0
}

// NewRoot builds the command tree writing to out and errOut.
func NewRoot(out, errOut io.Writer) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "ocdn",
		Short: "An Open Connect-style content delivery network and its measurement tools",
		Long: `ocdn runs the parts of a CDN modelled on Netflix Open Connect: appliances that
serve media byte ranges, a control plane that steers clients to them, an origin
they fill from, and a lab that runs the whole thing on one machine.

Start with:  ocdn lab`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json (one JSON object per line)")
	root.AddCommand(
		newLabCmd(g),
		newControlCmd(g),
		newApplianceCmd(g),
		newOriginCmd(g),
		newCatalogCmd(),
		newRoutesCmd(),
		newMeasureCmd(g),
		newStoreCmd(g),
		newURLSignCmd(),
		newPKICmd(),
		newVersionCmd(),
		newPlayCmd(g),
		newProbeCmd(g),
		newSpeedtestCmd(g),
		newAnalyzeCmd(g),
		newSimCmd(g),
	)
	return root
}

// jsonLogs reports whether logs are JSON lines.
func (g *globals) jsonLogs() bool { return strings.EqualFold(g.logFormat, "json") }

// logger builds the structured logger the flags ask for, writing to w.
func (g *globals) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(g.logFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", g.logFormat)
}

// signalContext is cancelled by the first SIGINT or SIGTERM, so daemons
// drain; a second signal exits at once.
func signalContext(parent context.Context, errOut io.Writer) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case <-sigs:
			fmt.Fprintln(errOut, "ocdn: stopping (send the signal again to exit at once)")
			cancel()
		case <-ctx.Done():
			signal.Stop(sigs)
			return
		}
		<-sigs
		fmt.Fprintln(errOut, "ocdn: exiting at once")
		os.Exit(130)
	}()
	return ctx, func() { signal.Stop(sigs); cancel() }
}
