package dns_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/dns"
	"github.com/ocdn/ocdn/internal/dns/dnstest"
	"github.com/ocdn/ocdn/internal/dnsname"
)

// TestThroughUnbound: a real recursive resolver (Unbound, with its
// client-subnet module) resolves appliance and probe names through the
// server. The probe log names the resolver, not the client, and carries
// the client's /24 the resolver passed on; a second query for the same
// probe name is answered from the resolver's cache and never reaches the
// server, which is why every probe needs its own name.
func TestThroughUnbound(t *testing.T) {
	z, err := dns.NewZone(dns.ZoneConfig{Domain: "cdn.example.net", Serial: 1, DefaultNSAddrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		Appliances: []config.ApplianceName{
			{Name: "ipv4-a1-ams.cdn.example.net", Family: dnsname.IPv4, Appliance: "a1", Site: "ams", Addr: netip.MustParseAddr("192.0.2.1")},
			{Name: "ipv6-a1-ams.cdn.example.net", Family: dnsname.IPv6, Appliance: "a1", Site: "ams", Addr: netip.MustParseAddr("2001:db8::1")},
		}})
	if err != nil {
		t.Fatal(err)
	}
	s := dnstest.Serve(t, dns.Config{Zone: z, Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}})
	u := dnstest.Start(t, dnstest.UnboundConfig{Zone: "cdn.example.net", Auth: s.Addrs()[0], ECS: true})

	// A client inside an ISP's prefix asks its resolver.
	client := &mdns.Client{Net: "udp", Timeout: 10 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP("127.64.3.9")}}}
	ask := func(name string, qtype uint16) *mdns.Msg {
		t.Helper()
		m := new(mdns.Msg)
		m.SetQuestion(name, qtype)
		r, _, err := client.Exchange(m, u.Addr.String())
		if err != nil {
			t.Fatalf("%s through unbound: %v\nunbound log:\n%s", name, err, u.Log())
		}
		return r
	}
	if r := ask("ipv6-a1-ams.cdn.example.net.", mdns.TypeAAAA); len(r.Answer) != 1 || r.Answer[0].(*mdns.AAAA).AAAA.String() != "2001:db8::1" {
		t.Errorf("AAAA through unbound = %v", r)
	}
	if r := ask("ipv4-zz-ams.cdn.example.net.", mdns.TypeA); r.Rcode != mdns.RcodeNameError {
		t.Errorf("an unknown appliance through unbound: %s, want NXDOMAIN", mdns.RcodeToString[r.Rcode])
	}
	nonce := dnsname.NewNonce()
	name, _ := dnsname.Probe(nonce, "ipv4-a1-ams.cdn.example.net")
	for range 2 {
		if r := ask(name+".", mdns.TypeA); len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != "192.0.2.1" {
			t.Fatalf("probe name through unbound = %v", r)
		}
	}
	got := s.Probes().Lookup(nonce)
	if len(got) != 1 {
		t.Fatalf("the server saw %d queries for the probe name, want 1 (the second from the resolver's cache): %+v", len(got), got)
	}
	if got[0].Resolver.Addr() == netip.MustParseAddr("127.64.3.9") {
		t.Errorf("probe log names the client %s; the server only sees the resolver", got[0].Resolver)
	}
	if want := netip.MustParsePrefix("127.64.3.0/24"); got[0].ECS != want {
		t.Errorf("probe log ECS = %v, want the client's %s passed on by the resolver\nunbound log:\n%s", got[0].ECS, want, u.Log())
	}
}
