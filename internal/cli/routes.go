package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ocdn/ocdn/internal/control"
	"github.com/ocdn/ocdn/internal/rib"
)

func newRoutesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "routes",
		Short: "Inspect route tables: MRT dumps, prefix lists, and what the control plane steers by",
	}
	cmd.AddCommand(newRoutesLoadCmd(), newRoutesLookupCmd())
	return cmd
}

func newRoutesLoadCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "load FILE...",
		Short: "Parse route files (MRT TABLE_DUMP_V2 or BGP4MP, or prefix lists; gzip or not) and build the steering table",
		Long: `Parse each file, report its format, how many IPv4 and IPv6 routes it holds, and how
long building the longest-prefix-match table took and how much memory it uses.
A malformed file is reported with the byte offset (MRT) or line (prefix list) of
the problem and nothing is built from it. This is what the control plane does
with route_files, so operators can check a file before deploying it.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			all := map[string][]rib.Route{}
			for _, path := range args {
				start := time.Now()
				routes, format, err := readRoutesFile(path)
				if err != nil {
					return err
				}
				v4 := 0
				for _, r := range routes {
					if r.Prefix.Addr().Is4() {
						v4++
					}
				}
				all[path] = append(all[path], routes...)
				fmt.Fprintf(out, "%s: %s, %d routes (%d IPv4, %d IPv6), read in %v\n", path, format, len(routes), v4, len(routes)-v4, time.Since(start).Round(time.Millisecond))
			}
			start := time.Now()
			t, err := rib.NewTable(all)
			if err != nil {
				return err
			}
			built := time.Since(start)
			all = nil // the table keeps its own copy; measure only the table
			runtime.GC()
			var mem runtime.MemStats
			runtime.ReadMemStats(&mem)
			fmt.Fprintf(out, "table: %d prefixes, built in %v; heap in use with the table %.0f MB\n", t.Len(), built.Round(time.Millisecond), float64(mem.HeapAlloc)/1e6)
			runtime.KeepAlive(t)
			return nil
		},
	}
}

func readRoutesFile(path string) ([]rib.Route, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	routes, format, err := rib.ReadRoutes(f)
	if err != nil {
		return nil, format, fmt.Errorf("%s: %w", path, err)
	}
	return routes, format, nil
}

func newRoutesLookupCmd() *cobra.Command {
	var files []string
	var controlURL, tokenFile string
	cmd := &cobra.Command{
		Use:   "lookup (--file FILE... | --control URL --admin-token-file F) IP...",
		Short: "Show the longest-prefix match and the routes behind it for each address",
		Long: `For each IP, print the longest matching prefix and every route to it: from route
files given with --file (each file is one candidate, named by its path), or from a
running control plane (--control), where each candidate is an appliance that
heard the route.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ips []netip.Addr
			for _, a := range args {
				ip, err := netip.ParseAddr(a)
				if err != nil {
					return fmt.Errorf("%q is not an IP address", a)
				}
				ips = append(ips, ip)
			}
			var lookup func(netip.Addr) (control.LookupReply, error)
			switch {
			case len(files) > 0 && controlURL == "":
				cands := map[string][]rib.Route{}
				for _, path := range files {
					routes, _, err := readRoutesFile(path)
					if err != nil {
						return err
					}
					cands[path] = append(cands[path], routes...)
				}
				t, err := rib.NewTable(cands)
				if err != nil {
					return err
				}
				lookup = func(ip netip.Addr) (control.LookupReply, error) {
					rep := control.LookupReply{IP: ip.String()}
					if pfx, cs, ok := t.Lookup(ip); ok {
						rep.Prefix, rep.Candidates = pfx.String(), cs
					}
					return rep, nil
				}
			case controlURL != "" && len(files) == 0:
				token, err := os.ReadFile(tokenFile)
				if err != nil {
					return fmt.Errorf("--admin-token-file: %w", err)
				}
				lookup = func(ip netip.Addr) (control.LookupReply, error) {
					return remoteLookup(controlURL, strings.TrimSpace(string(token)), ip)
				}
			default:
				return errors.New("give either --file (one or more) or --control with --admin-token-file")
			}
			out := cmd.OutOrStdout()
			for _, ip := range ips {
				rep, err := lookup(ip)
				if err != nil {
					return err
				}
				if rep.Prefix == "" {
					fmt.Fprintf(out, "%s: no route\n", ip)
					continue
				}
				fmt.Fprintf(out, "%s: %s\n", ip, rep.Prefix)
				for _, c := range rep.Candidates {
					fmt.Fprintf(out, "  %-24s local-pref %d  as-path %v  origin %d  med %d\n", c.Appliance, c.Attrs.LocalPref, c.Attrs.ASPath, c.Attrs.Origin, c.Attrs.MED)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&files, "file", nil, "route file (MRT or prefix list, gzip or not); repeat for several")
	cmd.Flags().StringVar(&controlURL, "control", "", "control-plane URL to ask instead of files")
	cmd.Flags().StringVar(&tokenFile, "admin-token-file", "", "file holding the control plane's admin token (with --control)")
	return cmd
}

func remoteLookup(base, token string, ip netip.Addr) (control.LookupReply, error) {
	var rep control.LookupReply
	req, err := http.NewRequest(http.MethodGet, strings.TrimSuffix(base, "/")+"/v1/routes/lookup?ip="+url.QueryEscape(ip.String()), nil)
	if err != nil {
		return rep, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return rep, fmt.Errorf("control plane: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return rep, json.NewDecoder(resp.Body).Decode(&rep)
}
