package rib

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// mrtRecord frames body as an MRT record.
func mrtRecord(typ, subtype uint16, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, 1470931200)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, subtype)
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

// bgp4mpUpdate wraps a BGP UPDATE body (withdrawn, attributes, NLRI) in a
// BGP4MP_MESSAGE_AS4 record from peer 192.0.2.1 AS 64500 to AS 64501.
func bgp4mpUpdate(update []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, 64500)
	b = binary.BigEndian.AppendUint32(b, 64501)
	b = append(b, 0, 0, 0, 1) // interface index, AFI IPv4
	b = append(b, 192, 0, 2, 1, 192, 0, 2, 2)
	b = append(b, bytes.Repeat([]byte{0xff}, 16)...)
	b = binary.BigEndian.AppendUint16(b, uint16(19+len(update)))
	b = append(b, 2)
	return mrtRecord(MRTBGP4MP, subMessageAS4, append(b, update...))
}

// validUpdate announces 198.51.100.0/24 with ORIGIN IGP, AS_PATH 64500
// 64496 and NEXT_HOP 192.0.2.1.
func validUpdate() []byte {
	attrs := []byte{
		0x40, 1, 1, 0,
		0x40, 2, 10, 2, 2, 0, 0, 0xfb, 0xf4, 0, 0, 0xfb, 0xf0,
		0x40, 3, 4, 192, 0, 2, 1,
	}
	u := []byte{0, 0, 0, byte(len(attrs))}
	u = append(u, attrs...)
	return append(u, 24, 198, 51, 100)
}

func TestMRTReaderValidUpdate(t *testing.T) {
	rec, err := NewMRTReader(bytes.NewReader(bgp4mpUpdate(validUpdate()))).Next()
	if err != nil {
		t.Fatalf("Next() error = %v", err)
	}
	want := Route{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Attrs: Attrs{NextHop: netip.MustParseAddr("192.0.2.1"), ASPath: []uint32{64500, 64496}, Origin: OriginIGP, PeerASN: 64500, EBGP: true}}
	if len(rec.Announced) != 1 || !rec.Announced[0].Equal(want) {
		t.Errorf("Next().Announced = %+v, want [%+v]", rec.Announced, want)
	}
}

func TestMRTReaderMalformed(t *testing.T) {
	good := bgp4mpUpdate(validUpdate())
	withUpdate := func(f func(u []byte) []byte) []byte { return bgp4mpUpdate(f(validUpdate())) }
	tests := []struct {
		name    string
		in      []byte
		offset  int
		wantErr error
		substr  string
	}{
		{"short header", good[:7], 0, ErrTruncated, "header"},
		{"short body", good[:len(good)-3], 0, ErrTruncated, "body"},
		{"second record short", append(append([]byte{}, good...), good[:20]...), len(good), ErrTruncated, "body"},
		{"length over limit", append(mrtRecord(MRTBGP4MP, subMessageAS4, nil)[:8], 0xff, 0xff, 0xff, 0xff), 0, ErrMalformed, "record length"},
		{"withdrawn overruns update", withUpdate(func(u []byte) []byte { u[1] = 200; return u }), 0, ErrTruncated, "BGP UPDATE"},
		{"attribute overruns block", withUpdate(func(u []byte) []byte { u[6] = 99; return u }), 0, ErrTruncated, "path attribute"},
		{"bad origin", withUpdate(func(u []byte) []byte { u[7] = 7; return u }), 0, ErrMalformed, "ORIGIN"},
		{"bad as path segment", withUpdate(func(u []byte) []byte { u[11] = 9; return u }), 0, ErrMalformed, "AS_PATH"},
		{"prefix too long", withUpdate(func(u []byte) []byte { u[len(u)-4] = 33; return u }), 0, ErrMalformed, "prefix length 33"},
		{"nlri truncated", withUpdate(func(u []byte) []byte { u[len(u)-4] = 32; return u }), 0, ErrTruncated, "NLRI"},
		{"bgp length below header", func() []byte {
			b := bgp4mpUpdate(validUpdate())
			binary.BigEndian.PutUint16(b[12+20+16:], 5)
			return b
		}(), 0, ErrMalformed, "BGP message"},
		{"rib before peer index", mrtRecord(MRTTableDumpV2, subRIBIPv4Unicast, []byte{
			0, 0, 0, 1, 8, 10, 0, 1, // seq, 10.0.0.0/8, one entry
			0, 0, 0, 0, 0, 0, 0, 0, // peer 0, time, no attributes
		}), 0, ErrMalformed, "peer index 0 out of range"},
		{"rib entry count lies", mrtRecord(MRTTableDumpV2, subRIBIPv4Unicast, []byte{
			0, 0, 0, 1, 8, 10, 0, 0xff,
		}), 0, ErrTruncated, "RIB entries"},
		{"peer index table count lies", mrtRecord(MRTTableDumpV2, subPeerIndexTable, []byte{
			1, 2, 3, 4, 0, 0, 0xff, 0xff,
		}), 0, ErrTruncated, "PEER_INDEX_TABLE"},
		{"et microseconds out of range", mrtRecord(MRTBGP4MPET, subMessageAS4, []byte{0xff, 0xff, 0xff, 0xff}), 0, ErrMalformed, "microseconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mr := NewMRTReader(bytes.NewReader(tt.in))
			var err error
			for err == nil {
				_, err = mr.Next()
			}
			if errors.Is(err, io.EOF) {
				t.Fatalf("Next() reached EOF, want error")
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Next() error = %v, want wrapping %v", err, tt.wantErr)
			}
			wantPrefix := "mrt: record at offset " + strconv.Itoa(tt.offset) + ":"
			if !strings.HasPrefix(err.Error(), wantPrefix) || !strings.Contains(err.Error(), tt.substr) {
				t.Errorf("Next() error = %q, want prefix %q containing %q", err, wantPrefix, tt.substr)
			}
		})
	}
}
