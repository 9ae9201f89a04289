package dnstest

import (
	"context"
	"net/netip"
	"testing"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/dns"
)

// StartAuth runs ocdn's authoritative server for domain with the given
// appliance names on 127.0.0.1 until the test ends, and returns where it
// answers: what a client test resolves through.
func StartAuth(t testing.TB, domain string, names ...config.ApplianceName) netip.AddrPort {
	t.Helper()
	z, err := dns.NewZone(dns.ZoneConfig{Domain: domain, Serial: 1, Appliances: names,
		Nameservers: []config.Nameserver{{Name: "ns.other.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := dns.Listen(dns.Config{Zone: z, Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}})
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
	return s.Addrs()[0]
}
