package control

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/dnsname"
)

// endpoint is how one appliance is reached.
//
// Clients get base: https:// when the inventory says the appliance serves
// TLS, and its DNS name (docs/dns.md) when the control plane has a DNS
// domain, else its address. Appliances filling from a peer get peer,
// always the address: fill must not depend on the CDN's own DNS, and
// appliance certificates cover their addresses too. The control plane's
// own checks (prober, turn-up download) fetch base but dial addr, so they
// verify the certificate for the name clients use without depending on
// DNS either.
type endpoint struct {
	base  string // scheme://host:port, no trailing slash
	base6 string // the same for a dual-stack appliance's IPv6 address6; else ""
	peer  string // scheme://address:port
	host  string // the host of base: the TLS server name checked
	addr  netip.AddrPort
	tls   bool
}

// endpoints computes every appliance's endpoint. domain is the DNS zone
// ("" without a dns section).
func endpoints(inv config.Inventory, domain string) (map[string]endpoint, error) {
	out := make(map[string]endpoint, len(inv.Appliances))
	for i, a := range inv.Appliances {
		ap := a.Address.AddrPort
		scheme := "http://"
		if a.TLS {
			scheme = "https://"
		}
		// base is how clients reach ap: by the appliance's name for ap's
		// family under domain, else by the address itself.
		base := func(ap netip.AddrPort) (url, host string, err error) {
			if domain == "" {
				return scheme + ap.String(), ap.Addr().String(), nil
			}
			fam := dnsname.IPv4
			if ap.Addr().Is6() && !ap.Addr().Is4In6() {
				fam = dnsname.IPv6
			}
			name, err := dnsname.Appliance(domain, a.ID, a.Site, fam)
			if err != nil {
				return "", "", config.Errf(fmt.Sprintf("appliances[%d].id", i), "%v", err)
			}
			return scheme + net.JoinHostPort(name, strconv.Itoa(int(ap.Port()))), name, nil
		}
		e := endpoint{addr: ap, tls: a.TLS, peer: scheme + ap.String()}
		var err error
		if e.base, e.host, err = base(ap); err != nil {
			return nil, err
		}
		if a.Address6.IsValid() {
			if e.base6, _, err = base(a.Address6.AddrPort); err != nil {
				return nil, err
			}
		}
		out[a.ID] = e
	}
	return out, nil
}

// applianceClient is the control plane's HTTP client for its own checks
// of appliances: it verifies TLS against roots (nil: the system's) and
// the name in the URL, and dials the inventory address of whichever
// appliance the URL names.
func applianceClient(eps map[string]endpoint, roots *x509.CertPool, timeout time.Duration) *http.Client {
	addrOf := make(map[string]string, len(eps))
	for _, e := range eps {
		addrOf[strings.TrimPrefix(strings.TrimPrefix(e.base, "https://"), "http://")] = e.addr.String()
	}
	d := &net.Dialer{Timeout: timeout}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, hostport string) (net.Conn, error) {
			if a, ok := addrOf[hostport]; ok {
				hostport = a
			}
			return d.DialContext(ctx, network, hostport)
		},
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 1,
		ForceAttemptHTTP2:   true,
	}
	return &http.Client{Timeout: timeout, Transport: tr}
}

// Certificate faults, the values of the fault label of
// ocdn_control_appliance_certificate_faults.
const (
	faultNameMismatch = "name_mismatch"
	faultExpired      = "expired"
	faultUntrusted    = "untrusted"
	faultUnreadable   = "unreadable"
	faultNoTLS        = "no_tls"
)

// certFault classifies a failed request to an appliance serving TLS: a
// fault of its certificate (or of its TLS) that clients would refuse it
// for, as a metric label and a reason for operators; ok false when err is
// something else (a refused connection, a timeout), for the prober's
// other rules.
func certFault(err error, host string) (label, reason string, ok bool) {
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	var record tls.RecordHeaderError
	var alert tls.AlertError
	switch {
	case errors.As(err, &hostErr):
		return faultNameMismatch, "certificate does not match " + host + " (" + hostErr.Error() + ")", true
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return faultExpired, "certificate expired or not yet valid (" + invalid.Error() + ")", true
	case errors.As(err, &unknown):
		return faultUntrusted, "certificate not signed by a CA of appliance_ca_file", true
	case errors.As(err, &invalid):
		return faultUntrusted, "certificate invalid (" + invalid.Error() + ")", true
	case strings.Contains(err.Error(), "failed to parse certificate"):
		return faultUnreadable, "certificate unreadable (" + rootCause(err) + ")", true
	case errors.As(err, &alert):
		return faultUnreadable, "TLS handshake refused by the appliance (" + alert.Error() + "): its certificate did not load", true
	case errors.As(err, &record):
		return faultNoTLS, "does not serve TLS, although the inventory says tls: true", true
	}
	return "", "", false
}

// rootCause is the last part of a chain of wrapped error messages.
func rootCause(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}
