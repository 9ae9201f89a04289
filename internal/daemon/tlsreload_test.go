package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/pki"
	"github.com/ocdn/ocdn/internal/syncbuf"
)

// TestSIGHUPSwapsCertificateKeepingConnections: an appliance serving
// certificates made by ocdn's CA loads a reissued certificate on SIGHUP.
// A connection opened before keeps working with the certificate it was
// made with; new connections get the new one, verified against the CA for
// the appliance's name; an unreadable certificate is refused and the
// current one kept.
func TestSIGHUPSwapsCertificateKeepingConnections(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := pki.NewCA("test CA", "cdn.example.net", 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	const name = "ipv4-a1-ams.cdn.example.net"
	req := pki.Request{Name: "a1", DNSNames: []string{name, "*." + name}, IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}
	issue := func() *big.Int {
		t.Helper()
		c, k, err := ca.Issue(req, time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := pki.WriteCert(dir, "a1", c, k); err != nil {
			t.Fatal(err)
		}
		pair, _ := tls.X509KeyPair(c, k)
		return pair.Leaf.SerialNumber
	}
	first := issue()
	writeKeys(t, dir)
	cfg := loadAppliance(t, dir, "standalone: true\nlisten: 127.0.0.1:1\nstore: store\nkey_file: keys.json\naccess_log: \"off\"\ndrain_grace: 1ms\ndrain_timeout: 1s\ntls: {cert_file: a1.pem, key_file: a1.key}\n")
	logs := &syncbuf.Buffer{}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // the config's port is a placeholder: the test picks a free one
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() }) // after the daemon serving it has stopped
	// SIGHUP must not end the test binary if it arrives before the
	// daemon's handler is installed: take it here too, until the daemon
	// has stopped.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	t.Cleanup(func() { signal.Stop(hup) })
	d := runAppliance(t, cfg, Hooks{Logger: slog.New(slog.NewTextHandler(logs, nil)), Listeners: []net.Listener{ln}})
	addr := strings.TrimPrefix(d.URLs()[0], "https://")

	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	tlsConf := &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12}
	// One kept-alive connection, opened before the reload.
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf, MaxConnsPerHost: 1}, Timeout: 10 * time.Second}
	defer old.CloseIdleConnections()
	get := func() (serial *big.Int, local string, reused bool) {
		t.Helper()
		var info httptrace.GotConnInfo
		r, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/healthz", nil)
		r = r.WithContext(httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { info = i }}))
		resp, err := old.Do(r)
		if err != nil {
			t.Fatalf("request on the kept-alive connection: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber, info.Conn.LocalAddr().String(), info.Reused
	}
	// newConn is the serial a fresh, verified connection sees.
	newConn := func() *big.Int {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, tlsConf)
		if err != nil {
			t.Fatalf("new connection: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber
	}
	s1, local, _ := get()
	if s1.Cmp(first) != 0 {
		t.Fatalf("served serial %v, want the first certificate's %v", s1, first)
	}
	second := issue()
	hupUntil(t, func() bool { return newConn().Cmp(second) == 0 }, "new connections get the reissued certificate")
	s, l, reused := get()
	if !reused || l != local || s.Cmp(first) != 0 {
		t.Errorf("after SIGHUP the old connection: reused %v, local %s (was %s), serial %v; want the same connection still on %v", reused, l, local, s, first)
	}
	// An unreadable certificate is refused; the current one stays.
	os.WriteFile(filepath.Join(dir, "a1.pem"), []byte("not a certificate"), 0o644)
	hupUntil(t, func() bool { return strings.Contains(logs.String(), "reload failed") }, "the daemon reports the failed reload")
	if got := newConn(); got.Cmp(second) != 0 {
		t.Errorf("after a failed reload new connections get serial %v, want the current %v", got, second)
	}
}

// hupUntil sends this process SIGHUP until cond holds: the daemon's
// handler may not be installed when the first one arrives.
func hupUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s of SIGHUPs", what)
		}
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
		time.Sleep(20 * time.Millisecond)
	}
}
