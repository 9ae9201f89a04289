package browsertest_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/browsertest"
	"github.com/ocdn/ocdn/internal/pki"
)

// TestCAFile: a browser given a CA loads a page over HTTPS by name from a
// server whose certificate that CA issued, and a browser without it
// refuses the same page with a certificate error; so the trust comes
// from the imported CA and verification is on.
func TestCAFile(t *testing.T) {
	browsertest.Chromium(t)
	browsertest.Certutil(t)
	const domain, name = "browsertest.example", "www.browsertest.example"
	now := time.Now()
	ca, err := pki.NewCA("browsertest CA", domain, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(pki.Request{Name: "www", DNSNames: []string{name}}, 30*time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><title>verified</title><p>served by name")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	url := "https://" + name + ":" + port + "/"
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	// The name resolves to the server inside the browser only.
	resolve := map[string]any{"host-resolver-rules": "MAP " + name + " 127.0.0.1"}

	trusting := browsertest.Start(t, browsertest.Options{CAFile: caFile, Flags: resolve})
	trusting.Navigate(url)
	if got := browsertest.Eval[string](trusting, `location.protocol + " " + document.title`); got != "https: verified" {
		t.Errorf("%s with the CA imported: page %q, want %q", url, got, "https: verified")
	}

	bare := browsertest.Start(t, browsertest.Options{Flags: resolve})
	if err := bare.TryNavigate(url); err == nil || !strings.Contains(err.Error(), "ERR_CERT_AUTHORITY_INVALID") {
		t.Errorf("%s without the CA: navigation error %v, want net::ERR_CERT_AUTHORITY_INVALID", url, err)
	}
}

// TestCAFileWithoutCertificate: a CA file that holds no certificate is
// an error (Start fails naming the file), rather than a browser that
// trusts nothing and fails later in a page.
func TestCAFileWithoutCertificate(t *testing.T) {
	certutil := browsertest.Certutil(t)
	bad := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(bad, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := browsertest.TrustCA(certutil, t.TempDir(), bad)
	if err == nil || !strings.Contains(err.Error(), "no PEM CERTIFICATE") {
		t.Errorf("TrustCA(%s) = %v, want an error saying it holds no certificate", bad, err)
	}
}
