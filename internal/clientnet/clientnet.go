// Package clientnet provides how ocdn's clients — the player, the probe,
// the speed test and the lab's simulated viewers — reach appliances: names
// resolved through a configured resolver (or the system's), connections
// opened by an injectable dialer (a source address, the lab's emulated
// links) as RFC 8305's Happy Eyeballs does when a name has both families,
// and TLS verified against a configured CA bundle. It is the one place
// where clients dial.
package clientnet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/ocdn/ocdn/internal/happyeyeballs"
)

// DialFunc opens a connection to addr, an IP:port once the Dialer has
// resolved the name.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Config says how a client reaches appliances. The zero value resolves
// with the system's resolver, verifies with the system's roots and dials
// with a plain net.Dialer.
type Config struct {
	// CAFile is a PEM bundle of the CAs that sign appliance (and control
	// plane) certificates (`ocdn pki`'s ca.pem); empty: the system's roots.
	CAFile string
	// RootCAs, when set, is used instead of CAFile (in-process clients
	// that hold the pool already).
	RootCAs *x509.CertPool
	// Resolver is a DNS server (ADDR:PORT) to resolve names through;
	// invalid: the system's resolver.
	Resolver netip.AddrPort
	// Source is the local address connections are bound to (zero: the
	// kernel chooses). Ignored when Dial is set.
	Source netip.Addr
	// Dial opens a connection to a resolved IP:port; nil: a net.Dialer
	// bound to Source with Timeout.
	Dial DialFunc
	// Timeout bounds one connection attempt with the default dialer
	// (default 5 s).
	Timeout time.Duration
	// Alternates, when set, names other host names of the same server
	// whose addresses are raced with the host's own (an appliance's name
	// of the other address family: happyeyeballs.Dialer.Alternates).
	Alternates func(host string) []string
}

// Dialer resolves, dials and holds the TLS configuration of one client.
type Dialer struct {
	resolver *net.Resolver
	dial     DialFunc
	he       *happyeyeballs.Dialer
	tls      *tls.Config
}

// LoadCAs reads a PEM bundle of CA certificates. It fails naming the file
// when it cannot be read or holds no certificate.
func LoadCAs(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("ca file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("ca file %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// New returns the Dialer c describes; it fails only on an unreadable CA
// bundle.
func New(c Config) (*Dialer, error) {
	pool := c.RootCAs
	if pool == nil && c.CAFile != "" {
		var err error
		if pool, err = LoadCAs(c.CAFile); err != nil {
			return nil, err
		}
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	d := &Dialer{dial: c.Dial, resolver: net.DefaultResolver,
		// RootCAs nil means the system's roots; verification is never
		// skipped. Sessions are resumed, as players and browsers do: a
		// viewer's next connection to an appliance skips the certificate
		// exchange and its verification (clones share the cache).
		tls: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(64)}}
	if d.dial == nil {
		nd := &net.Dialer{Timeout: c.Timeout}
		if c.Source.IsValid() {
			nd.LocalAddr = &net.TCPAddr{IP: c.Source.AsSlice()}
		}
		d.dial = nd.DialContext
	}
	if c.Resolver.IsValid() {
		server := c.Resolver.String()
		// The Go resolver, so that queries go to server alone (cgo would
		// ask the system's); it tries UDP and falls back to TCP on
		// truncation, each through this dialer.
		d.resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, network, server)
		}}
	}
	d.he = &happyeyeballs.Dialer{Resolver: d.resolver, Dial: d.dial, Alternates: c.Alternates}
	return d, nil
}

// TLSConfig is the client TLS configuration: the configured roots, server
// names from the URL. Callers may clone and adjust it but must not turn
// verification off.
func (d *Dialer) TLSConfig() *tls.Config { return d.tls }

// Resolver is the resolver names go through.
func (d *Dialer) Resolver() *net.Resolver { return d.resolver }

// Transport is an HTTP transport that dials and verifies as d does, with
// HTTP/2 over TLS.
func (d *Dialer) Transport() *http.Transport {
	return &http.Transport{DialContext: d.DialContext, TLSClientConfig: d.tls.Clone(), ForceAttemptHTTP2: true,
		MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second, TLSHandshakeTimeout: 10 * time.Second}
}

// DialContext connects to addr (host:port). A host name is resolved
// through the configured resolver — within ctx, so an httptrace in ctx
// sees DNSStart/DNSDone — and dialed as RFC 8305's Happy Eyeballs does:
// AAAA and A looked up at once, IPv6 tried first and IPv4 after the
// attempt delay, the first connection that succeeds kept.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return d.he.DialContext(ctx, network, addr)
}
