package rib

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func FuzzMRTReader(f *testing.F) {
	for _, name := range []string{
		"sample-bird-mrtdump_rib.mrt",
		"sample-bird6-mrtdump_rib.mrt",
		"sample-openbgpd_rib_table-v2.mrt",
		"sample-quagga_rib.mrt",
	} {
		f.Add(readData(f, name))
	}
	f.Add(bgp4mpUpdate(validUpdate()))
	f.Fuzz(func(t *testing.T, data []byte) {
		mr := NewMRTReader(bytes.NewReader(data))
		for range 10000 {
			rec, err := mr.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				if !strings.HasPrefix(err.Error(), "mrt: record at offset ") {
					t.Fatalf("Next() error %q does not name the offset", err)
				}
				return
			}
			if rec.Offset < 0 || rec.Offset >= int64(len(data)) {
				t.Fatalf("record offset %d outside input of %d bytes", rec.Offset, len(data))
			}
			// Whatever decodes must be storable or rejected cleanly.
			for _, rt := range rec.Announced {
				if rt.Validate() != nil {
					t.Fatalf("decoded route %+v does not validate", rt)
				}
			}
		}
	})
}

func FuzzPrefixList(f *testing.F) {
	f.Add([]byte("# comment\n10.0.0.0/8\n\n2001:db8::/32 # doc\n"))
	f.Add(gzipBytes(f, []byte("192.0.2.0/24\n")))
	f.Add([]byte("10.0.0.1/8\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := LoadPrefixList(bytes.NewReader(data))
		if err != nil {
			return
		}
		routes := make([]Route, len(ps))
		for i, p := range ps {
			routes[i] = Route{Prefix: p}
		}
		if _, err := NewTable(map[string][]Route{"a": routes}); err != nil {
			t.Fatalf("NewTable(prefixes LoadPrefixList accepted) = %v", err)
		}
	})
}
