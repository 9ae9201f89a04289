package edge

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	const size = 1000
	many := "bytes=" + strings.TrimSuffix(strings.Repeat("0-0,", MaxRanges+1), ",")
	atCap := "bytes=" + strings.TrimSuffix(strings.Repeat("1-1,", MaxRanges), ",")
	tests := []struct {
		in      string
		size    int64
		want    []Range
		wantErr error
	}{
		{"bytes=0-0", size, []Range{{0, 0}}, nil},
		{"bytes=0-499", size, []Range{{0, 499}}, nil},
		{"bytes=500-999", size, []Range{{500, 999}}, nil},
		{"bytes=500-", size, []Range{{500, 999}}, nil},
		{"bytes=-500", size, []Range{{500, 999}}, nil},
		{"bytes=-1", size, []Range{{999, 999}}, nil},
		{"bytes=-2000", size, []Range{{0, 999}}, nil},
		{"bytes=999-", size, []Range{{999, 999}}, nil},
		{"bytes=900-2000", size, []Range{{900, 999}}, nil},
		// Past int64: still a valid position past the end, clamped.
		{"bytes=0-99999999999999999999999", size, []Range{{0, 999}}, nil},
		{"bytes=-99999999999999999999999", size, []Range{{0, 999}}, nil},
		{"BYTES=1-2", size, []Range{{1, 2}}, nil},
		{"bytes= 1-2 , 4-5 ", size, []Range{{1, 2}, {4, 5}}, nil},
		{"bytes=1-2,,4-5,", size, []Range{{1, 2}, {4, 5}}, nil},
		{"bytes=0-1,5-6,-1", size, []Range{{0, 1}, {5, 6}, {999, 999}}, nil},
		{"bytes=5-6,0-1", size, []Range{{5, 6}, {0, 1}}, nil},     // asked order kept
		{"bytes=0-10,5-15", size, []Range{{0, 10}, {5, 15}}, nil}, // overlap within size: served
		{"bytes=0-1,2000-3000", size, []Range{{0, 1}}, nil},       // unsatisfiable one dropped
		{"bytes=1000-", size, nil, ErrUnsatisfiableRange},         // first-pos = size
		{"bytes=2000-3000", size, nil, ErrUnsatisfiableRange},     //
		{"bytes=-0", size, nil, ErrUnsatisfiableRange},            // empty suffix
		{"bytes=99999999999999999999-", size, nil, ErrUnsatisfiableRange},
		{"bytes=1000-1001,2000-", size, nil, ErrUnsatisfiableRange},
		{"bytes=0-", 0, nil, ErrUnsatisfiableRange},
		{"bytes=-5", 0, nil, ErrUnsatisfiableRange},
		{"", size, nil, ErrMalformedRange},
		{"bytes", size, nil, ErrMalformedRange},
		{"bytes=", size, nil, ErrMalformedRange},
		{"bytes=,", size, nil, ErrMalformedRange},
		{"items=0-1", size, nil, ErrMalformedRange},
		{"bytes=1", size, nil, ErrMalformedRange},
		{"bytes=-", size, nil, ErrMalformedRange},
		{"bytes=a-b", size, nil, ErrMalformedRange},
		{"bytes=5-1", size, nil, ErrMalformedRange},
		{"bytes=1-2-3", size, nil, ErrMalformedRange},
		{"bytes=+1-2", size, nil, ErrMalformedRange},
		{"bytes=1 - 2", size, nil, ErrMalformedRange},
		{"bytes=0-1,x", size, nil, ErrMalformedRange},
		{"bytes=--1", size, nil, ErrMalformedRange},
		{"bytes=0x10-20", size, nil, ErrMalformedRange},
		{atCap, size, repeatRange(Range{1, 1}, MaxRanges), nil},
		{many, size, nil, ErrExcessiveRanges},
		{many + ",zz", size, nil, ErrMalformedRange},
		{"bytes=0-999,0-999", size, nil, ErrExcessiveRanges}, // twice the file
		{"bytes=0-,-1", size, nil, ErrExcessiveRanges},
	}
	for _, tt := range tests {
		got, err := ParseRange(tt.in, tt.size)
		if !errors.Is(err, tt.wantErr) || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseRange(%.60q, %d) = %v, %v; want %v, %v", tt.in, tt.size, got, err, tt.want, tt.wantErr)
		}
	}
}

func repeatRange(r Range, n int) []Range {
	out := make([]Range, n)
	for i := range out {
		out[i] = r
	}
	return out
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-0", "bytes=-5", "bytes=5-", "bytes=0-1,3-4", "bytes=1-0",
		"bytes=0-99999999999999999999", "bytes= ,0-1", "bytes=-0", "items=1-2"} {
		f.Add(s, int64(1000))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
			if size < 0 {
				size = 0
			}
		}
		rs, err := ParseRange(h, size)
		if err != nil {
			if rs != nil {
				t.Fatalf("ParseRange(%q, %d) = %v with error %v", h, size, rs, err)
			}
			return
		}
		if len(rs) == 0 || len(rs) > MaxRanges {
			t.Fatalf("ParseRange(%q, %d) = %d ranges", h, size, len(rs))
		}
		var total int64
		for _, r := range rs {
			if r.Start < 0 || r.Start > r.End || r.End >= size {
				t.Fatalf("ParseRange(%q, %d) = %v: range outside [0,%d) or reversed", h, size, rs, size)
			}
			total += r.Length()
		}
		if len(rs) > 1 && total > size {
			t.Fatalf("ParseRange(%q, %d) = %v: %d bytes from a %d-byte file", h, size, rs, total, size)
		}
		// A single well-formed int-range comes back exactly (clamped).
		var a, b int64
		if n, _ := fmt.Sscanf(h, "bytes=%d-%d", &a, &b); n == 2 && len(rs) == 1 && h == fmt.Sprintf("bytes=%d-%d", a, b) {
			if rs[0].Start != a || rs[0].End != min(b, size-1) {
				t.Fatalf("ParseRange(%q, %d) = %v, want {%d %d}", h, size, rs, a, min(b, size-1))
			}
		}
	})
}

func BenchmarkParseRange(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRange("bytes=1048576-3145727", 1<<30); err != nil {
			b.Fatal(err)
		}
	}
}

func TestETagLists(t *testing.T) {
	const e = `"abc"`
	tests := []struct {
		list        string
		weak, match bool
	}{
		{`"abc"`, true, true},
		{`"abc"`, false, true},
		{`W/"abc"`, true, true},
		{`W/"abc"`, false, false},
		{`"x", "abc"`, true, true},
		{`"x",W/"abc"`, true, true},
		{`*`, false, true},
		{`"x"`, true, false},
		{`"a,b", "abc"`, true, true},
		{`"x, "abc"`, true, false}, // `"x, "` is one tag; the rest is garbage
		{`abc`, true, false},
		{``, true, false},
	}
	for _, tt := range tests {
		if got := etagList(tt.list, e, tt.weak); got != tt.match {
			t.Errorf("etagList(%q, %q, weak=%v) = %v, want %v", tt.list, e, tt.weak, got, tt.match)
		}
	}
	for v, want := range map[string]bool{`"abc"`: true, `W/"abc"`: false, `"abd"`: false,
		"Wed, 21 Oct 2015 07:28:00 GMT": false, `"abc" x`: false, ``: true} {
		if got := ifRangeMatches(v, e); got != want {
			t.Errorf("ifRangeMatches(%q, %q) = %v, want %v", v, e, got, want)
		}
	}
}
