package dns

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// fuzzResponder is a responder over the test zone, without sockets.
func fuzzResponder(tb testing.TB) *responder {
	z, err := NewZone(ZoneFixture())
	if err != nil {
		tb.Fatal(err)
	}
	s, err := Listen(Config{Zone: z, Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}, Registry: prometheus.NewRegistry(), ProbeLogSize: 16})
	if err != nil {
		tb.Fatal(err)
	}
	s.Close() // only the responder is used
	return newResponder(s)
}

func fuzzSeeds() [][]byte {
	var seeds [][]byte
	add := func(m *mdns.Msg) {
		b, err := m.Pack()
		if err != nil {
			panic(err)
		}
		seeds = append(seeds, b)
	}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"ipv4-a1-ams.cdn.example.net.", mdns.TypeA}, {"ipv6-a1-ams.cdn.example.net.", mdns.TypeAAAA},
		{"cdn.example.net.", mdns.TypeNS}, {"cdn.example.net.", mdns.TypeSOA}, {"x.cdn.example.net.", mdns.TypeMX},
		{"p-abcdefgh23.ipv4-b2-ams.cdn.example.net.", mdns.TypeA}, {"example.org.", mdns.TypeA},
	} {
		add(Query(q.name, q.qtype))
		m := Query(q.name, q.qtype)
		m.SetEdns0(4096, true)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &mdns.EDNS0_SUBNET{Code: mdns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(198, 51, 100, 0).To4()},
			&mdns.EDNS0_COOKIE{Code: mdns.EDNS0COOKIE, Cookie: "0102030405060708"})
		add(m)
	}
	seeds = append(seeds, nil, []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1})
	return seeds
}

// FuzzRespond: any bytes get no reply or a well-formed one: a DNS
// response with the query's id, within the transport's size limit; and
// the responder never panics.
func FuzzRespond(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s, false)
	}
	r := fuzzResponder(f)
	from := netip.MustParseAddrPort("127.0.0.1:5353")
	f.Fuzz(func(t *testing.T, q []byte, overTCP bool) {
		tr := udp
		if overTCP {
			tr = tcp
		}
		out := r.respond(q, tr, from)
		if out == nil {
			if len(q) >= 12 && q[2]&0x80 == 0 {
				t.Fatalf("no reply to a query with a header: %x", q)
			}
			return
		}
		var m mdns.Msg
		if err := m.Unpack(out); err != nil {
			t.Fatalf("reply %x to %x does not parse: %v", out, q, err)
		}
		if !m.Response || m.Id != binary.BigEndian.Uint16(q) {
			t.Fatalf("reply id %#x (QR %v) to query id %#x", m.Id, m.Response, binary.BigEndian.Uint16(q))
		}
		limit := maxMsg
		if tr == udp {
			limit = MaxUDPSize
			if m.IsEdns0() == nil {
				limit = mdns.MinMsgSize
			}
		}
		if len(out) > limit {
			t.Fatalf("reply of %d bytes over %s, limit %d", len(out), tr, limit)
		}
	})
}

// BenchmarkRespond is the per-query cost without sockets: one A query
// with EDNS, the common case.
func BenchmarkRespond(b *testing.B) {
	r := fuzzResponder(b)
	m := Query("ipv4-a1-ams.cdn.example.net.", mdns.TypeA)
	m.SetEdns0(1232, false)
	q, _ := m.Pack()
	from := netip.MustParseAddrPort("127.0.0.1:5353")
	b.ReportAllocs()
	for b.Loop() {
		if r.respond(q, udp, from) == nil {
			b.Fatal("no reply")
		}
	}
}
