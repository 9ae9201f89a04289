package dns_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/dns"
	"github.com/ocdn/ocdn/internal/dnsname"
	"github.com/ocdn/ocdn/internal/metrictest"
)

// summary is a reply in one comparable line per section.
type summary struct {
	Rcode         string
	AA, TC        bool
	Answer, Ns    []string
	Extra         []string
	QuestionFirst string
}

func summarize(m *mdns.Msg) summary {
	s := summary{Rcode: mdns.RcodeToString[m.Rcode], AA: m.Authoritative, TC: m.Truncated}
	if len(m.Question) > 0 {
		s.QuestionFirst = m.Question[0].Name
	}
	line := func(rr mdns.RR) string { return strings.Join(strings.Fields(rr.String()), " ") }
	for _, rr := range m.Answer {
		s.Answer = append(s.Answer, line(rr))
	}
	for _, rr := range m.Ns {
		s.Ns = append(s.Ns, line(rr))
	}
	for _, rr := range m.Extra {
		if _, ok := rr.(*mdns.OPT); !ok {
			s.Extra = append(s.Extra, line(rr))
		}
	}
	return s
}

const negSOA = "cdn.example.net. 10 IN SOA ns1.dc.cdn.example.net. hostmaster.cdn.example.net. 7 3600 900 604800 10"

func TestAnswers(t *testing.T) {
	s, _ := startServer(t, dns.ZoneFixture(), nil)
	for _, tc := range []struct {
		name  string
		qname string
		qtype uint16
		class uint16
		want  summary
	}{
		{"A", "ipv4-a1-ams.cdn.example.net.", mdns.TypeA, 0, summary{Rcode: "NOERROR", AA: true, Answer: []string{"ipv4-a1-ams.cdn.example.net. 30 IN A 192.0.2.1"}}},
		{"AAAA", "ipv6-a1-ams.cdn.example.net.", mdns.TypeAAAA, 0, summary{Rcode: "NOERROR", AA: true, Answer: []string{"ipv6-a1-ams.cdn.example.net. 30 IN AAAA 2001:db8::1"}}},
		{"IPv6-only appliance", "ipv6-c3-fra.cdn.example.net.", mdns.TypeAAAA, 0, summary{Rcode: "NOERROR", AA: true, Answer: []string{"ipv6-c3-fra.cdn.example.net. 30 IN AAAA 2001:db8::3"}}},
		{"case is ignored and echoed", "IPv4-A1-Ams.CDN.example.net.", mdns.TypeA, 0, summary{Rcode: "NOERROR", AA: true, QuestionFirst: "IPv4-A1-Ams.CDN.example.net.", Answer: []string{"ipv4-a1-ams.cdn.example.net. 30 IN A 192.0.2.1"}}},
		{"AAAA of an IPv4 name is NODATA", "ipv4-a1-ams.cdn.example.net.", mdns.TypeAAAA, 0, summary{Rcode: "NOERROR", AA: true, Ns: []string{negSOA}}},
		{"MX is NODATA", "ipv4-b2-ams.cdn.example.net.", mdns.TypeMX, 0, summary{Rcode: "NOERROR", AA: true, Ns: []string{negSOA}}},
		{"an unknown type is NODATA", "ipv4-b2-ams.cdn.example.net.", 65280, 0, summary{Rcode: "NOERROR", AA: true, Ns: []string{negSOA}}},
		{"ANY gets one RRset", "ipv4-b2-ams.cdn.example.net.", mdns.TypeANY, 0, summary{Rcode: "NOERROR", AA: true, Answer: []string{"ipv4-b2-ams.cdn.example.net. 30 IN A 192.0.2.2"}}},
		{"unknown appliance id", "ipv4-zz-ams.cdn.example.net.", mdns.TypeA, 0, summary{Rcode: "NXDOMAIN", AA: true, Ns: []string{negSOA}}},
		{"a family the appliance lacks", "ipv6-b2-ams.cdn.example.net.", mdns.TypeAAAA, 0, summary{Rcode: "NXDOMAIN", AA: true, Ns: []string{negSOA}}},
		{"beneath an appliance, not a probe", "www.ipv4-a1-ams.cdn.example.net.", mdns.TypeA, 0, summary{Rcode: "NXDOMAIN", AA: true, Ns: []string{negSOA}}},
		{"a probe label under an unknown name", "p-abcdefgh12.ipv4-zz-ams.cdn.example.net.", mdns.TypeA, 0, summary{Rcode: "NXDOMAIN", AA: true, Ns: []string{negSOA}}},
		{"empty non-terminal is NODATA", "dc.cdn.example.net.", mdns.TypeA, 0, summary{Rcode: "NOERROR", AA: true, Ns: []string{negSOA}}},
		{"name server glue", "ns1.dc.cdn.example.net.", mdns.TypeAAAA, 0, summary{Rcode: "NOERROR", AA: true, Answer: []string{"ns1.dc.cdn.example.net. 3600 IN AAAA 2001:db8::53"}}},
		{"apex SOA", "cdn.example.net.", mdns.TypeSOA, 0, summary{Rcode: "NOERROR", AA: true, Answer: []string{"cdn.example.net. 3600 IN SOA ns1.dc.cdn.example.net. hostmaster.cdn.example.net. 7 3600 900 604800 10"}}},
		{"apex NS with glue", "cdn.example.net.", mdns.TypeNS, 0, summary{Rcode: "NOERROR", AA: true,
			Answer: []string{"cdn.example.net. 3600 IN NS ns1.dc.cdn.example.net.", "cdn.example.net. 3600 IN NS ns.other.example."},
			Extra:  []string{"ns1.dc.cdn.example.net. 3600 IN A 192.0.2.53", "ns1.dc.cdn.example.net. 3600 IN AAAA 2001:db8::53"}}},
		{"apex A is NODATA", "cdn.example.net.", mdns.TypeA, 0, summary{Rcode: "NOERROR", AA: true, Ns: []string{negSOA}}},
		{"outside the zone", "www.example.org.", mdns.TypeA, 0, summary{Rcode: "REFUSED"}},
		{"a suffix but not a subdomain", "xcdn.example.net.", mdns.TypeA, 0, summary{Rcode: "REFUSED"}},
		{"escaped dot", `ipv4-a1-ams\.cdn.example.net.`, mdns.TypeA, 0, summary{Rcode: "REFUSED"}},
		{"CHAOS class", "cdn.example.net.", mdns.TypeTXT, mdns.ClassCHAOS, summary{Rcode: "REFUSED"}},
		{"AXFR", "cdn.example.net.", mdns.TypeAXFR, 0, summary{Rcode: "REFUSED"}},
		{"type OPT", "cdn.example.net.", mdns.TypeOPT, 0, summary{Rcode: "FORMERR"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, network := range []string{"udp", "tcp"} {
				m := dns.Query(tc.qname, tc.qtype)
				if tc.class != 0 {
					m.Question[0].Qclass = tc.class
				}
				got := summarize(exchange(t, s, network, m))
				want := tc.want
				if want.QuestionFirst == "" {
					want.QuestionFirst = tc.qname
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s %s over %s (-want +got):\n%s", tc.qname, mdns.TypeToString[tc.qtype], network, diff)
				}
			}
		})
	}
}

func TestEDNS(t *testing.T) {
	s, _ := startServer(t, dns.ZoneFixture(), nil)
	m := dns.Query("ipv4-a1-ams.cdn.example.net.", mdns.TypeA)
	m.SetEdns0(4096, true)
	r := exchange(t, s, "udp", m)
	opt := r.IsEdns0()
	if opt == nil || opt.UDPSize() != dns.MaxUDPSize || !opt.Do() || opt.Version() != 0 || len(r.Answer) != 1 {
		t.Fatalf("reply to an EDNS query with DO = OPT %v, answer %v; want an OPT with size %d and DO, one answer", opt, r.Answer, dns.MaxUDPSize)
	}
	// No EDNS in, none out.
	if r := exchange(t, s, "udp", dns.Query("ipv4-a1-ams.cdn.example.net.", mdns.TypeA)); r.IsEdns0() != nil {
		t.Errorf("reply to a query without EDNS has an OPT record")
	}
	// Version 1 is BADVERS (extended rcode), with an OPT of version 0.
	m = dns.Query("ipv4-a1-ams.cdn.example.net.", mdns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().SetVersion(1)
	r = exchange(t, s, "udp", m)
	if r.Rcode != mdns.RcodeBadVers || r.IsEdns0() == nil || r.IsEdns0().Version() != 0 || len(r.Answer) != 0 {
		t.Errorf("EDNS version 1: rcode %s, OPT %v, answer %v; want BADVERS, an OPT of version 0, no answer", mdns.RcodeToString[r.Rcode], r.IsEdns0(), r.Answer)
	}
	// The client subnet is echoed with scope 0.
	m = dns.Query("ipv4-a1-ams.cdn.example.net.", mdns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &mdns.EDNS0_SUBNET{Code: mdns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("198.51.100.0").To4()})
	r = exchange(t, s, "udp", m)
	if sub := subnetOf(r); sub == nil || sub.SourceNetmask != 24 || sub.SourceScope != 0 || !sub.Address.Equal(net.ParseIP("198.51.100.0")) {
		t.Errorf("ECS echo = %v, want 198.51.100.0/24/0", sub)
	}
	// Address bits beyond the source prefix are malformed (RFC 7871).
	m = dns.Query("ipv4-a1-ams.cdn.example.net.", mdns.TypeA)
	m.SetEdns0(1232, false)
	// (miekg/dns masks the address when packing an EDNS0_SUBNET, so the
	// option goes out as raw bytes: family 2, /32, 2001:db8:ff00::.)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &mdns.EDNS0_LOCAL{Code: mdns.EDNS0SUBNET, Data: []byte{0, 2, 32, 0, 0x20, 0x01, 0x0d, 0xb8, 0xff}})
	if r := exchange(t, s, "udp", m); r.Rcode != mdns.RcodeFormatError {
		t.Errorf("ECS with bits beyond the prefix: rcode %s, want FORMERR", mdns.RcodeToString[r.Rcode])
	}
	// Two OPT records are a FORMERR (RFC 6891 §6.1.1).
	m = dns.Query("ipv4-a1-ams.cdn.example.net.", mdns.TypeA)
	m.SetEdns0(1232, false)
	m.Extra = append(m.Extra, m.Extra[0])
	if r := exchange(t, s, "udp", m); r.Rcode != mdns.RcodeFormatError {
		t.Errorf("two OPT records: rcode %s, want FORMERR", mdns.RcodeToString[r.Rcode])
	}
}

func subnetOf(m *mdns.Msg) *mdns.EDNS0_SUBNET {
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if s, ok := o.(*mdns.EDNS0_SUBNET); ok {
				return s
			}
		}
	}
	return nil
}

// TestTruncation: an NS set too large for 512 bytes is truncated over
// UDP without EDNS, fits the EDNS payload size, and comes whole over TCP.
func TestTruncation(t *testing.T) {
	zc := dns.ZoneFixture()
	zc.Nameservers = nil
	for i := range 40 {
		zc.Nameservers = append(zc.Nameservers, config.Nameserver{Name: fmt.Sprintf("ns%02d.cdn.example.net", i),
			Addresses: []config.Addr{{Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})}, {Addr: netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i))}}})
	}
	s, reg := startServer(t, zc, nil)
	r, size := exchangeSize(t, s, "udp", dns.Query("cdn.example.net.", mdns.TypeNS))
	if !r.Truncated || size > 512 || len(r.Answer) == 0 {
		t.Errorf("NS over UDP without EDNS: TC %v, %d bytes, %d NS; want TC, at most 512 bytes, the NS records that fit", r.Truncated, size, len(r.Answer))
	}
	m := dns.Query("cdn.example.net.", mdns.TypeNS)
	m.SetEdns0(4096, false)
	r, size = exchangeSize(t, s, "udp", m)
	if !r.Truncated || size > dns.MaxUDPSize || size <= 512 || r.IsEdns0() == nil {
		t.Errorf("NS over UDP with EDNS 4096: TC %v, %d bytes, OPT %v; want TC, 513 to %d bytes, an OPT", r.Truncated, size, r.IsEdns0(), dns.MaxUDPSize)
	}
	r, size = exchangeSize(t, s, "tcp", dns.Query("cdn.example.net.", mdns.TypeNS))
	if r.Truncated || len(r.Answer) != 40 || len(r.Extra) != 80 {
		t.Errorf("NS over TCP: TC %v, %d NS, %d glue, %d bytes; want everything: 40 and 80", r.Truncated, len(r.Answer), len(r.Extra), size)
	}
	if got := counterValue(t, reg, "ocdn_dns_truncated_responses_total", nil); got != 2 {
		t.Errorf("ocdn_dns_truncated_responses_total = %v, want 2", got)
	}
}

// TestBadInput: malformed and unsupported messages get the error the
// RFCs ask for, and the server keeps answering (rawExchange's marker).
func TestBadInput(t *testing.T) {
	s, reg := startServer(t, dns.ZoneFixture(), func(c *dns.Config) { c.UDPWorkers = 1 })
	good := dns.Query("ipv4-a1-ams.cdn.example.net.", mdns.TypeA)
	good.Id = 0x1234
	gb, _ := good.Pack()
	two := dns.Query("ipv4-a1-ams.cdn.example.net.", mdns.TypeA)
	two.Id = 0x1234
	two.Question = append(two.Question, two.Question[0])
	twob, _ := two.Pack()
	withBits := func(b []byte, set uint16) []byte {
		c := append([]byte(nil), b...)
		binary.BigEndian.PutUint16(c[2:], binary.BigEndian.Uint16(c[2:])|set)
		return c
	}
	for _, tc := range []struct {
		name  string
		in    []byte
		rcode int // -1: no reply
	}{
		{"empty", nil, -1},
		{"shorter than a header", gb[:5], -1},
		{"a response", withBits(gb, 1<<15), -1},
		{"question cut short", gb[:len(gb)-3], mdns.RcodeFormatError},
		{"header claims a question, none follows", gb[:12], mdns.RcodeFormatError},
		{"two questions", twob, mdns.RcodeFormatError},
		{"opcode UPDATE", withBits(gb, mdns.OpcodeUpdate<<11), mdns.RcodeNotImplemented},
		{"opcode STATUS", withBits(gb, mdns.OpcodeStatus<<11), mdns.RcodeNotImplemented},
		{"a name pointer loop", append(append([]byte(nil), gb[:12]...), 0xc0, 12, 0, 1, 0, 1), mdns.RcodeFormatError},
		{"oversized garbage", append(append([]byte(nil), gb[:12]...), bytes.Repeat([]byte{0xff}, 60000)...), mdns.RcodeFormatError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := rawExchange(t, s, tc.in)
			if tc.rcode < 0 {
				if out != nil {
					t.Fatalf("reply %x, want none", out)
				}
				return
			}
			var m mdns.Msg
			if err := m.Unpack(out); err != nil {
				t.Fatalf("reply %x does not parse: %v", out, err)
			}
			if m.Id != 0x1234 || !m.Response || m.Rcode != tc.rcode {
				t.Errorf("reply id %#x, QR %v, rcode %s; want id 0x1234, QR, %s", m.Id, m.Response, mdns.RcodeToString[m.Rcode], mdns.RcodeToString[tc.rcode])
			}
		})
	}
	if got := counterValue(t, reg, "ocdn_dns_dropped_messages_total", map[string]string{"reason": "short"}); got != 2 {
		t.Errorf("dropped short = %v, want 2", got)
	}
	if got := counterValue(t, reg, "ocdn_dns_queries_total", map[string]string{"transport": "udp", "qtype": "other", "result": "formerr"}); got < 3 {
		t.Errorf("udp/other/formerr queries = %v, want at least 3", got)
	}
}

// TestTCPLimit: idle and slow connections cannot take the server: past
// the limit, connections are closed at once while UDP and the open
// connections keep being answered, and a query cut off mid-way does not
// hold up the others.
func TestTCPLimit(t *testing.T) {
	s, reg := startServer(t, dns.ZoneFixture(), func(c *dns.Config) { c.MaxTCPConns = 2; c.TCPIdleTimeout = time.Minute })
	addr := s.Addrs()[0].String()
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.Write([]byte{0, 40, 0}) // a length and one byte of the message, then nothing
	live, err := mdns.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	q := dns.Query("ipv4-a1-ams.cdn.example.net.", mdns.TypeA)
	if err := live.WriteMsg(q); err != nil {
		t.Fatal(err)
	}
	if r, err := live.ReadMsg(); err != nil || len(r.Answer) != 1 {
		t.Fatalf("query on a second connection beside a stalled one = %v, %v", r, err)
	}
	// Both slots are taken: a third connection is closed at once.
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := third.Read(make([]byte, 1)); err != io.EOF && !isReset(err) {
		t.Fatalf("read on a connection past the limit = %d, %v; want it closed", n, err)
	}
	if got := counterValue(t, reg, "ocdn_dns_tcp_connections_rejected_total", nil); got != 1 {
		t.Errorf("ocdn_dns_tcp_connections_rejected_total = %v, want 1", got)
	}
	if r := exchange(t, s, "udp", q); len(r.Answer) != 1 {
		t.Errorf("UDP while TCP is full: %v", r)
	}
	// When the stalled client goes, its slot is free again (released
	// just after the server sees the close: poll until it is).
	slow.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := &mdns.Client{Net: "tcp", Timeout: 5 * time.Second}
		r, _, err := c.Exchange(q, addr)
		if err == nil && len(r.Answer) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TCP answer after the stalled connection closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTCPIdleTimeout: a connection that stops mid-query is closed.
func TestTCPIdleTimeout(t *testing.T) {
	s, _ := startServer(t, dns.ZoneFixture(), func(c *dns.Config) { c.TCPIdleTimeout = 200 * time.Millisecond })
	slow, err := net.Dial("tcp", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.Write([]byte{0, 40, 0})
	slow.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := slow.Read(make([]byte, 1)); err != io.EOF && !isReset(err) {
		t.Fatalf("read on a stalled connection = %d, %v; want it closed by the idle timeout", n, err)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// TestPipelinedTCP: queries sent back to back on one connection are all
// answered, in order (RFC 7766 §6.2.1.1).
func TestPipelinedTCP(t *testing.T) {
	s, _ := startServer(t, dns.ZoneFixture(), nil)
	c, err := mdns.Dial("tcp", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	names := []string{"ipv4-a1-ams.cdn.example.net.", "ipv4-b2-ams.cdn.example.net.", "nope.cdn.example.net.", "ipv4-a1-ams.cdn.example.net."}
	for i, n := range names {
		q := dns.Query(n, mdns.TypeA)
		q.Id = uint16(100 + i)
		if err := c.WriteMsg(q); err != nil {
			t.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i, n := range names {
		r, err := c.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		if r.Id != uint16(100+i) || r.Question[0].Name != n {
			t.Errorf("reply %d: id %d for %s, want %d for %s", i, r.Id, r.Question[0].Name, 100+i, n)
		}
	}
}

func TestProbeLog(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s, reg := startServer(t, dns.ZoneFixture(), func(c *dns.Config) { c.ProbeLogSize = 4; c.Now = func() time.Time { return now } })
	nonce := dnsname.NewNonce()
	name, err := dnsname.Probe(nonce, "ipv6-a1-ams.cdn.example.net")
	if err != nil {
		t.Fatal(err)
	}
	// From a resolver passing on its client's subnet, over UDP.
	m := dns.Query(name+".", mdns.TypeAAAA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &mdns.EDNS0_SUBNET{Code: mdns.EDNS0SUBNET, Family: 2, SourceNetmask: 48, Address: net.ParseIP("2001:db8:77::")})
	c := &mdns.Client{Net: "udp", Timeout: 10 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP("127.0.0.9")}}}
	r, _, err := c.Exchange(m, s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) != 1 || r.Answer[0].Header().Name != name+"." || r.Answer[0].(*mdns.AAAA).AAAA.String() != "2001:db8::1" {
		t.Fatalf("probe name answer = %v, want %s. AAAA 2001:db8::1", r.Answer, name)
	}
	// Without a subnet, over TCP, for the family the name lacks.
	exchange(t, s, "tcp", dns.Query(strings.ToUpper(name)+".", mdns.TypeA))
	got := s.Probes().Lookup(nonce)
	if len(got) != 2 {
		t.Fatalf("Lookup(%s) = %v, want 2 queries", nonce, got)
	}
	want := dns.ProbeQuery{Seq: 1, Time: now, Name: name, Nonce: nonce, Appliance: "a1", Family: dnsname.IPv6, QType: "AAAA",
		Resolver: got[0].Resolver, Transport: "udp", ECS: netip.MustParsePrefix("2001:db8:77::/48")}
	if diff := cmp.Diff(want, got[0], cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("first probe query (-want +got):\n%s", diff)
	}
	if got[0].Resolver.Addr() != netip.MustParseAddr("127.0.0.9") {
		t.Errorf("resolver = %s, want the client's address 127.0.0.9", got[0].Resolver)
	}
	if got[1].ECS.IsValid() || got[1].Transport != "tcp" || got[1].QType != "A" || got[1].Seq != 2 {
		t.Errorf("second probe query = %+v, want tcp, A, no ECS, seq 2", got[1])
	}
	// The ring keeps the last four; Since says how many were lost.
	for range 4 {
		n, _ := dnsname.Probe(dnsname.NewNonce(), "ipv4-b2-ams.cdn.example.net")
		exchange(t, s, "udp", dns.Query(n+".", mdns.TypeA))
	}
	entries, next, lost := s.Probes().Since(0)
	if len(entries) != 4 || entries[0].Seq != 3 || next != 7 || lost != 2 {
		t.Errorf("Since(0) = %d entries from seq %d, next %d, lost %d; want 4 from 3, next 7, lost 2", len(entries), entries[0].Seq, next, lost)
	}
	if e, n, l := s.Probes().Since(next); len(e) != 0 || n != 7 || l != 0 {
		t.Errorf("Since(next) = %v, %d, %d; want nothing new", e, n, l)
	}
	if got := counterValue(t, reg, "ocdn_dns_probe_queries_total", map[string]string{"ecs": "yes"}); got != 1 {
		t.Errorf("probe queries with ECS = %v, want 1", got)
	}
}

// TestSetZone: a new zone is served at once.
func TestSetZone(t *testing.T) {
	s, _ := startServer(t, dns.ZoneFixture(), nil)
	zc := dns.ZoneFixture()
	zc.Appliances = zc.Appliances[:1]
	zc.Serial = 8
	z, err := dns.NewZone(zc)
	if err != nil {
		t.Fatal(err)
	}
	s.SetZone(z)
	if r := exchange(t, s, "udp", dns.Query("ipv4-b2-ams.cdn.example.net.", mdns.TypeA)); r.Rcode != mdns.RcodeNameError {
		t.Errorf("an appliance removed from the zone: %s, want NXDOMAIN", mdns.RcodeToString[r.Rcode])
	}
}

func TestNewZoneRefusesCollisions(t *testing.T) {
	zc := dns.ZoneFixture()
	zc.Appliances = append(zc.Appliances, config.ApplianceName{Name: "ipv4-a1-ams.cdn.example.net", Appliance: "a_1", Addr: netip.MustParseAddr("192.0.2.9")})
	if _, err := dns.NewZone(zc); err == nil || !strings.Contains(err.Error(), `appliance "a1"`) {
		t.Errorf("NewZone with two appliances on one name = %v", err)
	}
	zc = dns.ZoneFixture()
	zc.Appliances = append(zc.Appliances, config.ApplianceName{Name: "ns1.dc.cdn.example.net", Appliance: "n", Addr: netip.MustParseAddr("192.0.2.9")})
	if _, err := dns.NewZone(zc); err == nil || !strings.Contains(err.Error(), "name server") {
		t.Errorf("NewZone with an appliance on a name server's name = %v", err)
	}
}

// TestListenBothTransports: port 0 gets one port for UDP and TCP, on
// IPv4 and IPv6 loopback.
func TestListenBothTransports(t *testing.T) {
	s, _ := startServer(t, dns.ZoneFixture(), func(c *dns.Config) {
		c.Listen = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0"), netip.MustParseAddrPort("[::1]:0")}
	})
	for _, a := range s.Addrs() {
		for _, network := range []string{"udp", "tcp"} {
			c := &mdns.Client{Net: network, Timeout: 10 * time.Second}
			r, _, err := c.Exchange(dns.Query("ipv6-a1-ams.cdn.example.net.", mdns.TypeAAAA), a.String())
			if err != nil || len(r.Answer) != 1 {
				t.Errorf("%s over %s: %v, %v", a, network, r, err)
			}
		}
	}
	// A busy address fails Listen, naming it.
	busy := s.Addrs()[0]
	_, err := dns.Listen(dns.Config{Zone: s.Zone(), Listen: []netip.AddrPort{busy}})
	if err == nil || !strings.Contains(err.Error(), busy.String()) {
		t.Errorf("Listen on a busy address = %v, want an error naming %s", err, busy)
	}
}

func TestMetricNames(t *testing.T) {
	s, reg := startServer(t, dns.ZoneFixture(), nil)
	exchange(t, s, "udp", dns.Query("ipv4-a1-ams.cdn.example.net.", mdns.TypeA))
	metrictest.Lint(t, reg, "ocdn_dns_")
	if got := counterValue(t, reg, "ocdn_dns_queries_total", map[string]string{"transport": "udp", "qtype": "A", "result": "answer"}); got != 1 {
		t.Errorf("udp/A/answer = %v, want 1", got)
	}
}

// TestRunLeavesNothing: when Run returns, every goroutine it started
// has ended, open TCP connections included.
func TestRunLeavesNothing(t *testing.T) {
	z, err := dns.NewZone(dns.ZoneFixture())
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
	c, err := mdns.Dial("tcp", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteMsg(dns.Query("ipv4-a1-ams.cdn.example.net.", mdns.TypeA)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadMsg(); err != nil { // the connection is open and served
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "dns.(*dns.Server).serve") {
		t.Errorf("goroutines of the server are left after Run returned:\n%s", stacks)
	}
}
