package probe

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/ocdn/ocdn/internal/clientnet"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/dns"
	"github.com/ocdn/ocdn/internal/dns/dnstest"
	"github.com/ocdn/ocdn/internal/dnsname"
	"github.com/ocdn/ocdn/internal/measure"
)

// serveBoth serves h on 127.0.0.1 and [::1] at one port, as a dual-stack
// appliance does, and returns the port.
func serveBoth(t *testing.T, h http.Handler) int {
	t.Helper()
	ln4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln4.Addr().(*net.TCPAddr).Port
	ln6, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(port)))
	if err != nil {
		ln4.Close()
		t.Fatalf("listen on [::1]:%d: %v (IPv6 loopback is needed)", port, err)
	}
	for _, ln := range []net.Listener{ln4, ln6} {
		srv := &http.Server{Handler: h}
		done := make(chan struct{})
		go func() { defer close(done); srv.Serve(ln) }()
		t.Cleanup(func() { srv.Close(); <-done })
	}
	return port
}

// authoritative starts ocdn's DNS server for cdn.test with appliance a at
// site s on 127.0.0.1 and ::1, and returns it with a resolver that asks
// it (the client's configured resolver).
func authoritative(t *testing.T) (*dns.Server, *net.Resolver) {
	t.Helper()
	s := dnstest.AuthServer(t, "cdn.test",
		config.ApplianceName{Name: "ipv4-a-s.cdn.test", Family: dnsname.IPv4, Appliance: "a", Site: "s", Addr: netip.MustParseAddr("127.0.0.1")},
		config.ApplianceName{Name: "ipv6-a-s.cdn.test", Family: dnsname.IPv6, Appliance: "a", Site: "s", Addr: netip.MustParseAddr("::1")})
	// The resolver clients are configured with (clientnet's, as the
	// probe command builds it).
	d, err := clientnet.New(clientnet.Config{Resolver: s.Addrs()[0]})
	if err != nil {
		t.Fatal(err)
	}
	return s, d.Resolver()
}

// TestDNSPulsePerFamily: a dns pulse resolves a fresh probe name through
// the configured resolver, then fetches from the address it got over that
// family; the authoritative server's log has the nonce, which is how the
// control plane learns which resolver asked.
func TestDNSPulsePerFamily(t *testing.T) {
	port := serveBoth(t, rangeHandler("f", 1<<16))
	srv, res := authoritative(t)
	base := func(fam string) string {
		return "http://" + fam + "-a-s.cdn.test:" + strconv.Itoa(port) + "/c/tok/t/f"
	}
	rec := &Recipe{ID: "r", Pulses: 2, Targets: []Target{
		{ID: "a/ipv4", Appliance: "a", Site: "s", URL: base("ipv4"), Types: []string{measure.TypeDNS, measure.TypeTCPConnect}},
		{ID: "a/ipv6", Appliance: "a", Site: "s", URL: base("ipv6"), Types: []string{measure.TypeDNS}},
		{ID: "lit", Appliance: "a", Site: "s", URL: "http://127.0.0.1:" + strconv.Itoa(port) + "/c/tok/t/f", Types: []string{measure.TypeDNS}},
	}}
	// The tcp_connect pulse dials the name itself; point it at loopback.
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, p, _ := net.SplitHostPort(addr)
		if strings.HasSuffix(host, ".cdn.test") {
			addr = net.JoinHostPort("127.0.0.1", p)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	rep, err := Run(context.Background(), rec, Options{Resolver: res, Dial: dial})
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Validate(rep.ClientTime); err != nil {
		t.Fatalf("report does not validate: %v", err)
	}
	nonces := map[string]bool{}
	for _, p := range rep.Pulses {
		switch {
		case p.Target == "lit":
			if p.Status != measure.StatusError || !strings.Contains(p.Error, "not a name") || p.Family != measure.FamilyIPv4 {
				t.Errorf("dns pulse of an IP-literal target: %+v, want an error saying there is no name", p)
			}
		case p.Type == measure.TypeDNS:
			want := strings.TrimPrefix(p.Target, "a/")
			if p.Status != measure.StatusOK || p.Family != want || p.DNSMs <= 0 || p.ConnectMs <= 0 || p.TTFBMs <= 0 || p.HTTPStatus != http.StatusPartialContent {
				t.Errorf("dns pulse %+v: want ok over %s with dns, connect and ttfb times", p, want)
			}
			if nonces[p.Nonce] {
				t.Errorf("nonce %s used twice", p.Nonce)
			}
			nonces[p.Nonce] = true
			qs := srv.Probes().Lookup(p.Nonce)
			wantType := map[string]string{"ipv4": "A", "ipv6": "AAAA"}[want]
			if len(qs) == 0 || qs[0].QType != wantType || qs[0].Appliance != "a" || qs[0].Resolver.Addr() != netip.MustParseAddr("127.0.0.1") {
				t.Errorf("probe log for nonce %s = %+v, want a %s query for appliance a from 127.0.0.1", p.Nonce, qs, wantType)
			}
		default:
			if p.Family != measure.FamilyIPv4 || p.Status != measure.StatusOK {
				t.Errorf("pulse %+v, want ok over ipv4", p)
			}
		}
	}
	if len(nonces) != 4 {
		t.Errorf("%d distinct nonces, want 4 (two pulses × two families)", len(nonces))
	}
}

func TestDNSPulseUnknownName(t *testing.T) {
	_, res := authoritative(t)
	rec := &Recipe{ID: "r", Pulses: 1, Targets: []Target{
		{ID: "x", Appliance: "x", URL: "http://ipv6-x-s.cdn.test:1/f", Types: []string{measure.TypeDNS}},
		{ID: "y", Appliance: "y", URL: "http://y.cdn.test:1/f", Types: []string{measure.TypeDNS}},
	}}
	rep, err := Run(context.Background(), rec, Options{Resolver: res})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Pulses {
		if p.Status != measure.StatusError {
			t.Errorf("pulse %+v succeeded", p)
		}
	}
	if p := rep.Pulses[0]; !strings.Contains(p.Error, "no such host") || p.Nonce == "" || p.DNSMs != 0 {
		t.Errorf("NXDOMAIN pulse %+v, want no such host, the nonce, no dns time", p)
	}
	if p := rep.Pulses[1]; !strings.Contains(p.Error, "family") {
		t.Errorf("pulse without a family %+v, want an error saying so", p)
	}
	bad := &Recipe{ID: "r", Pulses: 1, Targets: []Target{{ID: "x", URL: "http://x/", Types: []string{measure.TypeDNS}, Family: "ipx"}}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "targets[0].family") {
		t.Errorf("Validate with family ipx = %v", err)
	}
}
