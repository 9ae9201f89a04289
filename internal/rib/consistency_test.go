package rib

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestConsistency(t *testing.T) {
	r := New()
	p1, p2, p3, p4 := pfx("10.1.0.0/16"), pfx("10.2.0.0/16"), pfx("10.3.0.0/16"), pfx("2001:db8::/32")
	heard := map[string][]netip.Prefix{
		"ams1": {p1, p2, p4},
		"ams2": {p1},
		"fra1": {p1, p3, p4},
		"lab9": {p3}, // in no site
	}
	for app, ps := range heard {
		var rs []Route
		for _, p := range ps {
			rs = append(rs, Route{Prefix: p})
		}
		if err := r.Replace(app, rs); err != nil {
			t.Fatal(err)
		}
	}
	sites := map[string][]string{
		"ams":   {"ams2", "ams1", "ams1"}, // order and duplicates do not matter
		"fra":   {"fra1"},
		"empty": nil,
	}
	got := Consistency(r.Snapshot(), sites)
	want := Report{
		Sites: []SiteReport{
			{Site: "ams", Appliances: []string{"ams1", "ams2"}, Partial: []PartialPrefix{
				{Prefix: p2, Missing: []string{"ams2"}},
				{Prefix: p4, Missing: []string{"ams2"}},
			}},
			{Site: "empty", Appliances: []string{}, Partial: []PartialPrefix{}},
			{Site: "fra", Appliances: []string{"fra1"}, Partial: []PartialPrefix{}},
		},
		NoBackup: []NoBackup{
			{Prefix: p2, Site: "ams"},
			{Prefix: p3, Site: "fra"}, // lab9 belongs to no site, so it is no backup
		},
		Unassigned: []string{"lab9"},
	}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("Consistency() (-want +got):\n%s", diff)
	}

	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"sites":`, `"no_backup":`, `"partial":`, `"missing":["ams2"]`, `"prefix":"10.2.0.0/16"`, `"unassigned_appliances":["lab9"]`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON report %s lacks %s", b, key)
		}
	}
}

func TestConsistencyEmpty(t *testing.T) {
	b, err := json.Marshal(Consistency(New().Snapshot(), nil))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"sites":[],"no_backup":[]}`; got != want {
		t.Errorf("empty report JSON = %s, want %s", got, want)
	}
}
