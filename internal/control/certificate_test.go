package control

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/pki"
	"github.com/ocdn/ocdn/internal/urlsign"
)

const certDomain = "cdn.example.net"

// tlsAppliances runs a control plane with a DNS domain and appliances
// serving HTTPS with the certificates certFor gives (swappable while
// running through the returned pointers).
func tlsAppliances(t *testing.T, interval time.Duration, ca *pki.CA, reg *prometheus.Registry, certFor map[string]*tls.Certificate) (*liveSetup, map[string]*atomic.Pointer[tls.Certificate]) {
	t.Helper()
	cat, err := content.Synth(content.SynthSpec{Titles: 2, LadderKbps: []int{100}, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ls := &liveSetup{lns: map[string]net.Listener{}, interval: interval}
	inv := config.Inventory{
		ISPs:  []config.ISP{{Name: "isp", ASN: 64500, Prefixes: []config.Prefix{{Prefix: netip.MustParsePrefix("10.64.0.0/16")}}}},
		Sites: []config.Site{{ID: "ix", Kind: config.SiteIXP}},
	}
	cur := map[string]*atomic.Pointer[tls.Certificate]{}
	i := 0
	for id, c := range certFor {
		i++
		p := new(atomic.Pointer[tls.Certificate])
		p.Store(c)
		cur[id] = p
		ln, err := net.Listen("tcp", fmt.Sprintf("127.1.9.%d:0", 100+i))
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) }),
			TLSConfig: &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return p.Load(), nil }},
		}
		go hs.ServeTLS(ln, "", "")
		t.Cleanup(func() { hs.Close() })
		ls.lns[id] = ln
		inv.Appliances = append(inv.Appliances, config.Appliance{ID: id, Site: "ix", TLS: true,
			Address: config.AddrPort{AddrPort: netip.MustParseAddrPort(ln.Addr().String())}, Capacity: 1 << 30})
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	ls.start(t, Config{Inventory: inv, Catalog: cat, OriginURL: "http://origin", Keys: urlsign.Generate(),
		AdminToken: "sekret", HeartbeatInterval: interval, ActivePoll: true, Domain: certDomain, ApplianceRoots: roots, Registry: reg})
	return ls, cur
}

func issue(t *testing.T, ca *pki.CA, names []string, validity time.Duration, now time.Time) *tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(pki.Request{Name: names[0], DNSNames: names}, validity, now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

// An appliance whose certificate clients would refuse — another name,
// expired, unreadable — is kept out of steering with a reason naming the
// fault, in the status, the metrics and the snapshot; a good certificate
// puts it back. Steering hands out https:// URLs with names.
func TestCertificateFaultsKeepAppliancesOutOfSteering(t *testing.T) {
	const interval = time.Second
	now := time.Now()
	ca, err := pki.NewCA("test CA", certDomain, 365*24*time.Hour, now.Add(-30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	name := func(id string) string { return "ipv4-" + id + "-ix." + certDomain }
	good := issue(t, ca, []string{name("good")}, 24*time.Hour, now)
	wrong := issue(t, ca, []string{name("other")}, 24*time.Hour, now)
	// Issued ten days ago for a day (the CA backdates an hour).
	expired := issue(t, ca, []string{name("expired")}, 24*time.Hour, now.Add(-10*24*time.Hour))
	garbled := *issue(t, ca, []string{name("garbled")}, 24*time.Hour, now)
	garbled.Certificate = [][]byte{[]byte("not a DER certificate")}
	garbled.Leaf = nil

	reg := prometheus.NewRegistry()
	ls, cur := tlsAppliances(t, interval, ca, reg, map[string]*tls.Certificate{"good": good, "wrong": wrong, "expired": expired, "garbled": &garbled})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	ids := []string{"good", "wrong", "expired", "garbled"}
	for _, id := range ids {
		ls.heartbeatLoop(t, id, func() api.Heartbeat { return api.Heartbeat{} }, stop, &wg)
	}
	want := map[string]struct{ label, reason string }{
		"wrong":   {faultNameMismatch, "probe: certificate does not match " + name("wrong")},
		"expired": {faultExpired, "probe: certificate expired"},
		"garbled": {faultUnreadable, "probe: certificate unreadable"},
	}
	// The steering snapshot is rebuilt just after the status changes:
	// wait for both.
	waitFor(t, 20*interval, "good serving and the others refused", func() bool {
		snap := ls.s.snap.Load()
		if !ls.status("good").Serving || !snap.Appliances["good"].Serving {
			return false
		}
		for id := range want {
			if st := ls.status(id); st.Serving || st.Reason == "" || !strings.HasPrefix(st.Reason, "probe: certificate") || snap.Appliances[id].Serving {
				return false
			}
		}
		return true
	})
	snap := ls.s.snap.Load()
	if got, wantURL := snap.Appliances["good"].BaseURL, "https://"+name("good")+":"+portOf(ls.lns["good"]); got != wantURL {
		t.Errorf("good's steering base URL = %q, want %q", got, wantURL)
	}
	for id, w := range want {
		st := ls.status(id)
		if st.State != "down" || !strings.HasPrefix(st.Reason, w.reason) {
			t.Errorf("%s = state %s reason %q, want down with reason starting %q", id, st.State, st.Reason, w.reason)
		}
		if snap.Appliances[id].Serving {
			t.Errorf("%s is serving in the steering snapshot", id)
		}
		if v := faultGauge(t, reg, id, w.label); v != 1 {
			t.Errorf("ocdn_control_appliance_certificate_faults{appliance=%q,fault=%q} = %g, want 1", id, w.label, v)
		}
	}
	// Renewed: the right certificate brings it back and clears the metric.
	cur["wrong"].Store(issue(t, ca, []string{name("wrong")}, 24*time.Hour, now))
	waitFor(t, 20*interval, "wrong serving after renewal", func() bool { return ls.status("wrong").Serving })
	if v := faultGauge(t, reg, "wrong", faultNameMismatch); v != 0 {
		t.Errorf("wrong's name_mismatch fault = %g after the renewal, want no series", v)
	}
	if v := faultGauge(t, reg, "expired", faultExpired); v != 1 {
		t.Errorf("expired's fault = %g after another's renewal, want 1", v)
	}
}

func portOf(ln net.Listener) string {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

// faultGauge is ocdn_control_appliance_certificate_faults{appliance, fault}
// from reg, 0 when there is no such series.
func faultGauge(t *testing.T, reg *prometheus.Registry, id, fault string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "ocdn_control_appliance_certificate_faults" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["appliance"] == id && labels["fault"] == fault {
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}
