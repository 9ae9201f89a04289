// Package pki provides ocdn's small certificate authority: a CA and the
// server certificates of appliances (for their per-family DNS names and
// addresses) and of the control plane, so that players, probes and the
// speed test verify HTTPS against one CA bundle instead of skipping
// verification. Keys are ECDSA P-256; files are PEM. `ocdn pki` is its
// command line (docs/dns.md).
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/dnsname"
)

// Validity defaults: a CA for ten years, since replacing it means
// reinstalling every client's bundle; server certificates for 397 days,
// the longest browsers accept, renewed by reissuing and SIGHUP.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultLeafValidity = 397 * 24 * time.Hour
)

// clockSkew backdates every certificate, so a client whose clock is a
// little behind still accepts a fresh one.
const clockSkew = time.Hour

// File names in a CA directory.
const (
	CACertFile = "ca.pem"
	CAKeyFile  = "ca.key"
)

// CA is a certificate authority that issues server certificates.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewCA makes a self-signed CA called name, valid from now for validity.
// With a domain, it may only certify names beneath it (a name
// constraint): a stolen CA key cannot impersonate anyone else's site.
func NewCA(name, domain string, validity time.Duration, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"ocdn"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// It signs server certificates only, never another CA.
		MaxPathLenZero: true,
	}
	if domain != "" {
		d, err := dnsname.Domain(domain)
		if err != nil {
			return nil, fmt.Errorf("domain: %w", err)
		}
		tmpl.PermittedDNSDomains = []string{d}
		tmpl.PermittedDNSDomainsCritical = true
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// newSerial is a random 128-bit serial number (RFC 5280 allows 20 bytes;
// CA/B asks for 64 random bits at least).
func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

// Request is a server certificate to issue.
type Request struct {
	// Name is what the certificate is for (an appliance id, "control"):
	// its subject's common name and the base of its file names.
	Name     string
	DNSNames []string
	IPs      []netip.Addr
}

// Issue signs a server certificate for r, valid from now for validity,
// and returns it and its new private key as PEM.
func (ca *CA) Issue(r Request, validity time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	if len(r.DNSNames) == 0 && len(r.IPs) == 0 {
		return nil, nil, fmt.Errorf("%s: no DNS name or IP address to certify", r.Name)
	}
	if now.Before(ca.Cert.NotBefore) || now.After(ca.Cert.NotAfter) {
		return nil, nil, fmt.Errorf("the CA is not valid at %s (valid %s to %s)", now.Format(time.RFC3339), ca.Cert.NotBefore.Format(time.RFC3339), ca.Cert.NotAfter.Format(time.RFC3339))
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		return nil, nil, fmt.Errorf("%s: a certificate valid until %s would outlive the CA (valid until %s): shorten the validity or make a new CA",
			r.Name, notAfter.Format(time.DateOnly), ca.Cert.NotAfter.Format(time.DateOnly))
	}
	for _, n := range r.DNSNames {
		if !ca.permits(n) {
			return nil, nil, fmt.Errorf("%s: the CA may only certify names beneath %s, not %s", r.Name, strings.Join(ca.Cert.PermittedDNSDomains, ", "), n)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: r.Name, Organization: []string{"ocdn"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     r.DNSNames,
	}
	for _, ip := range r.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", r.Name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

func (ca *CA) permits(name string) bool {
	if len(ca.Cert.PermittedDNSDomains) == 0 {
		return true
	}
	name = strings.TrimPrefix(strings.ToLower(name), "*.")
	for _, d := range ca.Cert.PermittedDNSDomains {
		if dnsname.InZone(name, d) {
			return true
		}
	}
	return false
}

// CertPEM is the CA's certificate: the bundle clients verify against.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// WriteCA writes ca.pem and ca.key (readable by the owner only) into
// dir. It never replaces an existing CA: every certificate it issued and
// every client bundle holding it would be orphaned.
func WriteCA(dir string, ca *CA) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range []string{CACertFile, CAKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return fmt.Errorf("%s already exists: a CA is never replaced in place (move it away first)", filepath.Join(dir, f))
		}
	}
	if err := writeFile(filepath.Join(dir, CAKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600, false); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, CACertFile), ca.CertPEM(), 0o644, false)
}

// LoadCA reads ca.pem and ca.key from dir.
func LoadCA(dir string) (*CA, error) {
	cb, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, err
	}
	kb, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, err
	}
	cert, err := parseCert(cb)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, CACertFile), err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", filepath.Join(dir, CACertFile))
	}
	blk, _ := pem.Decode(kb)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: no PEM private key", filepath.Join(dir, CAKeyFile))
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, CAKeyFile), err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%s is not the private key of %s", filepath.Join(dir, CAKeyFile), filepath.Join(dir, CACertFile))
	}
	return &CA{Cert: cert, Key: key}, nil
}

func parseCert(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// WriteCert writes name.pem and name.key into dir, each replaced
// atomically: a daemon reloading on SIGHUP reads an old or a new file,
// never half of one (a new certificate beside the old key fails the
// reload, which keeps the old pair, and the next SIGHUP picks up both).
func WriteCert(dir, name string, certPEM, keyPEM []byte) (certFile, keyFile string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if err := writeFile(keyFile, keyPEM, 0o600, true); err != nil {
		return "", "", err
	}
	return certFile, keyFile, writeFile(certFile, certPEM, 0o644, true)
}

// writeFile writes path atomically and durably: a temporary file beside
// it with its final mode, synced, then renamed over path (replace) or
// linked to it (never replacing: an existing path is an error), and the
// directory synced.
func writeFile(path string, b []byte, perm os.FileMode, replace bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if replace {
		err = os.Rename(tmp, path)
	} else if err = os.Link(tmp, path); errors.Is(err, os.ErrExist) {
		err = fmt.Errorf("%s already exists", path)
	}
	if err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ApplianceRequests are the certificates of the appliances in cfg's
// inventory (all, or those in ids): each covers the appliance's DNS
// names, the wildcard beneath each (its probe names, p-<nonce>.<name>),
// and its addresses, so URLs with IP literals keep verifying too.
func ApplianceRequests(cfg *config.Control, ids []string) ([]Request, error) {
	if cfg.DNS == nil {
		return nil, errors.New("the control plane's config has no dns section: appliance names are made under dns.domain")
	}
	names, err := cfg.DNS.Names(cfg.Inventory)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if !slices.ContainsFunc(cfg.Appliances, func(a config.Appliance) bool { return a.ID == id }) {
			return nil, fmt.Errorf("appliance %q is not in the inventory", id)
		}
	}
	var out []Request
	for _, a := range cfg.Appliances {
		if len(ids) > 0 && !slices.Contains(ids, a.ID) {
			continue
		}
		r := Request{Name: a.ID}
		for _, n := range names {
			if n.Appliance == a.ID {
				r.DNSNames = append(r.DNSNames, n.Name, "*."+n.Name)
			}
		}
		if ap, ok := a.IPv4(); ok {
			r.IPs = append(r.IPs, ap.Addr())
		}
		if ap, ok := a.IPv6(); ok {
			r.IPs = append(r.IPs, ap.Addr())
		}
		out = append(out, r)
	}
	return out, nil
}

// ControlRequest is the control plane's certificate: names given by the
// operator, its specific listen addresses and ips.
func ControlRequest(cfg *config.Control, names []string, ips []netip.Addr) (Request, error) {
	r := Request{Name: "control"}
	for _, n := range names {
		h, err := dnsname.Hostname(n)
		if err != nil {
			return r, fmt.Errorf("control name %w", err)
		}
		r.DNSNames = append(r.DNSNames, h)
	}
	for _, l := range cfg.Listen {
		if a := l.Addr().Unmap(); !a.IsUnspecified() && !slices.Contains(r.IPs, a) {
			r.IPs = append(r.IPs, a)
		}
	}
	for _, a := range ips {
		if !slices.Contains(r.IPs, a.Unmap()) {
			r.IPs = append(r.IPs, a.Unmap())
		}
	}
	if len(r.DNSNames) == 0 && len(r.IPs) == 0 {
		return r, errors.New("the control plane listens on wildcard addresses only: give its names or addresses")
	}
	return r, nil
}
