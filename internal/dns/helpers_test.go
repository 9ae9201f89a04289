package dns_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/dns"
	"github.com/ocdn/ocdn/internal/dns/dnstest"
)

// startServer runs a server for zc on 127.0.0.1, with tweak applied to
// its config, until the test ends.
func startServer(t *testing.T, zc dns.ZoneConfig, tweak func(*dns.Config)) (*dns.Server, *prometheus.Registry) {
	t.Helper()
	z, err := dns.NewZone(zc)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := dns.Config{Zone: z, Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}, Registry: reg}
	if tweak != nil {
		tweak(&cfg)
	}
	return dnstest.Serve(t, cfg), reg
}

// exchange sends m to the server over network ("udp" or "tcp").
func exchange(t *testing.T, s *dns.Server, network string, m *mdns.Msg) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: network, Timeout: 10 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, s.Addrs()[0].String())
	if err != nil {
		t.Fatalf("exchange %v over %s: %v", m.Question, network, err)
	}
	if r.Id != m.Id {
		t.Fatalf("reply id %d, want %d", r.Id, m.Id)
	}
	return r
}

// exchangeSize is exchange that also returns the reply's size on the wire.
func exchangeSize(t *testing.T, s *dns.Server, network string, m *mdns.Msg) (*mdns.Msg, int) {
	t.Helper()
	c, err := net.Dial(network, s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	co := &mdns.Conn{Conn: c, UDPSize: 65535}
	if err := co.WriteMsg(m); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var h mdns.Header
	raw, err := co.ReadMsgHeader(&h)
	if err != nil {
		t.Fatal(err)
	}
	var r mdns.Msg
	if err := r.Unpack(raw); err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	return &r, len(raw)
}

// rawExchange writes b to the server over UDP and returns the reply, or
// nil when there is none. The server must have one UDP worker: a marker
// query sent behind b is then answered after it, so "no reply" is known
// when the marker's reply arrives, without waiting on a timer.
func rawExchange(t *testing.T, s *dns.Server, b []byte) []byte {
	t.Helper()
	if dns.UDPWorkers(s) != 1 {
		t.Fatal("rawExchange needs a server with one UDP worker")
	}
	c, err := net.Dial("udp", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	marker := dns.Query("ipv4-a1-ams.cdn.example.net.", mdns.TypeA)
	mb, _ := marker.Pack()
	for _, p := range [][]byte{b, mb} {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	buf := make([]byte, 65536)
	for {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no reply to the marker query behind %x: %v", b, err)
		}
		var m mdns.Msg
		if m.Unpack(buf[:n]) == nil && m.Id == marker.Id && len(m.Question) == 1 && m.Question[0] == marker.Question[0] && len(m.Answer) == 1 {
			return got
		}
		got = append([]byte(nil), buf[:n]...)
	}
}

// counterValue is the value of the counter name with exactly labels
// (nil: no labels), 0 when absent.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
