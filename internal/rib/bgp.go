package rib

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// BGP path attribute type codes (RFC 4271, RFC 4760, RFC 6793).
const (
	attrOrigin    = 1
	attrASPath    = 2
	attrNextHop   = 3
	attrMED       = 4
	attrLocalPref = 5
	attrMPReach   = 14
	attrMPUnreach = 15
	attrAS4Path   = 17
)

// decoder reads big-endian fields from b. The first short read records an
// error naming what was being decoded; later reads return zero values, so
// callers check err once per logical unit instead of after every field.
type decoder struct {
	b    []byte
	what string
	err  error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = fmt.Errorf("%w %s", ErrTruncated, d.what)
		d.b = nil
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() uint8 {
	if b := d.take(1); len(b) == 1 {
		return b[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if b := d.take(2); len(b) == 2 {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if b := d.take(4); len(b) == 4 {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// addr reads a full 4- or 16-byte address.
func (d *decoder) addr(v6 bool) netip.Addr {
	if v6 {
		if b := d.take(16); len(b) == 16 {
			return netip.AddrFrom16([16]byte(b))
		}
		return netip.Addr{}
	}
	if b := d.take(4); len(b) == 4 {
		return netip.AddrFrom4([4]byte(b))
	}
	return netip.Addr{}
}

// prefix reads an NLRI-encoded prefix: a length in bits, then only the
// bytes that length needs. Stray bits past the length are cleared so the
// same prefix always compares equal.
func (d *decoder) prefix(v6 bool) (netip.Prefix, error) {
	bits := int(d.u8())
	maxBits := 32
	if v6 {
		maxBits = 128
	}
	if d.err != nil {
		return netip.Prefix{}, d.err
	}
	if bits > maxBits {
		return netip.Prefix{}, fmt.Errorf("%w %s: prefix length %d", ErrMalformed, d.what, bits)
	}
	raw := d.take((bits + 7) / 8)
	if d.err != nil {
		return netip.Prefix{}, d.err
	}
	var a [16]byte
	copy(a[:], raw)
	addr := netip.AddrFrom16(a)
	if !v6 {
		addr = netip.AddrFrom4([4]byte(a[:4]))
	}
	return netip.PrefixFrom(addr, bits).Masked(), nil
}

// nlriList decodes a run of prefixes, each preceded by a 4-byte path
// identifier when ADD-PATH is in use (RFC 7911).
func nlriList(b []byte, v6, addPath bool) ([]netip.Prefix, error) {
	if len(b) == 0 {
		return nil, nil
	}
	d := &decoder{b: b, what: "NLRI"}
	// Two bytes is the smallest encoded prefix (a /1 or larger needs one).
	out := make([]netip.Prefix, 0, len(b)/2)
	for len(d.b) > 0 {
		if addPath {
			d.u32()
		}
		p, err := d.prefix(v6)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// attrs holds the path attributes steering uses.
type attrs struct {
	origin    Origin
	asPath    []uint32
	as4Path   []uint32
	hasAS4    bool
	nextHop   netip.Addr
	med       uint32
	localPref uint32

	mpNextHop netip.Addr
	mpReach   []netip.Prefix
	mpUnreach []netip.Prefix
}

// route builds the route to p these attributes describe; mp selects the
// MP_REACH_NLRI next hop over NEXT_HOP.
func (a *attrs) route(p netip.Prefix, mp bool) Route {
	nh := a.nextHop
	if mp || !nh.IsValid() {
		nh = a.mpNextHop
	}
	return Route{Prefix: p, Attrs: Attrs{NextHop: nh, LocalPref: a.localPref, ASPath: a.asPath, Origin: a.origin, MED: a.med}}
}

// parseAttrs decodes a path attribute block. as4 says whether AS_PATH
// carries 4-byte ASNs. In TABLE_DUMP_V2 (tableDump) MP_REACH_NLRI is
// usually abbreviated to the next hop only (RFC 6396 section 4.3.4), but
// some writers store the full attribute, so both forms are accepted.
//
// A missing ORIGIN reads as INCOMPLETE, the least preferred value, as
// bgpdump prints it: BIRD dumps its own static routes without one.
func parseAttrs(b []byte, as4, addPath, tableDump bool) (attrs, error) {
	a := attrs{origin: OriginIncomplete}
	d := &decoder{b: b, what: "path attribute header"}
	for len(d.b) > 0 {
		d.what = "path attribute header"
		flags := d.u8()
		typ := d.u8()
		var n int
		if flags&0x10 != 0 { // extended length
			n = int(d.u16())
		} else {
			n = int(d.u8())
		}
		d.what = "path attribute"
		v := d.take(n)
		if d.err != nil {
			return a, fmt.Errorf("%w (type %d)", d.err, typ)
		}
		var err error
		switch typ {
		case attrOrigin:
			if len(v) != 1 || v[0] > byte(OriginIncomplete) {
				return a, fmt.Errorf("%w ORIGIN attribute % x", ErrMalformed, v)
			}
			a.origin = Origin(v[0])
		case attrASPath:
			a.asPath, err = parseASPath(v, as4)
		case attrAS4Path:
			a.as4Path, err = parseASPath(v, true)
			a.hasAS4 = true
		case attrNextHop:
			if len(v) != 4 {
				return a, fmt.Errorf("%w NEXT_HOP attribute: length %d", ErrMalformed, len(v))
			}
			a.nextHop = netip.AddrFrom4([4]byte(v))
		case attrMED, attrLocalPref:
			if len(v) != 4 {
				return a, fmt.Errorf("%w attribute %d: length %d", ErrMalformed, typ, len(v))
			}
			if typ == attrMED {
				a.med = binary.BigEndian.Uint32(v)
			} else {
				a.localPref = binary.BigEndian.Uint32(v)
			}
		case attrMPReach:
			err = a.parseMPReach(v, addPath, tableDump)
		case attrMPUnreach:
			err = a.parseMPUnreach(v, addPath)
		}
		if err != nil {
			return a, err
		}
	}
	if a.hasAS4 && !as4 {
		a.asPath = mergeAS4Path(a.asPath, a.as4Path)
	}
	return a, nil
}

// parseASPath flattens AS_PATH segments into one ASN list. Sets and
// confederation segments are flattened too: Route has no place for
// segment boundaries, and steering only uses the path's length.
func parseASPath(b []byte, as4 bool) ([]uint32, error) {
	size := 2
	if as4 {
		size = 4
	}
	d := &decoder{b: b, what: "AS_PATH segment"}
	out := make([]uint32, 0, len(b)/size)
	for len(d.b) > 0 {
		typ := d.u8()
		count := int(d.u8())
		raw := d.take(count * size)
		if d.err != nil {
			return nil, d.err
		}
		if typ < 1 || typ > 4 {
			return nil, fmt.Errorf("%w AS_PATH segment type %d", ErrMalformed, typ)
		}
		for i := 0; i < len(raw); i += size {
			if as4 {
				out = append(out, binary.BigEndian.Uint32(raw[i:]))
			} else {
				out = append(out, uint32(binary.BigEndian.Uint16(raw[i:])))
			}
		}
	}
	return out, nil
}

// mergeAS4Path rebuilds the true path of a 2-byte session (RFC 6793
// section 4.2.3): AS4_PATH replaces the tail of AS_PATH, whose entries for
// 4-byte ASNs are AS_TRANS. A longer AS4_PATH is bogus and ignored.
func mergeAS4Path(asPath, as4Path []uint32) []uint32 {
	if len(as4Path) > len(asPath) {
		return asPath
	}
	keep := len(asPath) - len(as4Path)
	return append(asPath[:keep:keep], as4Path...)
}

func (a *attrs) parseMPReach(v []byte, addPath, tableDump bool) error {
	d := &decoder{b: v, what: "MP_REACH_NLRI"}
	if tableDump && len(v) > 0 && int(v[0])+1 == len(v) {
		a.mpNextHop = nextHopAddr(d.take(int(d.u8())))
		return d.err
	}
	afi := d.u16()
	safi := d.u8()
	a.mpNextHop = nextHopAddr(d.take(int(d.u8())))
	d.u8() // reserved
	if d.err != nil {
		return d.err
	}
	if safi != 1 || (afi != 1 && afi != 2) {
		return nil // only unicast IPv4/IPv6 routes reach clients
	}
	var err error
	a.mpReach, err = nlriList(d.b, afi == 2, addPath)
	return err
}

func (a *attrs) parseMPUnreach(v []byte, addPath bool) error {
	d := &decoder{b: v, what: "MP_UNREACH_NLRI"}
	afi := d.u16()
	safi := d.u8()
	if d.err != nil {
		return d.err
	}
	if safi != 1 || (afi != 1 && afi != 2) {
		return nil
	}
	var err error
	a.mpUnreach, err = nlriList(d.b, afi == 2, addPath)
	return err
}

// nextHopAddr picks the global address from an MP next hop: IPv4, IPv6,
// or IPv6 global followed by link-local (32 bytes). Other encodings (VPN
// route distinguishers) yield no address.
func nextHopAddr(b []byte) netip.Addr {
	switch len(b) {
	case 4:
		return netip.AddrFrom4([4]byte(b))
	case 16, 32:
		return netip.AddrFrom16([16]byte(b[:16]))
	}
	return netip.Addr{}
}
