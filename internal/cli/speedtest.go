package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ocdn/ocdn/internal/cpclient"
	"github.com/ocdn/ocdn/internal/speedtest"
)

func newSpeedtestCmd(g *globals) *cobra.Command {
	var control []string
	var nf netFlags
	var source, file, title string
	var asJSON bool
	var n, maxConns int
	var maxDur time.Duration
	cmd := &cobra.Command{
		Use:   "speedtest --control URL[,URL...] [--file title/file]",
		Short: "Measure download speed to the appliances steering chooses (fast.com-style)",
		Long: `Ask steering for the URLs of a large file (--file, or the largest file of
--title) and measure the download rate to them: unloaded latency first, then
parallel connections, added while the aggregate rate still grows by more than
10% (up to --max-conns); ramp-up windows are discarded and the test stops when
ten 200 ms windows agree within 3% (or at --max-duration). Loaded latency is
sampled during the download. --source binds a client address, so steering sees
the client as coming from there. --control lists the control plane's replicas:
the title and steering requests go to the one that answered last, and to the
next when it refuses, times out or answers 5xx.`,
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
			ctx, stop := signalContext(cmd.Context(), cmd.ErrOrStderr())
			defer stop()
			d, err := nf.dialer(src)
			if err != nil {
				return err
			}
			cp := cpclient.Must(urls, dialerClient(d, 10*time.Second), "")
			_, targets, err := speedtest.Targets(ctx, cp, title, file, n)
			if err != nil {
				return err
			}
			cfg := speedtest.Config{URLs: targets, Dial: d.DialContext, TLSConfig: d.TLSConfig(), MaxConns: maxConns, MaxDuration: maxDur}
			if f, ok := cmd.ErrOrStderr().(*os.File); ok && !asJSON && term.IsTerminal(int(f.Fd())) {
				cfg.Progress = func(s speedtest.Sample) {
					fmt.Fprintf(f, "\r%5.1fs  %8.2f Mbit/s  %d connections ", s.Elapsed.Seconds(), s.RateBps/1e6, s.Connections)
				}
				defer fmt.Fprintln(f)
			}
			res, err := speedtest.Run(ctx, cfg)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				b, err := json.MarshalIndent(res, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(out, "%s\n", b)
				return err
			}
			state := "stable"
			if !res.Stable {
				state = "not stable by --max-duration"
			}
			fmt.Fprintf(out, "download   %.2f Mbit/s (%s; %d connections, %.1f s, %.1f MB)\n",
				res.DownloadBps/1e6, state, res.Connections, res.DurationMs/1000, float64(res.Bytes)/1e6)
			fmt.Fprintf(out, "latency    %.1f ms unloaded, %.1f ms loaded\n", res.UnloadedLatencyMs, res.LoadedLatencyMs)
			fmt.Fprintf(out, "targets    %s\n", strings.Join(res.Targets, "\n           "))
			return nil
		},
	}
	addControlFlag(cmd, &control)
	cmd.Flags().StringVar(&source, "source", "", "client source address to bind (default: the kernel's choice)")
	nf.add(cmd)
	cmd.Flags().StringVar(&file, "file", "", "file to download, as title/file (default: the largest file of --title)")
	cmd.Flags().StringVar(&title, "title", "t0000", "title whose largest file is downloaded when --file is not given")
	cmd.Flags().IntVar(&n, "urls", 5, "how many URLs to ask steering for")
	cmd.Flags().IntVar(&maxConns, "max-conns", 8, "most parallel connections")
	cmd.Flags().DurationVar(&maxDur, "max-duration", 20*time.Second, "longest download phase")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
