package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/ocdn/ocdn/internal/config"
)

// The fleet map is drawn on the server as SVG from a TopoJSON outline of
// the world's countries (Natural Earth, public domain, from the npm
// package world-atlas, embedded at build time): no tile server, no map
// script, and a page that reads the same with scripts off.

// Limits on the outline file: it is embedded, but read as outside input
// (a fuzz target feeds it garbage), so a bad file fails instead of
// allocating without bound.
const (
	maxTopoArcs   = 1 << 16
	maxTopoPoints = 1 << 21
	maxTopoDepth  = 8
)

// ring is a closed line of (lon, lat) points.
type ring [][2]float64

type topology struct {
	Type      string `json:"type"`
	Transform *struct {
		Scale     [2]float64 `json:"scale"`
		Translate [2]float64 `json:"translate"`
	} `json:"transform"`
	Objects map[string]*topoGeometry `json:"objects"`
	Arcs    [][][]float64            `json:"arcs"`
}

type topoGeometry struct {
	Type       string          `json:"type"`
	Arcs       json.RawMessage `json:"arcs"`
	Geometries []*topoGeometry `json:"geometries"`
}

// decodeTopoJSON returns every polygon ring of the named object of a
// TopoJSON topology (of every object when name is "" or absent), in
// longitude and latitude. (world-atlas files hold "countries" and
// "land", the same areas twice.)
func decodeTopoJSON(data []byte, name string) ([]ring, error) {
	var t topology
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("topojson: %w", err)
	}
	if t.Type != "Topology" {
		return nil, fmt.Errorf("topojson: type %q, want Topology", t.Type)
	}
	if len(t.Arcs) > maxTopoArcs {
		return nil, fmt.Errorf("topojson: %d arcs, at most %d", len(t.Arcs), maxTopoArcs)
	}
	arcs, err := t.decodeArcs()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(t.Objects))
	for n := range t.Objects {
		names = append(names, n)
	}
	sort.Strings(names)
	if _, ok := t.Objects[name]; ok {
		names = []string{name}
	}
	var out []ring
	for _, n := range names {
		if out, err = appendRings(out, t.Objects[n], arcs, 0); err != nil {
			return nil, fmt.Errorf("topojson: objects.%s: %w", n, err)
		}
	}
	return out, nil
}

// decodeArcs undoes quantization (delta-encoded integers scaled by the
// transform) and checks every coordinate is a longitude and latitude.
func (t *topology) decodeArcs() ([]ring, error) {
	out := make([]ring, len(t.Arcs))
	points := 0
	for i, arc := range t.Arcs {
		points += len(arc)
		if points > maxTopoPoints {
			return nil, fmt.Errorf("topojson: more than %d points", maxTopoPoints)
		}
		r := make(ring, len(arc))
		var x, y float64
		for j, p := range arc {
			if len(p) < 2 {
				return nil, fmt.Errorf("topojson: arcs[%d][%d]: %d coordinates, want at least 2", i, j, len(p))
			}
			lon, lat := p[0], p[1]
			if tr := t.Transform; tr != nil {
				x, y = x+p[0], y+p[1]
				lon, lat = x*tr.Scale[0]+tr.Translate[0], y*tr.Scale[1]+tr.Translate[1]
			}
			if !(lon >= -180.0001 && lon <= 180.0001 && lat >= -90.0001 && lat <= 90.0001) {
				return nil, fmt.Errorf("topojson: arcs[%d][%d]: (%g, %g) is not a longitude and latitude", i, j, lon, lat)
			}
			r[j] = [2]float64{lon, lat}
		}
		out[i] = r
	}
	return out, nil
}

var errArcIndex = errors.New("arc index out of range")

func appendRings(out []ring, g *topoGeometry, arcs []ring, depth int) ([]ring, error) {
	if g == nil {
		return out, nil
	}
	if depth > maxTopoDepth {
		return nil, errors.New("geometry collections nested too deep")
	}
	switch g.Type {
	case "GeometryCollection":
		for _, c := range g.Geometries {
			var err error
			if out, err = appendRings(out, c, arcs, depth+1); err != nil {
				return nil, err
			}
		}
	case "Polygon":
		var rings [][]int
		if err := json.Unmarshal(g.Arcs, &rings); err != nil {
			return nil, fmt.Errorf("polygon arcs: %w", err)
		}
		for _, r := range rings {
			rr, err := stitch(r, arcs)
			if err != nil {
				return nil, err
			}
			out = append(out, rr)
		}
	case "MultiPolygon":
		var polys [][][]int
		if err := json.Unmarshal(g.Arcs, &polys); err != nil {
			return nil, fmt.Errorf("multipolygon arcs: %w", err)
		}
		for _, p := range polys {
			for _, r := range p {
				rr, err := stitch(r, arcs)
				if err != nil {
					return nil, err
				}
				out = append(out, rr)
			}
		}
	}
	// Points and lines have no area to draw; other types are skipped.
	return out, nil
}

// stitch joins a ring's arcs: a negative index ~i is arc i reversed, and
// each arc after the first repeats the previous one's last point.
func stitch(idx []int, arcs []ring) (ring, error) {
	var out ring
	for k, i := range idx {
		rev := i < 0
		if rev {
			i = ^i
		}
		if i < 0 || i >= len(arcs) {
			return nil, fmt.Errorf("%w: %d of %d", errArcIndex, i, len(arcs))
		}
		a := arcs[i]
		for j := range a {
			p := a[j]
			if rev {
				p = a[len(a)-1-j]
			}
			if k > 0 && j == 0 {
				continue
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// mapView is an equirectangular projection of a longitude and latitude
// box onto an SVG canvas: x shrinks by the cosine of the middle latitude,
// so a region looks as it does on a globe near its centre.
type mapView struct {
	lon0, lat1, k, cos float64
	W, H               float64
	box                [4]float64 // lon0, lat0, lon1, lat1
}

// viewFor frames the sites (at least 24° of longitude, padded) on a
// canvas 800 units wide; with no sites it shows the whole world.
func viewFor(sites []config.Site) mapView {
	lon0, lon1, lat0, lat1 := 180.0, -180.0, 90.0, -90.0
	for _, s := range sites {
		lon0, lon1 = math.Min(lon0, s.Location.Lon), math.Max(lon1, s.Location.Lon)
		lat0, lat1 = math.Min(lat0, s.Location.Lat), math.Max(lat1, s.Location.Lat)
	}
	if len(sites) == 0 {
		lon0, lon1, lat0, lat1 = -180, 180, -60, 80
	} else {
		midLon, midLat := (lon0+lon1)/2, (lat0+lat1)/2
		spanLon := math.Max((lon1-lon0)*1.4, 24)
		spanLat := math.Max((lat1-lat0)*1.4, 14)
		lon0, lon1 = midLon-spanLon/2, midLon+spanLon/2
		lat0, lat1 = math.Max(midLat-spanLat/2, -85), math.Min(midLat+spanLat/2, 85)
	}
	v := mapView{lon0: lon0, lat1: lat1, W: 800, box: [4]float64{lon0, lat0, lon1, lat1}}
	v.cos = math.Max(math.Cos((lat0+lat1)/2*math.Pi/180), 0.2)
	v.k = v.W / ((lon1 - lon0) * v.cos)
	v.H = math.Min(math.Round((lat1-lat0)*v.k), 600)
	return v
}

func (v mapView) project(lon, lat float64) (x, y float64) {
	return (lon - v.lon0) * v.cos * v.k, (v.lat1 - lat) * v.k
}

// path is the SVG path of the rings that reach into the view, with one
// decimal: enough at this size, and a few kilobytes for a region.
func (v mapView) path(rings []ring) string {
	var b strings.Builder
	for _, r := range rings {
		if len(r) < 3 || !v.touches(r) {
			continue
		}
		for i, p := range r {
			x, y := v.project(p[0], p[1])
			if i == 0 {
				b.WriteByte('M')
			} else {
				b.WriteByte('L')
			}
			b.WriteString(strconv.FormatFloat(x, 'f', 1, 64))
			b.WriteByte(',')
			b.WriteString(strconv.FormatFloat(y, 'f', 1, 64))
		}
		b.WriteByte('Z')
	}
	return b.String()
}

// touches reports whether r's bounding box meets the view's (with a
// margin, so coasts just outside still frame the picture).
func (v mapView) touches(r ring) bool {
	lon0, lat0, lon1, lat1 := 180.0, 90.0, -180.0, -90.0
	for _, p := range r {
		lon0, lon1 = math.Min(lon0, p[0]), math.Max(lon1, p[0])
		lat0, lat1 = math.Min(lat0, p[1]), math.Max(lat1, p[1])
	}
	const m = 5
	return lon1 >= v.box[0]-m && lon0 <= v.box[2]+m && lat1 >= v.box[1]-m && lat0 <= v.box[3]+m
}
