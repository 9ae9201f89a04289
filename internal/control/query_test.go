package control

import (
	"net/url"
	"testing"
)

func TestQueryValues(t *testing.T) {
	keys := []string{"n", "files", "a b"}
	for _, tc := range []struct {
		raw  string
		want [3]string
	}{
		{"files=t1/a.mp4&n=3", [3]string{"3", "t1/a.mp4", ""}},
		{"files=t1%2Fa.mp4", [3]string{"", "t1/a.mp4", ""}},
		{"a+b=c+d", [3]string{"", "", "c d"}},
		{"n=1&n=2", [3]string{"1", "", ""}},
		{"n=&n=2", [3]string{"", "", ""}},     // the first value wins, even empty
		{"n=%zz&n=2", [3]string{"2", "", ""}}, // a bad escape drops the pair
		{"n=1;x&n=2", [3]string{"2", "", ""}}, // so does a semicolon
		{"files&n=2", [3]string{"2", "", ""}},
		{"", [3]string{}},
	} {
		var got [3]string
		queryValues(tc.raw, keys, got[:])
		if got != tc.want {
			t.Errorf("queryValues(%q) = %q, want %q", tc.raw, got, tc.want)
		}
	}
}

func FuzzQueryValues(f *testing.F) {
	for _, s := range []string{"files=t1/a.mp4&n=3&client=10.0.0.1", "n=%41&n=2", "a;b=1&n=x", "&&=&n", "n+=%2B+", "=0"} {
		f.Add(s, "n", "")
	}
	f.Fuzz(func(t *testing.T, raw, key1, key2 string) {
		want, _ := url.ParseQuery(raw)
		got := make([]string, 2)
		queryValues(raw, []string{key1, key2}, got)
		if got[0] != want.Get(key1) || got[1] != want.Get(key2) {
			t.Errorf("queryValues(%q, [%q %q]) = %q, url.ParseQuery says [%q %q]", raw, key1, key2, got, want.Get(key1), want.Get(key2))
		}
	})
}
