package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pkiControl is the control plane config the pki package's tests use.
const pkiControl = "../pki/testdata/control.yaml"

// TestPKICommands: ocdn pki makes a CA and certificates that OpenSSL, an
// independent verifier, accepts for the appliances' names and addresses
// (and the CA's name constraint), and refuses for other names.
func TestPKICommands(t *testing.T) {
	openssl := requireExternal(t, "openssl", "openssl")
	dir := t.TempDir()
	cfg := pkiControl
	caDir, certs := filepath.Join(dir, "pki"), filepath.Join(dir, "certs")
	if out, errOut, err := runCLI(t, "pki", "ca", "--out", caDir, "--domain", "cdn.example.net"); err != nil || !strings.Contains(out, "ca.pem") {
		t.Fatalf("pki ca = %q, %v\n%s", out, err, errOut)
	}
	if _, _, err := runCLI(t, "pki", "ca", "--out", caDir); err == nil || !strings.Contains(err.Error(), "never replaced") {
		t.Errorf("pki ca over an existing CA = %v", err)
	}
	out, errOut, err := runCLI(t, "pki", "issue", "--config", cfg, "--ca", caDir, "--out", certs, "--validity", "90d")
	if err != nil {
		t.Fatalf("pki issue = %v\n%s", err, errOut)
	}
	if n := strings.Count(out, "wrote "); n != 3 {
		t.Errorf("pki issue wrote %d certificates, want a1, b2 and control:\n%s", n, out)
	}
	for _, tc := range []struct {
		cert, host, ip string
		ok             bool
	}{
		{"a1", "ipv4-a1-ams.cdn.example.net", "", true},
		{"a1", "ipv6-a1-ams.cdn.example.net", "", true},
		{"a1", "p-abcdefgh2345.ipv6-a1-ams.cdn.example.net", "", true},
		{"a1", "", "2001:db8::1", true},
		{"b2", "ipv4-b2-ams.cdn.example.net", "", true},
		{"b2", "ipv4-a1-ams.cdn.example.net", "", false},
		{"control", "", "127.0.0.1", true},
	} {
		args := []string{"verify", "-CAfile", filepath.Join(caDir, "ca.pem"), "-purpose", "sslserver"}
		if tc.host != "" {
			args = append(args, "-verify_hostname", tc.host)
		} else {
			args = append(args, "-verify_ip", tc.ip)
		}
		b, err := exec.Command(openssl, append(args, filepath.Join(certs, tc.cert+".pem"))...).CombinedOutput()
		if (err == nil) != tc.ok {
			t.Errorf("openssl verify %s as %s%s: %v, want ok %v\n%s", tc.cert, tc.host, tc.ip, err, tc.ok, b)
		}
	}
	if fi, err := os.Stat(filepath.Join(certs, "a1.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("a1.key: %v, %v; want mode 0600", fi, err)
	}
	// Renewing one appliance touches only its files.
	before, _ := os.ReadFile(filepath.Join(certs, "b2.pem"))
	if out, _, err := runCLI(t, "pki", "issue", "--config", cfg, "--ca", caDir, "--out", certs, "--appliance", "a1"); err != nil || strings.Count(out, "wrote ") != 1 {
		t.Fatalf("pki issue --appliance a1 = %q, %v", out, err)
	}
	if after, _ := os.ReadFile(filepath.Join(certs, "b2.pem")); string(after) != string(before) {
		t.Error("issuing for a1 changed b2's certificate")
	}
	if _, _, err := runCLI(t, "pki", "issue", "--config", cfg, "--ca", caDir, "--out", certs, "--appliance", "zz"); err == nil || !strings.Contains(err.Error(), `"zz"`) {
		t.Errorf("pki issue for an unknown appliance = %v", err)
	}
	if _, _, err := runCLI(t, "pki", "issue", "--config", cfg, "--ca", caDir, "--out", certs, "--validity", "5y"); err == nil || !strings.Contains(err.Error(), "--validity") {
		t.Errorf("pki issue --validity 5y = %v", err)
	}
}
