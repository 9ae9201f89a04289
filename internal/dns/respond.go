package dns

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/ocdn/ocdn/internal/dnsname"
)

// MaxUDPSize is the largest reply sent over UDP, whatever a client
// advertises: 1232 bytes fit an IPv6 packet on any path without
// fragmentation (DNS flag day 2020). Larger replies are truncated (TC)
// and the client retries over TCP.
const MaxUDPSize = 1232

// maxMsg is the largest DNS message (its length field is 16 bits).
const maxMsg = 65535

type transport uint8

const (
	udp transport = iota
	tcp
)

func (t transport) String() string {
	if t == tcp {
		return "tcp"
	}
	return "udp"
}

// responder turns one query message into its reply. Each UDP worker owns
// one and TCP connections borrow one per message, so the messages and
// buffers are reused and a query costs few allocations.
type responder struct {
	s   *Server
	req mdns.Msg
	rep mdns.Msg
	opt mdns.OPT
	// hasOpt: the query carried EDNS, so the reply does; udpSize is what
	// the query advertised.
	hasOpt  bool
	udpSize uint16
	// in holds a query read from TCP; out holds the packed reply after
	// two bytes left free for TCP's length prefix.
	in, out []byte
	answer  []mdns.RR
	extra   []mdns.RR
}

func newResponder(s *Server) *responder {
	return &responder{s: s, in: make([]byte, maxMsg), out: make([]byte, 2+maxMsg+1)}
}

// respond answers query q from from. It returns the packed reply (inside
// r.out, after two free bytes) or nil when the message gets no reply:
// shorter than a header, or itself a response (answering those could
// loop between two servers).
func (r *responder) respond(q []byte, tr transport, from netip.AddrPort) []byte {
	start := time.Now()
	if len(q) < 12 {
		r.s.m.dropped(dropShort)
		return nil
	}
	bits := binary.BigEndian.Uint16(q[2:])
	if bits&(1<<15) != 0 {
		r.s.m.dropped(dropResponse)
		return nil
	}
	rep := &r.rep
	*rep = mdns.Msg{Answer: r.answer[:0], Extra: r.extra[:0]}
	rep.Id = binary.BigEndian.Uint16(q)
	rep.Response = true
	rep.Opcode = int(bits>>11) & 0xF
	rep.RecursionDesired = bits&(1<<8) != 0
	rep.CheckingDisabled = bits&(1<<4) != 0
	r.hasOpt = false
	res, qt := r.answerQuery(q, tr, from)
	limit := maxMsg
	if tr == udp {
		limit = mdns.MinMsgSize
		if r.hasOpt {
			limit = int(max(mdns.MinMsgSize, min(r.udpSize, MaxUDPSize)))
		}
	}
	if r.hasOpt {
		rep.Extra = append(rep.Extra, &r.opt)
	}
	rep.Truncate(limit)
	if rep.Truncated {
		r.s.m.truncated.Inc()
	}
	out, err := rep.PackBuffer(r.out[2:])
	if err != nil {
		// Nothing the zone holds fails to pack; should it happen, the
		// client still gets an answer it can act on.
		r.s.log.Error("packing a DNS reply", "err", err, "question", rep.Question)
		res = resServFail
		out = headerOnly(r.out[2:], rep.Id, rep.Opcode, mdns.RcodeServerFailure, rep.RecursionDesired)
	}
	if len(out) > 0 && &out[0] != &r.out[2] {
		// PackBuffer sizes its buffer by the uncompressed length, which
		// may exceed r.out for a reply Truncate compressed to fit.
		out = r.out[2 : 2+copy(r.out[2:], out)]
	}
	r.answer, r.extra = rep.Answer[:0], rep.Extra[:0]
	r.s.m.query(tr, qt, res, time.Since(start))
	return out
}

// answerQuery fills r.rep for query q and says what kind of answer it is
// and the query's type, for the metrics.
func (r *responder) answerQuery(q []byte, tr transport, from netip.AddrPort) (result, qtypeLabel) {
	rep, req := &r.rep, &r.req
	if err := req.Unpack(q); err != nil {
		rep.Rcode = mdns.RcodeFormatError
		return resFormErr, qtOther
	}
	if len(req.Question) == 1 {
		rep.Question = req.Question
	}
	qt := qtOther
	if len(req.Question) == 1 {
		qt = qtypeOf(req.Question[0].Qtype)
	}
	if rep.Opcode != mdns.OpcodeQuery {
		rep.Rcode = mdns.RcodeNotImplemented
		return resNotImp, qt
	}
	if len(req.Question) != 1 {
		rep.Rcode = mdns.RcodeFormatError
		return resFormErr, qt
	}
	// EDNS (RFC 6891): at most one OPT, owned by the root; the reply
	// carries one when the query did.
	var reqOpt *mdns.OPT
	for _, rr := range req.Extra {
		if o, ok := rr.(*mdns.OPT); ok {
			if reqOpt != nil || o.Hdr.Name != "." {
				rep.Rcode = mdns.RcodeFormatError
				return resFormErr, qt
			}
			reqOpt = o
		}
	}
	var ecs netip.Prefix
	if reqOpt != nil {
		r.opt = mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT, Class: MaxUDPSize}}
		// RFC 3225: the DO bit is copied; there are no signatures to add.
		if reqOpt.Do() {
			r.opt.SetDo()
		}
		r.hasOpt, r.udpSize = true, reqOpt.UDPSize()
		if reqOpt.Version() != 0 {
			rep.Rcode = mdns.RcodeBadVers
			return resBadVers, qt
		}
		for _, o := range reqOpt.Option {
			sub, ok := o.(*mdns.EDNS0_SUBNET)
			if !ok {
				continue
			}
			var valid bool
			if ecs, valid = subnetPrefix(sub); !valid {
				// RFC 7871 §7.1.2: a malformed option is a FORMERR.
				rep.Rcode = mdns.RcodeFormatError
				return resFormErr, qt
			}
			// The answers do not depend on the client's subnet: scope 0
			// tells the resolver to share them with every client
			// (RFC 7871 §7.2.1).
			sub.SourceScope = 0
			r.opt.Option = append(r.opt.Option[:0], sub)
		}
	}
	return r.lookup(req.Question[0], tr, from, ecs), qt
}

// lookup answers question q from the zone.
func (r *responder) lookup(q mdns.Question, tr transport, from netip.AddrPort, ecs netip.Prefix) result {
	rep, z := &r.rep, r.s.zone.Load()
	name := strings.ToLower(q.Name)
	inZone := dnsname.InZone(name, z.apex)
	if inZone && strings.IndexByte(name, '\\') >= 0 {
		// An escaped dot is not a label boundary.
		inZone = mdns.IsSubDomain(z.apex, name)
	}
	if !inZone || q.Qclass != mdns.ClassINET {
		// Not authoritative: an authoritative-only server refuses
		// rather than recursing.
		rep.Rcode = mdns.RcodeRefused
		return resRefused
	}
	switch q.Qtype {
	case mdns.TypeOPT:
		rep.Rcode = mdns.RcodeFormatError // a pseudo-record is never asked for
		return resFormErr
	case mdns.TypeAXFR, mdns.TypeIXFR:
		rep.Rcode = mdns.RcodeRefused // no zone transfers: the data is the inventory
		return resRefused
	}
	rep.Authoritative = true
	if name == z.apex {
		switch q.Qtype {
		case mdns.TypeSOA, mdns.TypeANY: // RFC 8482: one RRset answers ANY
			rep.Answer = append(rep.Answer, z.soa)
			return resAnswer
		case mdns.TypeNS:
			rep.Answer = append(rep.Answer, z.ns...)
			rep.Extra = append(rep.Extra, z.glue...)
			return resAnswer
		}
		return r.nodata(z)
	}
	if n, ok := z.names[name]; ok {
		if rrs := n.records(q.Qtype); len(rrs) > 0 {
			rep.Answer = append(rep.Answer, rrs...)
			return resAnswer
		}
		return r.nodata(z)
	}
	if nonce, rest, ok := dnsname.SplitProbe(name); ok {
		if n, ok := z.names[rest]; ok && n.appliance != "" {
			r.s.probes.add(ProbeQuery{Time: r.s.now(), Name: strings.TrimSuffix(name, "."), Nonce: nonce, Appliance: n.appliance,
				Family: n.family, QType: mdns.Type(q.Qtype).String(), Resolver: from, Transport: tr.String(), ECS: ecs})
			r.s.m.probe(ecs.IsValid())
			rrs := n.records(q.Qtype)
			if len(rrs) == 0 {
				return r.nodata(z)
			}
			// The probe's own name owns the answer, so every probe
			// misses the resolver's cache.
			for _, rr := range rrs {
				rr = mdns.Copy(rr)
				rr.Header().Name = q.Name
				rep.Answer = append(rep.Answer, rr)
			}
			return resAnswer
		}
	}
	rep.Rcode = mdns.RcodeNameError
	rep.Ns = z.negSOA
	return resNXDomain
}

// records are n's records of type t; ANY gets one RRset (RFC 8482).
func (n *node) records(t uint16) []mdns.RR {
	switch t {
	case mdns.TypeA:
		return n.a
	case mdns.TypeAAAA:
		return n.aaaa
	case mdns.TypeANY:
		if len(n.a) > 0 {
			return n.a
		}
		return n.aaaa
	}
	return nil
}

// nodata: the name exists without records of the type asked (RFC 2308
// §2.2); the SOA tells resolvers how long to remember that.
func (r *responder) nodata(z *Zone) result {
	r.rep.Ns = z.negSOA
	return resNoData
}

// subnetPrefix is the client subnet of an ECS option; valid is false for
// an option RFC 7871 calls malformed: address bits set beyond the source
// prefix length.
func subnetPrefix(s *mdns.EDNS0_SUBNET) (p netip.Prefix, valid bool) {
	var a netip.Addr
	switch s.Family {
	case 0:
		return netip.Prefix{}, true // "no subnet" (dig sends this with +subnet=0)
	case 1:
		ip4 := s.Address.To4()
		if ip4 == nil {
			return netip.Prefix{}, false
		}
		a = netip.AddrFrom4([4]byte(ip4))
	case 2:
		if len(s.Address) != 16 {
			return netip.Prefix{}, false
		}
		a = netip.AddrFrom16([16]byte(s.Address))
	default:
		return netip.Prefix{}, false
	}
	p, err := a.Prefix(int(s.SourceNetmask))
	if err != nil || p.Addr() != a {
		return netip.Prefix{}, false
	}
	return p, true
}

// headerOnly writes a reply of just a header into buf.
func headerOnly(buf []byte, id uint16, opcode, rcode int, rd bool) []byte {
	bits := uint16(1<<15) | uint16(opcode&0xF)<<11 | uint16(rcode&0xF)
	if rd {
		bits |= 1 << 8
	}
	buf = buf[:12]
	clear(buf)
	binary.BigEndian.PutUint16(buf, id)
	binary.BigEndian.PutUint16(buf[2:], bits)
	return buf
}
