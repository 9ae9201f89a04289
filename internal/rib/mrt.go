package rib

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// MRT record types (RFC 6396 section 4).
const (
	MRTTableDumpV2 uint16 = 13
	MRTBGP4MP      uint16 = 16
	MRTBGP4MPET    uint16 = 17
)

// TABLE_DUMP_V2 subtypes (RFC 6396 section 4.3, RFC 8050 section 4).
const (
	subPeerIndexTable      = 1
	subRIBIPv4Unicast      = 2
	subRIBIPv6Unicast      = 4
	subRIBIPv4UnicastAddPa = 8
	subRIBIPv6UnicastAddPa = 10
)

// BGP4MP subtypes (RFC 6396 section 4.4, RFC 8050 section 3).
const (
	subMessage               = 1
	subMessageAS4            = 4
	subMessageLocal          = 6
	subMessageAS4Local       = 7
	subMessageAddPath        = 8
	subMessageAS4AddPath     = 9
	subMessageLocalAddPath   = 10
	subMessageAS4LocalAddPth = 11
)

// maxRecordLen bounds the body the reader will buffer. Real records are at
// most a BGP message plus headers, or one prefix's RIB entries; the bound
// keeps a corrupt length field from turning into a 4 GiB allocation.
const maxRecordLen = 16 << 20

// Errors wrapped by MRTReader.Next, always inside an error that names the
// record's byte offset.
var (
	ErrTruncated = errors.New("truncated")
	ErrMalformed = errors.New("malformed")
)

// Peer is a BGP neighbour of the router that wrote an MRT file.
type Peer struct {
	RouterID netip.Addr `json:"router_id,omitzero"`
	Addr     netip.Addr `json:"addr"`
	AS       uint32     `json:"as"`
}

// RIBEntry is one path to a TABLE_DUMP_V2 record's prefix.
type RIBEntry struct {
	Peer       Peer      `json:"peer"`
	Originated time.Time `json:"originated"`
	// PathID is the ADD-PATH path identifier, zero without ADD-PATH.
	PathID uint32 `json:"path_id,omitempty"`
	Route  Route  `json:"route"`
}

// Record is one decoded MRT record. Which fields are set depends on the
// type: PEER_INDEX_TABLE sets Peers; TABLE_DUMP_V2 RIB records set Prefix
// and RIB; BGP4MP UPDATE messages set Peer, Announced and Withdrawn.
type Record struct {
	// Offset is the byte offset of the record's header in the stream.
	Offset  int64     `json:"offset"`
	Time    time.Time `json:"time"`
	Type    uint16    `json:"type"`
	Subtype uint16    `json:"subtype"`

	Peers []Peer `json:"peers,omitempty"`

	Prefix netip.Prefix `json:"prefix,omitzero"`
	RIB    []RIBEntry   `json:"rib,omitempty"`

	Peer Peer `json:"peer,omitzero"`
	// Withdrawn lists IPv4 withdrawn routes, then MP_UNREACH_NLRI ones;
	// Announced lists IPv4 NLRI, then MP_REACH_NLRI ones. That is the
	// order bgpdump prints them in.
	Withdrawn []netip.Prefix `json:"withdrawn,omitempty"`
	Announced []Route        `json:"announced,omitempty"`
}

// MRTReader decodes an MRT stream (RFC 6396) record by record. It returns
// TABLE_DUMP_V2 IPv4/IPv6 unicast RIB records (with or without ADD-PATH),
// their PEER_INDEX_TABLE, and BGP UPDATE messages from BGP4MP and
// BGP4MP_ET records; other record types and BGP messages are skipped.
type MRTReader struct {
	r     *bufio.Reader
	off   int64 // offset of the next record header
	body  bytes.Buffer
	peers []Peer // the latest PEER_INDEX_TABLE, which RIB entries index
}

// NewMRTReader returns a reader of the MRT records in r. It does not
// decompress; wrap r with OpenMaybeGzip for that.
func NewMRTReader(r io.Reader) *MRTReader {
	return &MRTReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next supported record, or io.EOF after the last one.
// Any other error names the byte offset of the offending record; the
// stream cannot be resumed after it.
func (m *MRTReader) Next() (Record, error) {
	for {
		rec, ok, err := m.next()
		if err != nil || ok {
			return rec, err
		}
	}
}

// next reads one record; ok is false for records Next skips.
func (m *MRTReader) next() (rec Record, ok bool, err error) {
	start := m.off
	fail := func(err error) (Record, bool, error) {
		return Record{}, false, fmt.Errorf("mrt: record at offset %d: %w", start, err)
	}
	var hdr [12]byte
	n, err := io.ReadFull(m.r, hdr[:])
	m.off += int64(n)
	switch {
	case err == io.EOF:
		return Record{}, false, io.EOF
	case err == io.ErrUnexpectedEOF:
		return fail(fmt.Errorf("%w header (%d of 12 bytes)", ErrTruncated, n))
	case err != nil:
		return fail(err)
	}
	rec = Record{
		Offset:  start,
		Time:    time.Unix(int64(binary.BigEndian.Uint32(hdr[0:])), 0).UTC(),
		Type:    binary.BigEndian.Uint16(hdr[4:]),
		Subtype: binary.BigEndian.Uint16(hdr[6:]),
	}
	length := binary.BigEndian.Uint32(hdr[8:])
	if length > maxRecordLen {
		return fail(fmt.Errorf("%w: record length %d exceeds %d", ErrMalformed, length, maxRecordLen))
	}
	// Reading through a LimitReader grows the buffer only as data really
	// arrives, so a lying length field cannot force a large allocation.
	m.body.Reset()
	got, err := m.body.ReadFrom(io.LimitReader(m.r, int64(length)))
	m.off += got
	if err != nil {
		return fail(err)
	}
	if got < int64(length) {
		return fail(fmt.Errorf("%w body (%d of %d bytes)", ErrTruncated, got, length))
	}
	d := &decoder{b: m.body.Bytes()}

	switch rec.Type {
	case MRTTableDumpV2:
		ok, err = m.tableDumpV2(&rec, d)
	case MRTBGP4MP:
		ok, err = bgp4mp(&rec, d)
	case MRTBGP4MPET:
		d.what = "BGP4MP_ET header"
		us := d.u32()
		if d.err == nil && us >= 1e6 {
			return fail(fmt.Errorf("%w BGP4MP_ET microseconds %d", ErrMalformed, us))
		}
		rec.Time = rec.Time.Add(time.Duration(us) * time.Microsecond)
		ok, err = bgp4mp(&rec, d)
	}
	if err == nil {
		err = d.err
	}
	if err != nil {
		return fail(err)
	}
	return rec, ok, nil
}

func (m *MRTReader) tableDumpV2(rec *Record, d *decoder) (bool, error) {
	var v6, addPath bool
	switch rec.Subtype {
	case subPeerIndexTable:
		return true, m.peerIndexTable(rec, d)
	case subRIBIPv4Unicast:
	case subRIBIPv6Unicast:
		v6 = true
	case subRIBIPv4UnicastAddPa:
		addPath = true
	case subRIBIPv6UnicastAddPa:
		v6, addPath = true, true
	default:
		return false, nil // multicast and RIB_GENERIC carry nothing steering uses
	}
	d.what = "RIB entry header"
	d.u32() // sequence number
	pfx, err := d.prefix(v6)
	if err != nil {
		return false, err
	}
	rec.Prefix = pfx
	count := int(d.u16())
	if d.err != nil {
		return false, d.err
	}
	// Each entry needs at least 8 bytes; checking first keeps a corrupt
	// count from sizing a large slice.
	if count*8 > len(d.b) {
		return false, fmt.Errorf("%w RIB entries: %d entries in %d bytes", ErrTruncated, count, len(d.b))
	}
	rec.RIB = make([]RIBEntry, 0, count)
	for range count {
		d.what = "RIB entry"
		idx := int(d.u16())
		orig := d.u32()
		var pathID uint32
		if addPath {
			pathID = d.u32()
		}
		attrBytes := d.take(int(d.u16()))
		if d.err != nil {
			return false, d.err
		}
		if idx >= len(m.peers) {
			return false, fmt.Errorf("%w RIB entry: peer index %d out of range (%d peers)", ErrMalformed, idx, len(m.peers))
		}
		peer := m.peers[idx]
		// TABLE_DUMP_V2 always encodes AS numbers in 4 bytes (RFC 6396 4.3.4).
		a, err := parseAttrs(attrBytes, true, false, true)
		if err != nil {
			return false, err
		}
		rt := a.route(pfx, false)
		rt.PeerASN = peer.AS
		rt.PeerRouterID = peer.RouterID
		rec.RIB = append(rec.RIB, RIBEntry{
			Peer:       peer,
			Originated: time.Unix(int64(orig), 0).UTC(),
			PathID:     pathID,
			Route:      rt,
		})
	}
	return true, nil
}

func (m *MRTReader) peerIndexTable(rec *Record, d *decoder) error {
	d.what = "PEER_INDEX_TABLE"
	d.take(4) // collector BGP id
	d.take(int(d.u16()))
	count := int(d.u16())
	if d.err != nil {
		return d.err
	}
	if count*7 > len(d.b) { // 7 bytes is the smallest peer entry
		return fmt.Errorf("%w PEER_INDEX_TABLE: %d peers in %d bytes", ErrTruncated, count, len(d.b))
	}
	peers := make([]Peer, 0, count)
	for range count {
		typ := d.u8()
		var p Peer
		p.RouterID = d.addr(false)
		p.Addr = d.addr(typ&1 != 0)
		if typ&2 != 0 {
			p.AS = d.u32()
		} else {
			p.AS = uint32(d.u16())
		}
		peers = append(peers, p)
	}
	if d.err != nil {
		return d.err
	}
	m.peers = peers
	rec.Peers = peers
	return nil
}

// bgp4mp decodes a BGP4MP or BGP4MP_ET body; only UPDATE messages are
// reported.
func bgp4mp(rec *Record, d *decoder) (bool, error) {
	var as4, addPath bool
	switch rec.Subtype {
	case subMessage, subMessageLocal:
	case subMessageAS4, subMessageAS4Local:
		as4 = true
	case subMessageAddPath, subMessageLocalAddPath:
		addPath = true
	case subMessageAS4AddPath, subMessageAS4LocalAddPth:
		as4, addPath = true, true
	default:
		return false, nil // STATE_CHANGE and unknown subtypes
	}
	d.what = "BGP4MP header"
	var peerAS, localAS uint32
	if as4 {
		peerAS, localAS = d.u32(), d.u32()
	} else {
		peerAS, localAS = uint32(d.u16()), uint32(d.u16())
	}
	d.u16() // interface index
	afi := d.u16()
	if d.err != nil {
		return false, d.err
	}
	if afi != 1 && afi != 2 {
		return false, fmt.Errorf("%w BGP4MP header: address family %d", ErrMalformed, afi)
	}
	peerAddr := d.addr(afi == 2)
	d.addr(afi == 2) // local address
	rec.Peer = Peer{Addr: peerAddr, AS: peerAS}

	d.what = "BGP message header"
	d.take(16) // marker
	msgLen := int(d.u16())
	msgType := d.u8()
	if d.err != nil {
		return false, d.err
	}
	if msgLen < 19 {
		return false, fmt.Errorf("%w BGP message: length %d", ErrMalformed, msgLen)
	}
	body := d.take(msgLen - 19)
	if d.err != nil {
		return false, d.err
	}
	if msgType != 2 {
		return false, nil // OPEN, NOTIFICATION, KEEPALIVE, ROUTE-REFRESH
	}

	u := &decoder{b: body, what: "BGP UPDATE"}
	withdrawn := u.take(int(u.u16()))
	attrBytes := u.take(int(u.u16()))
	if u.err != nil {
		return false, u.err
	}
	nlri := u.b
	var err error
	if rec.Withdrawn, err = nlriList(withdrawn, false, addPath); err != nil {
		return false, err
	}
	a, err := parseAttrs(attrBytes, as4, addPath, false)
	if err != nil {
		return false, err
	}
	rec.Withdrawn = append(rec.Withdrawn, a.mpUnreach...)
	announced, err := nlriList(nlri, false, addPath)
	if err != nil {
		return false, err
	}
	ebgp := peerAS != localAS
	rec.Announced = make([]Route, 0, len(announced)+len(a.mpReach))
	for _, p := range announced {
		rt := a.route(p, false)
		rt.PeerASN, rt.EBGP = peerAS, ebgp
		rec.Announced = append(rec.Announced, rt)
	}
	for _, p := range a.mpReach {
		rt := a.route(p, true)
		rt.PeerASN, rt.EBGP = peerAS, ebgp
		rec.Announced = append(rec.Announced, rt)
	}
	return true, nil
}
