package cli

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ocdn/ocdn/internal/cpclient"
	"github.com/ocdn/ocdn/internal/player"
)

// controlUsage is the help of --control, shared by the commands that are
// clients of the control plane.
const controlUsage = "the control plane's replicas, `URL[,URL...]`, tried in order with failover: a comma-separated list and/or the flag repeated, e.g. http://10.0.0.1:8080,http://10.0.0.2:8080 (required)"

// addControlFlag adds --control (a list of replica URLs) to cmd.
func addControlFlag(cmd *cobra.Command, urls *[]string) {
	cmd.Flags().StringSliceVar(urls, "control", nil, controlUsage)
	cmd.MarkFlagRequired("control")
}

// parseControl cleans and checks the --control URLs (spaces around commas
// and empty items are dropped).
func parseControl(urls []string) ([]string, error) {
	var out []string
	for _, u := range urls {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	if _, err := cpclient.New(out, nil, ""); err != nil {
		return nil, fmt.Errorf("--control: %w", err)
	}
	return out, nil
}

// parseSource turns a --source flag into an address; empty means none.
func parseSource(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--source %q: not an IP address", s)
	}
	return a, nil
}

func newPlayCmd(g *globals) *cobra.Command {
	var control []string
	var nf netFlags
	var title, source, abr string
	var asJSON, dualStack bool
	var maxKbps int
	var segDur, maxBuf, patience time.Duration
	cmd := &cobra.Command{
		Use:   "play --control URL[,URL...] --title T",
		Short: "Play one title like a video player and print its QoE record",
		Long: `Play one title: ask the control plane for its rungs and their URLs, fetch
segments as byte ranges against a playback clock, adapt the bitrate to the
buffer (BBA-0; --abr fixed plays the top allowed rung), fail over down the URL
list on errors, timeouts and throughput collapse, re-steer when the list runs
out (asking again, with backoff, for up to --resteer-patience), and print what
a viewer would have experienced: startup delay, rebuffers, average bitrate,
switches, failovers and which appliances served it. The run
lasts as long as the title plays. --source binds a client address, so steering
sees the client as coming from there. --control lists the control plane's
replicas: titles and steering go to the one that answered last, and to the next
when it refuses, times out or answers 5xx; only when none answers does the
player wait and ask again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, err := parseSource(source)
			if err != nil {
				return err
			}
			urls, err := parseControl(control)
			if err != nil {
				return err
			}
			if abr != player.ABRBuffer && abr != player.ABRFixed {
				return fmt.Errorf("--abr %q: want bba or fixed", abr)
			}
			ctx, stop := signalContext(cmd.Context(), cmd.ErrOrStderr())
			defer stop()
			resolver, err := nf.resolverAddr()
			if err != nil {
				return err
			}
			p, err := player.New(player.Config{ControlURLs: urls, Source: src, ABR: abr, CAFile: nf.ca, Resolver: resolver,
				MaxBitrateKbps: maxKbps, SegmentDuration: segDur, MaxBuffer: maxBuf, DualStack: dualStack, ResteerPatience: patience})
			if err != nil {
				return err
			}
			defer p.Close()
			s, playErr := p.Play(ctx, title)
			out := cmd.OutOrStdout()
			if asJSON {
				b, err := json.MarshalIndent(s, "", "  ")
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "%s\n", b)
				return playErr
			}
			fmt.Fprintf(out, "title %s: %s\n", s.Title, map[bool]string{true: "completed", false: "failed"}[s.Completed])
			fmt.Fprintf(out, "  startup        %.0f ms\n", s.StartupMs)
			fmt.Fprintf(out, "  rebuffers      %d (%.0f ms)\n", s.Rebuffers, s.RebufferMs)
			fmt.Fprintf(out, "  bitrate        %.0f kbit/s average, %d switches, last rung %d kbit/s\n", s.AvgBitrateKbps, s.Switches, s.BitrateKbps)
			fmt.Fprintf(out, "  failovers      %d (%d for throughput collapse), %d re-steers\n", s.Failovers, s.Collapses, s.Resteers)
			if s.ControlWaits > 0 {
				fmt.Fprintf(out, "  control plane  unavailable %d times (waited and asked again)\n", s.ControlWaits)
			}
			apps := make([]string, 0, len(s.ServedBy))
			for _, a := range s.ServedOrder {
				apps = append(apps, fmt.Sprintf("%s (%.1f MB)", a, float64(s.ServedBy[a])/1e6))
			}
			fmt.Fprintf(out, "  served by      %s\n", strings.Join(apps, ", "))
			fmt.Fprintf(out, "  segments       %d, %.1f MB in %.1f s\n", s.Segments, float64(s.Bytes)/1e6, s.DurationMs/1000)
			if s.Error != "" {
				fmt.Fprintf(out, "  error          %s\n", s.Error)
			}
			return playErr
		},
	}
	addControlFlag(cmd, &control)
	cmd.Flags().StringVar(&title, "title", "", "title to play, e.g. t0000 (required)")
	cmd.Flags().StringVar(&source, "source", "", "client source address to bind (default: the kernel's choice)")
	nf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the QoE record as JSON")
	cmd.Flags().StringVar(&abr, "abr", player.ABRBuffer, "adaptation: bba (buffer-based, BBA-0) or fixed")
	cmd.Flags().IntVar(&maxKbps, "max-bitrate", 0, "highest rung to play, in kbit/s (0: no cap)")
	cmd.Flags().DurationVar(&segDur, "segment", 2*time.Second, "playback time per segment")
	cmd.Flags().DurationVar(&maxBuf, "max-buffer", 0, "how far ahead to download (default: 4 segments)")
	cmd.Flags().BoolVar(&dualStack, "dual-stack", false, "this host has IPv4 and IPv6: ask steering for each appliance's names in both families and race them (Happy Eyeballs, IPv6 first)")
	cmd.Flags().DurationVar(&patience, "resteer-patience", 30*time.Second, "how long to keep asking steering again, with backoff, when every URL it gave has failed")
	cmd.MarkFlagRequired("title")
	return cmd
}
