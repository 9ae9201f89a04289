package player

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/cpclient/cptest"
	"github.com/ocdn/ocdn/internal/dns/dnstest"
	"github.com/ocdn/ocdn/internal/dnsname"
	"github.com/ocdn/ocdn/internal/pki"
	"github.com/ocdn/ocdn/internal/steer"
)

// A playback from an appliance served over HTTPS by name: the player
// resolves the name through the configured resolver, verifies the
// certificate against the configured CA, and breaks the first request's
// startup down into DNS, connect, TLS and first byte, each measured.
func TestStartupBreakdownOverHTTPSByName(t *testing.T) {
	const domain = "cdn.example.net"
	name := "ipv4-a1-ams." + domain
	now := time.Now()
	ca, err := pki.NewCA("test CA", domain, 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(pki.Request{Name: "a1", DNSNames: []string{name}}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cat := catalog(t, 2*time.Second)
	a := &fakeAppliance{id: "a1", cat: cat}
	a.srv = newTLSServer(t, a, pair)
	ap := netip.MustParseAddrPort(a.srv.Listener.Addr().String())
	resolver := dnstest.StartAuth(t, domain, config.ApplianceName{Name: name, Family: dnsname.IPv4, Appliance: "a1", Site: "ams", Addr: ap.Addr()})
	base := "https://" + net.JoinHostPort(name, itoa(ap.Port()))
	ctl := cpNamed(t, cat, base, a)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	p := shortPlayer(t, ctl, func(c *Config) { c.RootCAs, c.Resolver = roots, resolver })
	defer p.Close()
	sess, err := p.Play(context.Background(), "t0000")
	if err != nil {
		t.Fatalf("Play = %v", err)
	}
	st := sess.Startup
	if st == nil || !st.HTTPS || st.Reused || st.DNSMs <= 0 || st.ConnectMs <= 0 || st.TLSMs <= 0 || st.FirstByteMs <= 0 {
		t.Fatalf("startup = %+v, want an https first request with DNS, connect, TLS and first byte each > 0", st)
	}
	t.Logf("startup breakdown: %+v", *st)

	// Without the CA the same playback fails: nothing skips
	// verification.
	p2 := shortPlayer(t, ctl, func(c *Config) { c.Resolver, c.ResteerPatience = resolver, time.Second })
	defer p2.Close()
	if _, err := p2.Play(context.Background(), "t0000"); err == nil {
		t.Fatal("Play without the CA succeeded, want a certificate error")
	}
}

// An http URL with an address has no DNS and no TLS to break down.
func TestStartupBreakdownPlainHTTP(t *testing.T) {
	cat := catalog(t, 2*time.Second)
	a := newAppliance(t, "a1", cat)
	ctl := newControl(t, cat, func(int) []*fakeAppliance { return []*fakeAppliance{a} })
	p := shortPlayer(t, ctl, nil)
	defer p.Close()
	sess, err := p.Play(context.Background(), "t0000")
	if err != nil {
		t.Fatalf("Play = %v", err)
	}
	if st := sess.Startup; st == nil || st.HTTPS || st.DNSMs != 0 || st.TLSMs != 0 || st.ConnectMs <= 0 || st.FirstByteMs <= 0 {
		t.Fatalf("startup = %+v, want http with connect and first byte only", st)
	}
}

// cpNamed is a control plane steering every file to base (the
// appliance's https URL by name).
func cpNamed(t *testing.T, cat *content.Catalog, base string, a *fakeAppliance) *cptest.Plane {
	return cptest.New(t, cptest.Config{Catalog: cat, Steer: func(_ int, file string) []steer.Choice {
		return []steer.Choice{{URL: base + "/c/tok/" + file, Appliance: a.id, Site: "s-" + a.id}}
	}})
}

func newTLSServer(t *testing.T, h http.Handler, pair tls.Certificate) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	// The refused handshakes of the test without the CA are expected.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

// A slow connection set-up (a slow handshake, a far resolver) is not a
// throughput collapse: the grace counts from when the connection is
// ready, so the first segment, fetched with an empty buffer, stays with
// the first appliance.
func TestSlowSetUpIsNotACollapse(t *testing.T) {
	cat := catalog(t, 2*time.Second)
	a1, a2 := newAppliance(t, "a1", cat), newAppliance(t, "a2", cat)
	ctl := newControl(t, cat, func(int) []*fakeAppliance { return []*fakeAppliance{a1, a2} })
	slow := netip.MustParseAddrPort(a1.srv.Listener.Addr().String())
	p := shortPlayer(t, ctl, func(c *Config) {
		c.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if netip.MustParseAddrPort(addr) == slow {
				// Set-up longer than CollapseGrace (500 ms).
				select {
				case <-time.After(800 * time.Millisecond):
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	})
	defer p.Close()
	sess, err := p.Play(context.Background(), "t0000")
	if err != nil {
		t.Fatalf("Play = %v", err)
	}
	if sess.Collapses != 0 || sess.Failovers != 0 || sess.ServedBy["a2"] != 0 {
		t.Fatalf("session = %d collapses, %d failovers, served by %v; want a1 alone despite its slow set-up", sess.Collapses, sess.Failovers, sess.ServedBy)
	}
}
