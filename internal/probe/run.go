package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/clock"
	"github.com/ocdn/ocdn/internal/dnsname"
	"github.com/ocdn/ocdn/internal/measure"
)

// ApplianceHeader names the serving appliance in a response; when present
// it overrides the recipe's appliance id for the pulse.
const ApplianceHeader = "X-OCDN-Appliance"

// Options shape how a recipe runs on this client. The zero value dials
// from an address the kernel chooses, with the system's TLS roots.
type Options struct {
	// Dial opens every probe connection; nil means a net.Dialer bound to
	// Source. The lab injects a netem dialer here.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Source is the client address to bind when Dial is nil.
	Source netip.Addr
	// TLSConfig is cloned for https targets (for test roots).
	TLSConfig *tls.Config
	// Now is the wall clock for report timestamps; nil means time.Now.
	// Durations are always measured with the monotonic clock.
	Now func() time.Time
	// DefaultTimeout is used when the recipe's PulseTimeout is 0.
	DefaultTimeout time.Duration
	// DefaultRangeBytes is used for throughput when a target has none.
	DefaultRangeBytes int64
	// Resolver resolves the probe names of dns pulses: the client's
	// configured resolver (nil: the system's, net.DefaultResolver).
	Resolver Resolver
}

// Resolver looks up one family's addresses of a name ("ip4" or "ip6");
// *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

func (o *Options) setDefaults() {
	if o.Dial == nil {
		d := &net.Dialer{}
		if o.Source.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: o.Source.AsSlice()}
		}
		o.Dial = d.DialContext
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.DefaultTimeout <= 0 {
		o.DefaultTimeout = 5 * time.Second
	}
	if o.DefaultRangeBytes <= 0 {
		o.DefaultRangeBytes = 1 << 20
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
}

// Run executes every target × type × pulse of rec: pulse rounds one after
// another, and within a round the targets in the recipe's (shuffled)
// order, with rec.PulseDelay between consecutive pulses and each pulse
// bounded by rec.PulseTimeout. Failed and timed-out pulses are recorded,
// not returned; Run returns an error only for an invalid recipe or when
// ctx ends, and then the report holds the pulses run so far.
func Run(ctx context.Context, rec *Recipe, opts Options) (*measure.Report, error) {
	if err := rec.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	rep := &measure.Report{ID: NewID(), Recipe: rec.ID, ClientTime: opts.Now(), Pulses: []measure.Pulse{}}
	if len(rec.Context) > 0 {
		rep.Context = make(map[string]string, len(rec.Context))
		for k, v := range rec.Context {
			rep.Context[k] = v
		}
	}
	timeout := rec.PulseTimeout
	if timeout <= 0 {
		timeout = opts.DefaultTimeout
	}
	seq := 0
	for round := 0; round < rec.Pulses; round++ {
		for _, t := range rec.Targets {
			for _, ty := range t.Types {
				if seq > 0 {
					if err := clock.Sleep(ctx, rec.PulseDelay); err != nil {
						return rep, err
					}
				}
				p := runPulse(ctx, t, ty, timeout, &opts)
				p.Seq = seq
				seq++
				if ctx.Err() != nil {
					return rep, ctx.Err()
				}
				rep.Pulses = append(rep.Pulses, p)
			}
		}
	}
	return rep, nil
}

func runPulse(ctx context.Context, t Target, ty string, timeout time.Duration, o *Options) measure.Pulse {
	p := measure.Pulse{Target: t.ID, Appliance: t.Appliance, Site: t.Site, Type: ty, Start: o.Now(), Family: targetFamily(t)}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	var err error
	switch ty {
	case measure.TypeTCPConnect:
		err = probeConnect(ctx, t, o, &p)
	case measure.TypeTLSHandshake:
		err = probeTLS(ctx, t, o, &p)
	case measure.TypeHTTPTTFB:
		err = probeHTTP(ctx, t, o, &p, 1)
	case measure.TypeThroughput:
		n := t.RangeBytes
		if n <= 0 {
			n = o.DefaultRangeBytes
		}
		err = probeHTTP(ctx, t, o, &p, n)
	case measure.TypeDNS:
		err = probeDNS(ctx, t, o, &p)
	default:
		err = fmt.Errorf("unknown probe type %q", ty)
	}
	p.DurationMs = ms(time.Since(start))
	switch {
	case err == nil:
		p.Status = measure.StatusOK
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || isTimeout(err):
		p.Status, p.Error = measure.StatusTimeout, fmt.Sprintf("no answer within %v", timeout)
	default:
		p.Status, p.Error = measure.StatusError, clip(err.Error())
	}
	return p
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// hostPort is the address a URL's connection goes to.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

func probeConnect(ctx context.Context, t Target, o *Options, p *measure.Pulse) error {
	u, err := url.Parse(t.URL)
	if err != nil {
		return err
	}
	start := time.Now()
	c, err := o.Dial(ctx, "tcp", hostPort(u))
	if err != nil {
		return err
	}
	p.ConnectMs = ms(time.Since(start))
	return c.Close()
}

var errNotHTTPS = errors.New("not https")

func probeTLS(ctx context.Context, t Target, o *Options, p *measure.Pulse) error {
	u, err := url.Parse(t.URL)
	if err != nil {
		return err
	}
	if u.Scheme != "https" {
		return errNotHTTPS
	}
	start := time.Now()
	c, err := o.Dial(ctx, "tcp", hostPort(u))
	if err != nil {
		return err
	}
	defer c.Close()
	p.ConnectMs = ms(time.Since(start))
	tc := tls.Client(c, tlsConfig(o, u))
	hs := time.Now()
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	p.TLSMs = ms(time.Since(hs))
	return nil
}

func tlsConfig(o *Options, u *url.URL) *tls.Config {
	var cfg *tls.Config
	if o.TLSConfig != nil {
		cfg = o.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	return cfg
}

// probeHTTP fetches the first n bytes of the target on a fresh
// connection, filling connect, TLS, TTFB and, for n > 1, throughput.
func probeHTTP(ctx context.Context, t Target, o *Options, p *measure.Pulse, n int64) error {
	u, err := url.Parse(t.URL)
	if err != nil {
		return err
	}
	var tlsStart, wrote time.Time
	var ttfb time.Duration
	// The transport dials (and shakes hands) in a goroutine of its own
	// that may outlive RoundTrip when the request is cancelled, so its
	// timings reach p only through dialed, copied once RoundTrip returns.
	var dialed struct {
		sync.Mutex
		connectMs, tlsMs float64
	}
	trace := &httptrace.ClientTrace{
		TLSHandshakeStart: func() {
			tlsStart = time.Now()
		},
		TLSHandshakeDone: func(tls.ConnectionState, error) {
			if !tlsStart.IsZero() {
				d := ms(time.Since(tlsStart))
				dialed.Lock()
				dialed.tlsMs = d
				dialed.Unlock()
			}
		},
		WroteRequest:         func(httptrace.WroteRequestInfo) { wrote = time.Now() },
		GotFirstResponseByte: func() { ttfb = time.Since(wrote) },
	}
	// One transport per pulse: no pooling, no HTTP/2 coalescing.
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			start := time.Now()
			c, err := o.Dial(ctx, network, addr)
			if err == nil {
				d := ms(time.Since(start))
				dialed.Lock()
				dialed.connectMs = d
				dialed.Unlock()
			}
			return c, err
		},
		TLSClientConfig:    tlsConfig(o, u),
		DisableKeepAlives:  true,
		DisableCompression: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, t.URL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=0-%d", n-1))
	req.Header.Set(api.MeasurementHeader, "probe")
	resp, err := tr.RoundTrip(req)
	dialed.Lock()
	p.ConnectMs, p.TLSMs = dialed.connectMs, dialed.tlsMs
	dialed.Unlock()
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	p.TTFBMs = ms(ttfb)
	p.HTTPStatus = resp.StatusCode
	if a := resp.Header.Get(ApplianceHeader); a != "" {
		p.Appliance = clip(a)
	}
	if resp.StatusCode != http.StatusPartialContent && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("http status %s", resp.Status)
	}
	// Read at most n bytes even if the server ignored the Range.
	body := io.LimitReader(resp.Body, n)
	buf := make([]byte, 64<<10)
	var first, last time.Time
	var total, firstN int64
	for {
		k, err := body.Read(buf)
		if k > 0 {
			last = time.Now()
			if first.IsZero() {
				first, firstN = last, int64(k)
			}
			total += int64(k)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			p.Bytes = total
			return err
		}
	}
	p.Bytes = total
	if n > 1 && total > firstN && last.After(first) {
		p.ThroughputBps = float64(total-firstN) * 8 / last.Sub(first).Seconds()
	}
	if total < n && resp.StatusCode == http.StatusPartialContent && total < resp.ContentLength {
		return fmt.Errorf("short body: %d of %d bytes", total, resp.ContentLength)
	}
	return nil
}

// targetFamily is the address family t's URL reaches its appliance over:
// t.Family, else the URL's IP address's, else that of the ipv4-/ipv6-
// label its host name starts with; "" when none says.
func targetFamily(t Target) string {
	if t.Family != "" {
		return t.Family
	}
	u, err := url.Parse(t.URL)
	if err != nil {
		return ""
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Unmap().Is4() {
			return measure.FamilyIPv4
		}
		return measure.FamilyIPv6
	}
	switch {
	case strings.HasPrefix(host, "ipv4-"):
		return measure.FamilyIPv4
	case strings.HasPrefix(host, "ipv6-"):
		return measure.FamilyIPv6
	}
	return ""
}

var (
	errDNSLiteral  = errors.New("dns: the target's url has an IP address, not a name to resolve")
	errDNSNoFamily = errors.New("dns: the target names no address family (family, or an ipv4-/ipv6- name)")
)

// probeDNS resolves a fresh probe name of the target's host through
// o.Resolver, then fetches one byte from the address it got, by that
// name, so the timings after resolution are of the family resolved.
func probeDNS(ctx context.Context, t Target, o *Options, p *measure.Pulse) error {
	u, err := url.Parse(t.URL)
	if err != nil {
		return err
	}
	if _, err := netip.ParseAddr(u.Hostname()); err == nil {
		return errDNSLiteral
	}
	network := ""
	switch p.Family {
	case measure.FamilyIPv4:
		network = "ip4"
	case measure.FamilyIPv6:
		network = "ip6"
	default:
		return errDNSNoFamily
	}
	nonce := dnsname.NewNonce()
	name, err := dnsname.Probe(nonce, strings.TrimSuffix(strings.ToLower(u.Hostname()), "."))
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	// The nonce is reported even when resolution fails: the server may
	// have logged the query all the same.
	p.Nonce = nonce
	start := time.Now()
	addrs, err := o.Resolver.LookupNetIP(ctx, network, name)
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	p.DNSMs = ms(time.Since(start))
	var addr netip.Addr
	for _, a := range addrs {
		if a = a.Unmap(); a.Is4() == (network == "ip4") {
			addr = a
			break
		}
	}
	if !addr.IsValid() {
		return fmt.Errorf("dns: %s has no %s address (got %v)", name, p.Family, addrs)
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	pu := *u
	pu.Host = net.JoinHostPort(name, port)
	pt := t
	pt.URL = pu.String()
	po := *o
	dial := o.Dial
	to := net.JoinHostPort(addr.String(), port)
	po.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) { return dial(ctx, network, to) }
	return probeHTTP(ctx, pt, &po, p, 1)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func clip(s string) string {
	if len(s) <= measure.MaxStringBytes {
		return s
	}
	return s[:measure.MaxStringBytes-3] + "..."
}
