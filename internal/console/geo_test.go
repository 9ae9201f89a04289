package console

import (
	"math"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ocdn/ocdn/internal/config"
)

// A quantized topology of two squares sharing an edge (arc 1 is used by
// both, reversed by the second), plus a "land" object repeating them.
const twoSquares = `{"type":"Topology",
 "transform":{"scale":[1,1],"translate":[0,0]},
 "objects":{
  "countries":{"type":"GeometryCollection","geometries":[
    {"type":"Polygon","arcs":[[0,1]]},
    {"type":"MultiPolygon","arcs":[[[2,-2]]]}]},
  "land":{"type":"GeometryCollection","geometries":[{"type":"Polygon","arcs":[[0,2]]}]}},
 "arcs":[
  [[1,0],[-1,0],[0,1],[1,0]],
  [[1,1],[0,-1]],
  [[1,1],[1,0],[0,-1],[-1,0]]]}`

func TestDecodeTopoJSON(t *testing.T) {
	got, err := decodeTopoJSON([]byte(twoSquares), "countries")
	if err != nil {
		t.Fatal(err)
	}
	want := []ring{
		{{1, 0}, {0, 0}, {0, 1}, {1, 1}, {1, 0}},
		{{1, 1}, {2, 1}, {2, 0}, {1, 0}, {1, 1}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decodeTopoJSON(two squares) mismatch (-want +got):\n%s", diff)
	}
	all, err := decodeTopoJSON([]byte(twoSquares), "")
	if err != nil || len(all) != 3 {
		t.Errorf("decodeTopoJSON(all objects) = %d rings, %v; want 3", len(all), err)
	}
}

func TestDecodeTopoJSONBadInput(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"not json", `{`, "topojson"},
		{"not a topology", `{"type":"FeatureCollection"}`, "want Topology"},
		{"arc out of range", strings.Replace(twoSquares, `[[0,1]]`, `[[0,7]]`, 1), "arc index out of range"},
		{"short point", strings.Replace(twoSquares, `[[1,1],[0,-1]]`, `[[1],[0,-1]]`, 1), "coordinates"},
		{"not a latitude", strings.Replace(twoSquares, `"scale":[1,1]`, `"scale":[1,100]`, 1), "not a longitude and latitude"},
	} {
		if _, err := decodeTopoJSON([]byte(tc.in), "countries"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: decodeTopoJSON = %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
}

// TestEmbeddedOutline: the world outline this binary carries decodes, and
// the map of the lab's sites frames Europe.
func TestEmbeddedOutline(t *testing.T) {
	data, err := vendorFS.ReadFile("vendor/" + vendorOutline)
	if err != nil {
		if os.Getenv("OCDN_REQUIRE_EXTERNAL") == "1" {
			t.Fatalf("no embedded outline (%v): run make console-assets before the tests", err)
		}
		t.Skipf("no embedded outline (%v): make console-assets", err)
	}
	rings, err := decodeTopoJSON(data, "countries")
	if err != nil {
		t.Fatal(err)
	}
	if len(rings) < 200 {
		t.Errorf("%d rings of country outline, want hundreds", len(rings))
	}
	v := viewFor([]config.Site{{Location: config.Location{Lat: 52.37, Lon: 4.90}}, {Location: config.Location{Lat: 50.11, Lon: 8.68}}})
	x, y := v.project(4.90, 52.37)
	if x < 0 || x > v.W || y < 0 || y > v.H {
		t.Errorf("Amsterdam at (%.0f, %.0f), outside the %vx%v frame", x, y, v.W, v.H)
	}
	if p := v.path(rings); len(p) < 1000 || strings.Contains(p, "NaN") {
		t.Errorf("path of the outline around the lab's sites: %d bytes (NaN: %v)", len(p), strings.Contains(p, "NaN"))
	}
}

func TestViewWithoutSites(t *testing.T) {
	v := viewFor(nil)
	if v.box != [4]float64{-180, -60, 180, 80} || math.IsNaN(v.H) || v.H <= 0 {
		t.Errorf("viewFor(no sites) = %+v, want the whole world", v)
	}
}

func FuzzDecodeTopoJSON(f *testing.F) {
	f.Add([]byte(twoSquares))
	f.Add([]byte(`{"type":"Topology","objects":{"x":{"type":"Polygon","arcs":[[-1]]}},"arcs":[[[0,0],[1,1]]]}`))
	f.Add([]byte(`{"type":"Topology","objects":{"x":{"type":"GeometryCollection","geometries":[{"type":"GeometryCollection"}]}},"arcs":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rings, err := decodeTopoJSON(data, "countries")
		if err != nil {
			return
		}
		for _, r := range rings {
			for _, p := range r {
				if math.IsNaN(p[0]) || math.Abs(p[0]) > 180.0001 || math.Abs(p[1]) > 90.0001 {
					t.Fatalf("accepted point %v outside longitude and latitude", p)
				}
			}
		}
		viewFor(nil).path(rings) // drawing an accepted outline never panics
	})
}
