package console

import (
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/ocdn/ocdn/internal/config"
)

// The console's own script and style sheet are in static/ (committed).
// vendor/ holds what `make console-assets` installs from npm: uPlot and
// the Natural Earth outline of world-atlas. Only vendor/README.md is
// committed, so the directory always exists and `go build` and `go vet`
// work on a fresh clone before npm has run; such a binary serves every
// page without plots and map outline and says so (the browser test
// fails with OCDN_REQUIRE_EXTERNAL=1 instead). A committed placeholder
// that the make target overwrote would leave a modified tree after every
// build and invite committing downloaded files.

//go:embed static
var staticFS embed.FS

//go:embed vendor
var vendorFS embed.FS

//go:embed templates
var templateFS embed.FS

// Files of vendor/ the pages use.
const (
	vendorChartJS  = "uPlot.iife.min.js"
	vendorChartCSS = "uPlot.min.css"
	vendorOutline  = "countries-110m.json"
)

// assets says which vendored pieces this binary carries.
type assets struct{ Chart, Map bool }

func vendored(name string) bool {
	_, err := fs.Stat(vendorFS, "vendor/"+name)
	return err == nil
}

func embeddedAssets() assets {
	return assets{Chart: vendored(vendorChartJS) && vendored(vendorChartCSS), Map: vendored(vendorOutline)}
}

// MissingAssets lists the npm-installed files this binary was built
// without (empty when `make console-assets` ran before the build).
func MissingAssets() []string {
	var out []string
	for _, n := range []string{vendorChartJS, vendorChartCSS, vendorOutline} {
		if !vendored(n) {
			out = append(out, "internal/console/vendor/"+n)
		}
	}
	return out
}

// assetHandler serves an embedded directory under prefix; the files
// change only with the binary, so browsers may keep them for an hour.
func assetHandler(fsys embed.FS, dir, prefix string) http.Handler {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // the directory is embedded above
	}
	files := http.StripPrefix(prefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

// geoMap is the fleet map's fixed part: the frame around the sites and
// the outline within it, computed once.
type geoMap struct {
	view    mapView
	outline string // SVG path; empty without the vendored outline
}

func newGeoMap(sites []config.Site, log *slog.Logger) geoMap {
	g := geoMap{view: viewFor(sites)}
	data, err := vendorFS.ReadFile("vendor/" + vendorOutline)
	if err != nil {
		return g
	}
	rings, err := decodeTopoJSON(data, "countries")
	if err != nil {
		log.Error("the embedded world outline does not decode; the map shows sites only", "err", err)
		return g
	}
	g.outline = g.view.path(rings)
	return g
}

// mapSite is a site marker on the map.
type mapSite struct {
	ID, Kind, State string
	X, Y, LabelY    float64
	Appliances      int
	Serving         int
}

// markers places the sites, moving markers and labels apart where sites
// crowd (the lab's Amsterdam sites are a few kilometres apart).
func (g geoMap) markers(sites []mapSite) []mapSite {
	sort.Slice(sites, func(i, j int) bool {
		if sites[i].Y != sites[j].Y {
			return sites[i].Y < sites[j].Y
		}
		return sites[i].ID < sites[j].ID
	})
	var placed []mapSite
	for _, s := range sites {
		// Sites a few kilometres apart would hide one marker under the
		// other: set the later one beside it.
		for _, p := range placed {
			if abs(p.X-s.X) < 12 && abs(p.Y-s.Y) < 12 {
				s.X = p.X + 16
			}
		}
		s.LabelY = s.Y + 4
		for _, p := range placed {
			if abs(p.X-s.X) < 160 && abs(p.LabelY-s.LabelY) < 16 {
				s.LabelY = p.LabelY + 16
			}
		}
		placed = append(placed, s)
	}
	return placed
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// parseTemplates builds one template set per page: the layout and the
// page's own file.
func parseTemplates() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", n, err)
		}
		out[base] = t
	}
	return out, nil
}
