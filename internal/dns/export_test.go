package dns

// Test fixtures of package dns exported to its external tests (package
// dns_test, in the same directory): those use dnstest, which imports
// this package, so they cannot be in it.

import (
	"net/netip"

	mdns "github.com/miekg/dns"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/dnsname"
)

const testDomain = "cdn.example.net"

// ZoneFixture is the zone the tests serve: a1 is dual-stack, b2 IPv4
// only, c3 IPv6 only; the zone has an in-zone name server two labels down
// (making dc.<domain> an empty non-terminal) and one outside.
func ZoneFixture() ZoneConfig {
	names := []config.ApplianceName{
		{Name: "ipv4-a1-ams.cdn.example.net", Family: dnsname.IPv4, Appliance: "a1", Site: "ams", Addr: netip.MustParseAddr("192.0.2.1")},
		{Name: "ipv6-a1-ams.cdn.example.net", Family: dnsname.IPv6, Appliance: "a1", Site: "ams", Addr: netip.MustParseAddr("2001:db8::1")},
		{Name: "ipv4-b2-ams.cdn.example.net", Family: dnsname.IPv4, Appliance: "b2", Site: "ams", Addr: netip.MustParseAddr("192.0.2.2")},
		{Name: "ipv6-c3-fra.cdn.example.net", Family: dnsname.IPv6, Appliance: "c3", Site: "fra", Addr: netip.MustParseAddr("2001:db8::3")},
	}
	return ZoneConfig{Domain: testDomain, Appliances: names, Serial: 7, Nameservers: []config.Nameserver{
		{Name: "ns1.dc.cdn.example.net", Addresses: []config.Addr{{Addr: netip.MustParseAddr("192.0.2.53")}, {Addr: netip.MustParseAddr("2001:db8::53")}}},
		{Name: "ns.other.example"},
	}}
}

// Query is a question for name of type qtype.
func Query(name string, qtype uint16) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// UDPWorkers is how many goroutines read s's UDP sockets.
func UDPWorkers(s *Server) int { return s.cfg.UDPWorkers }
