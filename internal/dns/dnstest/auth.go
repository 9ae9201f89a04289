package dnstest

import (
	"context"
	"net/netip"
	"testing"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/dns"
)

// Serve listens with cfg and runs the authoritative server until the
// test ends; a Run that fails is a test error. It is the one way tests
// start ocdn's server, so each one stops it the same way.
func Serve(t testing.TB, cfg dns.Config) *dns.Server {
	t.Helper()
	s, err := dns.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("authoritative server: %v", err)
		}
	})
	return s
}

// AuthServer runs ocdn's authoritative server for domain with the given
// appliance names on 127.0.0.1 until the test ends: for a test that also
// reads the server's probe log.
func AuthServer(t testing.TB, domain string, names ...config.ApplianceName) *dns.Server {
	t.Helper()
	z, err := dns.NewZone(dns.ZoneConfig{Domain: domain, Serial: 1, Appliances: names,
		Nameservers: []config.Nameserver{{Name: "ns.other.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	return Serve(t, dns.Config{Zone: z, Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}})
}

// StartAuth is AuthServer's address: where a client test resolves
// through.
func StartAuth(t testing.TB, domain string, names ...config.ApplianceName) netip.AddrPort {
	t.Helper()
	return AuthServer(t, domain, names...).Addrs()[0]
}
