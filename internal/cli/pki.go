package cli

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/pki"
)

func newPKICmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pki",
		Short: "Make a CA and the TLS certificates of the appliances and the control plane",
		Long: `A small certificate authority for the CDN, so that players, probes and the speed
test verify HTTPS against one CA bundle (ca.pem). Keys are ECDSA P-256, files PEM.

  ocdn pki ca --out pki --domain cdn.example.net
  ocdn pki issue --config control.yaml --ca pki --out certs

An appliance's certificate covers its DNS names (ipv4-<id>-<site>.<domain>,
ipv6-…), one label of wildcard beneath each (its probe names) and its addresses.
Renew by issuing again and sending the daemons SIGHUP: they load the new files
without dropping a connection. See docs/dns.md.`,
	}
	cmd.AddCommand(newPKICACmd(), newPKIIssueCmd())
	return cmd
}

func newPKICACmd() *cobra.Command {
	var out, name, domain, validity string
	cmd := &cobra.Command{
		Use:   "ca --out DIR [--domain D]",
		Short: "Make a CA: DIR/ca.pem (the bundle clients trust) and DIR/ca.key (mode 0600)",
		Long: `Make a self-signed CA in DIR: ca.pem is the bundle to give players, probes and
appliances; ca.key signs certificates and stays with the operator. An existing CA
is never replaced. With --domain the CA may only certify names beneath it (an
X.509 name constraint clients enforce), so its key cannot impersonate anyone else.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := parseValidity(validity)
			if err != nil {
				return fmt.Errorf("--validity: %w", err)
			}
			ca, err := pki.NewCA(name, domain, v, time.Now())
			if err != nil {
				return err
			}
			if err := pki.WriteCA(out, ca); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s/%s and %s/%s: CA %q valid until %s\n", out, pki.CACertFile, out, pki.CAKeyFile, name, ca.Cert.NotAfter.Format(time.DateOnly))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory for ca.pem and ca.key (required)")
	cmd.Flags().StringVar(&name, "name", "ocdn CA", "the CA's common name")
	cmd.Flags().StringVar(&domain, "domain", "", "limit the CA to names beneath this domain (the CDN domain)")
	cmd.Flags().StringVar(&validity, "validity", "3650d", "how long the CA is valid: days (3650d) or a Go duration")
	cmd.MarkFlagRequired("out")
	return cmd
}

func newPKIIssueCmd() *cobra.Command {
	var cfgFile, caDir, out, validity string
	var appliances, controlNames, controlIPs []string
	cmd := &cobra.Command{
		Use:   "issue --config control.yaml --ca DIR --out DIR",
		Short: "Issue the appliances' and the control plane's certificates",
		Long: `Issue a certificate and key for every appliance in the control plane's inventory
(OUT/<id>.pem, OUT/<id>.key) and for the control plane (OUT/control.pem,
OUT/control.key), signed by the CA in --ca. The names come from the config's dns
section and inventory. The control plane's certificate covers its listen
addresses and any --control-name and --control-ip. With --appliance, only those
appliances' certificates are issued (renewing one). Files are replaced
atomically, so a daemon reloading on SIGHUP never reads half of one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := parseValidity(validity)
			if err != nil {
				return fmt.Errorf("--validity: %w", err)
			}
			var cfg config.Control
			if err := config.Load(cfgFile, &cfg); err != nil {
				return err
			}
			ca, err := pki.LoadCA(caDir)
			if err != nil {
				return fmt.Errorf("--ca: %w", err)
			}
			reqs, err := pki.ApplianceRequests(&cfg, appliances)
			if err != nil {
				return fmt.Errorf("%s: %w", cfgFile, err)
			}
			if len(appliances) == 0 || len(controlNames)+len(controlIPs) > 0 {
				var ips []netip.Addr
				for _, s := range controlIPs {
					a, err := netip.ParseAddr(s)
					if err != nil {
						return fmt.Errorf("--control-ip %q: not an IP address", s)
					}
					ips = append(ips, a)
				}
				r, err := pki.ControlRequest(&cfg, controlNames, ips)
				if err != nil {
					return fmt.Errorf("control plane certificate: %w (--control-name, --control-ip)", err)
				}
				reqs = append(reqs, r)
			}
			now := time.Now()
			for _, r := range reqs {
				certPEM, keyPEM, err := ca.Issue(r, v, now)
				if err != nil {
					return err
				}
				cf, kf, err := pki.WriteCert(out, r.Name, certPEM, keyPEM)
				if err != nil {
					return err
				}
				covers := append([]string(nil), r.DNSNames...)
				for _, ip := range r.IPs {
					covers = append(covers, ip.String())
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s and %s: %s, valid until %s\n", cf, kf, strings.Join(covers, " "), now.Add(v).Format(time.DateOnly))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgFile, "config", "", "the control plane's config file: its dns section and inventory (required)")
	cmd.Flags().StringVar(&caDir, "ca", "", "directory holding ca.pem and ca.key (required)")
	cmd.Flags().StringVar(&out, "out", "", "directory for the certificates and keys (required)")
	cmd.Flags().StringVar(&validity, "validity", "397d", "how long each certificate is valid: days (397d) or a Go duration")
	cmd.Flags().StringArrayVar(&appliances, "appliance", nil, "issue for this appliance id only (repeatable)")
	cmd.Flags().StringArrayVar(&controlNames, "control-name", nil, "a DNS name of the control plane to certify (repeatable)")
	cmd.Flags().StringArrayVar(&controlIPs, "control-ip", nil, "an address of the control plane to certify besides its listen addresses (repeatable)")
	for _, f := range []string{"config", "ca", "out"} {
		cmd.MarkFlagRequired(f)
	}
	return cmd
}

// parseValidity reads "397d" (days) or a Go duration such as "72h".
func parseValidity(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number of days such as 397d", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not days (397d) or a duration (72h)", s)
		}
	}
	if d < time.Hour || d > 100*365*24*time.Hour {
		return 0, fmt.Errorf("%s is not between an hour and a hundred years", s)
	}
	return d, nil
}
