package clientnet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/dns/dnstest"
	"github.com/ocdn/ocdn/internal/dnsname"
	"github.com/ocdn/ocdn/internal/pki"
)

const domain = "cdn.example.net"

// world is an HTTPS server with a certificate from a fresh CA for one
// appliance name, and an authoritative DNS server answering that name with
// the server's address.
type world struct {
	url    string // https://<name>:<port>/
	caFile string
	dns    netip.AddrPort
}

// applianceCert is a fresh CA and the certificate it issued to
// appliance a1 for its name, ipv4-a1-ams.<domain>.
func applianceCert(tb testing.TB) (ca *pki.CA, pair tls.Certificate, name string) {
	tb.Helper()
	now := time.Now()
	ca, err := pki.NewCA("test CA", domain, 24*time.Hour, now)
	if err != nil {
		tb.Fatal(err)
	}
	name = "ipv4-a1-ams." + domain
	certPEM, keyPEM, err := ca.Issue(pki.Request{Name: "a1", DNSNames: []string{name}}, time.Hour, now)
	if err != nil {
		tb.Fatal(err)
	}
	if pair, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		tb.Fatal(err)
	}
	return ca, pair, name
}

func newWorld(t *testing.T) world {
	t.Helper()
	ca, pair, name := applianceCert(t)
	dir := t.TempDir()
	if err := pki.WriteCA(dir, ca); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ap := netip.MustParseAddrPort(srv.Listener.Addr().String())

	resolver := dnstest.StartAuth(t, domain, config.ApplianceName{Name: name, Family: dnsname.IPv4, Appliance: "a1", Site: "ams", Addr: ap.Addr()})
	return world{url: "https://" + net.JoinHostPort(name, itoa(ap.Port())) + "/", caFile: filepath.Join(dir, pki.CACertFile), dns: resolver}
}

func itoa(p uint16) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), p).String()[len("0.0.0.0:"):]
}

func get(t *testing.T, d *Dialer, u string) error {
	t.Helper()
	tr := d.Transport()
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if string(b) != "ok" {
		t.Fatalf("GET %s = %q, want ok", u, b)
	}
	return nil
}

// A client with the CA bundle and the resolver fetches by name and
// verifies the certificate.
func TestNameAndVerifiedTLS(t *testing.T) {
	w := newWorld(t)
	d, err := New(Config{CAFile: w.caFile, Resolver: w.dns})
	if err != nil {
		t.Fatal(err)
	}
	if err := get(t, d, w.url); err != nil {
		t.Fatalf("GET %s with the CA and resolver: %v", w.url, err)
	}
}

// Without the CA the certificate does not verify: the client never skips
// verification.
func TestUnknownCAFails(t *testing.T) {
	w := newWorld(t)
	d, err := New(Config{Resolver: w.dns}) // system roots
	if err != nil {
		t.Fatal(err)
	}
	err = get(t, d, w.url)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("GET %s without the CA = %v, want an unknown-authority error", w.url, err)
	}
}

// A name the authoritative server does not know fails to resolve.
func TestUnknownName(t *testing.T) {
	w := newWorld(t)
	d, err := New(Config{CAFile: w.caFile, Resolver: w.dns})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.DialContext(context.Background(), "tcp", "ipv4-zz-ams."+domain+":443")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Fatalf("dial an unknown name = %v, want a not-found DNS error", err)
	}
}

func TestLoadCAs(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadCAs(filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("LoadCAs(missing file) succeeded")
	}
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{CAFile: bad}); err == nil {
		t.Error("New with a CA file without certificates succeeded")
	}
}
