package rib

import (
	"bytes"
	"compress/gzip"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestLoadPrefixList(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []netip.Prefix
		wantErr string
	}{
		{"empty", "", nil, ""},
		{"comments and blanks", "# header\n\n10.0.0.0/8\n  192.0.2.0/24  # doc\n\t\n2001:db8::/32\n",
			[]netip.Prefix{pfx("10.0.0.0/8"), pfx("192.0.2.0/24"), pfx("2001:db8::/32")}, ""},
		{"crlf", "10.0.0.0/8\r\n", []netip.Prefix{pfx("10.0.0.0/8")}, ""},
		{"no final newline", "10.0.0.0/8", []netip.Prefix{pfx("10.0.0.0/8")}, ""},
		{"garbage", "10.0.0.0/8\n\nnot-a-prefix\n", nil, "prefix list: line 3:"},
		{"bare address", "# x\n10.0.0.1\n", nil, "prefix list: line 2:"},
		{"host bits", "10.0.0.1/8\n", nil, "prefix list: line 1: route 10.0.0.1/8: prefix has host bits set"},
		{"length too long", "10.0.0.0/33\n", nil, "prefix list: line 1:"},
	}
	for _, tt := range tests {
		for _, gz := range []bool{false, true} {
			in := []byte(tt.in)
			if gz {
				in = gzipBytes(t, in)
			}
			got, err := LoadPrefixList(bytes.NewReader(in))
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Errorf("%s (gzip %v): LoadPrefixList() error = %v, want prefix %q", tt.name, gz, err, tt.wantErr)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s (gzip %v): LoadPrefixList() error = %v", tt.name, gz, err)
				continue
			}
			if diff := cmp.Diff(tt.want, got, cmpOpts); diff != "" {
				t.Errorf("%s (gzip %v): LoadPrefixList() (-want +got):\n%s", tt.name, gz, diff)
			}
		}
	}
}

func TestOpenMaybeGzipCorrupt(t *testing.T) {
	gz := gzipBytes(t, []byte("10.0.0.0/8\n"))
	if _, err := LoadPrefixList(bytes.NewReader(gz[:len(gz)-6])); err == nil {
		t.Error("LoadPrefixList(truncated gzip) = nil error")
	}
	if _, err := LoadPrefixList(bytes.NewReader([]byte{0x1f, 0x8b, 0})); err == nil {
		t.Error("LoadPrefixList(bad gzip header) = nil error")
	}
}

// loadFullTable returns the full-table prefix list as routes of one
// appliance, as a global-table import would.
func loadFullTable(t testing.TB) ([]netip.Prefix, map[string][]Route) {
	t.Helper()
	prefixes, err := LoadPrefixList(openData(t, "full-table-prefixes.txt.gz"))
	if err != nil {
		t.Fatalf("LoadPrefixList(full table) = %v", err)
	}
	routes := make([]Route, len(prefixes))
	for i, p := range prefixes {
		routes[i] = Route{Prefix: p}
	}
	return prefixes, map[string][]Route{"global": routes}
}

func TestFullTable(t *testing.T) {
	prefixes, cands := loadFullTable(t)
	var v4, v6 int
	for _, p := range prefixes {
		if p.Addr().Is4() {
			v4++
		} else {
			v6++
		}
	}
	if len(prefixes) != 1062046 || v4 != 901899 || v6 != 160147 {
		t.Fatalf("full table has %d prefixes (%d IPv4, %d IPv6), want 1062046 (901899, 160147)", len(prefixes), v4, v6)
	}
	tbl, err := NewTable(cands)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Len() != len(prefixes) {
		t.Errorf("Len() = %d, want %d (the list has no duplicates)", tbl.Len(), len(prefixes))
	}
	for _, s := range []string{"1.0.0.1", "8.8.8.8", "9.9.9.9", "193.0.6.139", "2001:4860:4860::8888", "2a00:1450:4001:80b::200e", "2001:7fd::1"} {
		addr := netip.MustParseAddr(s)
		var want netip.Prefix // brute force over the list
		for _, p := range prefixes {
			if p.Contains(addr) && (!want.IsValid() || p.Bits() > want.Bits()) {
				want = p
			}
		}
		got, c, ok := tbl.Lookup(addr)
		if !want.IsValid() {
			t.Fatalf("test address %v is not routed in the full table; pick another", addr)
		}
		if !ok || got != want || len(c) != 1 || c[0].Appliance != "global" {
			t.Errorf("Lookup(%v) = %v, %v, %v, want %v", addr, got, c, ok, want)
		}
	}
	if _, _, ok := tbl.Lookup(netip.MustParseAddr("10.1.2.3")); ok {
		t.Error("Lookup(10.1.2.3) matched; private space is not in a global table")
	}
}
