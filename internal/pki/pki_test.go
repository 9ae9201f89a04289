package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/config"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// testConfig is the control plane config the pki and CLI tests share.
const testConfig = "testdata/control.yaml"

func testControl(t *testing.T) *config.Control {
	t.Helper()
	var c config.Control
	if err := config.Load(testConfig, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

func verify(t *testing.T, ca *CA, certPEM []byte, host string, at time.Time) error {
	t.Helper()
	cert, err := parseCert(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, CurrentTime: at})
	if err == nil && net.ParseIP(host) == nil && cert.VerifyHostname(host) != nil {
		t.Fatalf("Verify accepted %s but VerifyHostname does not", host)
	}
	return err
}

func TestApplianceCertificates(t *testing.T) {
	ca, err := NewCA("ocdn test CA", "cdn.example.net", DefaultCAValidity, now)
	if err != nil {
		t.Fatal(err)
	}
	reqs, err := ApplianceRequests(testControl(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 || reqs[0].Name != "a1" || len(reqs[0].DNSNames) != 4 || len(reqs[0].IPs) != 2 || len(reqs[1].DNSNames) != 2 {
		t.Fatalf("ApplianceRequests = %+v, want a1 with 2 names, 2 wildcards, 2 addresses; b2 with 1 name, 1 wildcard", reqs)
	}
	certPEM, keyPEM, err := ca.Issue(reqs[0], DefaultLeafValidity, now)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := parseCert(certPEM)
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", cert.PublicKey)
	}
	if d := cert.NotAfter.Sub(now); d != DefaultLeafValidity {
		t.Errorf("valid for %s after issue, want %s", d, DefaultLeafValidity)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("the key does not match the certificate: %v", err)
	}
	for _, host := range []string{"ipv4-a1-ams.cdn.example.net", "IPV6-A1-AMS.cdn.example.net", "p-abcdefgh2345.ipv4-a1-ams.cdn.example.net", "192.0.2.1", "2001:db8::1"} {
		if err := verify(t, ca, certPEM, host, now); err != nil {
			t.Errorf("verify as %s: %v", host, err)
		}
	}
	for _, tc := range []struct {
		host string
		at   time.Time
	}{
		{"ipv4-b2-ams.cdn.example.net", now},                     // another appliance's name
		{"x.p-abc.ipv4-a1-ams.cdn.example.net", now},             // two labels below: the wildcard covers one
		{"192.0.2.2", now},                                       // another address
		{"ipv4-a1-ams.cdn.example.net", now.Add(-2 * time.Hour)}, // not yet valid
		{"ipv4-a1-ams.cdn.example.net", now.Add(DefaultLeafValidity + time.Second)},
	} {
		if err := verify(t, ca, certPEM, tc.host, tc.at); err == nil {
			t.Errorf("verify as %s at %s succeeded, want a failure", tc.host, tc.at)
		}
	}
}

// TestNameConstraint: a CA made for the CDN domain refuses to issue for
// another, and clients enforce the constraint even on a certificate
// made with its key by other means.
func TestNameConstraint(t *testing.T) {
	ca, err := NewCA("ocdn test CA", "cdn.example.net", DefaultCAValidity, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.Issue(Request{Name: "evil", DNSNames: []string{"www.example.org"}}, time.Hour, now); err == nil || !strings.Contains(err.Error(), "beneath cdn.example.net") {
		t.Errorf("Issue outside the domain = %v", err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "evil"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), DNSNames: []string{"www.example.org"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	leaf, _ := x509.ParseCertificate(der)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "www.example.org", CurrentTime: now}); err == nil {
		t.Error("a certificate outside the CA's name constraint verified")
	}
}

func TestIssueRefusals(t *testing.T) {
	ca, err := NewCA("ocdn test CA", "", 30*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.Issue(Request{Name: "a1", DNSNames: []string{"x.example"}}, 60*24*time.Hour, now); err == nil || !strings.Contains(err.Error(), "outlive the CA") {
		t.Errorf("Issue outliving the CA = %v", err)
	}
	if _, _, err := ca.Issue(Request{Name: "a1"}, time.Hour, now); err == nil || !strings.Contains(err.Error(), "no DNS name") {
		t.Errorf("Issue without names = %v", err)
	}
	if _, _, err := ca.Issue(Request{Name: "a1", DNSNames: []string{"x.example"}}, time.Hour, now.Add(40*24*time.Hour)); err == nil || !strings.Contains(err.Error(), "not valid") {
		t.Errorf("Issue with an expired CA = %v", err)
	}
	if _, err := ApplianceRequests(testControl(t), []string{"zz"}); err == nil || !strings.Contains(err.Error(), `"zz"`) {
		t.Errorf("ApplianceRequests for an unknown id = %v", err)
	}
	c := testControl(t)
	c.DNS = nil
	if _, err := ApplianceRequests(c, nil); err == nil || !strings.Contains(err.Error(), "dns section") {
		t.Errorf("ApplianceRequests without dns = %v", err)
	}
}

func TestControlRequest(t *testing.T) {
	r, err := ControlRequest(testControl(t), []string{"Control.cdn.example.net"}, []netip.Addr{netip.MustParseAddr("10.0.0.10")})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.DNSNames) != 1 || r.DNSNames[0] != "control.cdn.example.net" || len(r.IPs) != 2 || r.IPs[0] != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("ControlRequest = %+v, want control.cdn.example.net, 127.0.0.1 (not the wildcard 0.0.0.0) and 10.0.0.10", r)
	}
}

func TestWriteAndLoadCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("ocdn test CA", "", DefaultCAValidity, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteCA(dir, ca); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, CAKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ca.key mode = %v, %v; want 0600", fi.Mode(), err)
	}
	if err := WriteCA(dir, ca); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("WriteCA over an existing CA = %v", err)
	}
	got, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cert.Equal(ca.Cert) || !got.Key.Equal(ca.Key) {
		t.Error("LoadCA does not give back the CA written")
	}
	other, _ := NewCA("other", "", DefaultCAValidity, now)
	other.Cert = ca.Cert // a key that is not the certificate's
	dir2 := t.TempDir()
	if err := WriteCA(dir2, other); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(dir2); err == nil || !strings.Contains(err.Error(), "not the private key") {
		t.Errorf("LoadCA with a mismatched key = %v", err)
	}
}
