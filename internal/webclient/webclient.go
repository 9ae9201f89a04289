// Package webclient provides the pages a browser runs against the CDN,
// served by the control plane beside its API:
//
//   - /play/?title=T — a video player: hls.js (from npm, embedded at build
//     time; see vendor/README.md) plays the title's master playlist from
//     the first URL steering hands the page and fails over down the list
//     when a request fails or times out; at the end it reports QoE to
//     POST /v1/reports.
//   - /speed/?title=T — a fast.com-style speed test against the steered
//     appliances: unloaded latency, parallel downloads added while the
//     rate grows, a stop-when-stable rule, loaded latency; the result
//     shows its servers and is reported like a probe.
//   - /probe/ — a Probnik-style probe: the control plane's recipe run in
//     the page, pulses in sequence per target, timings from Resource
//     Timing (which the appliances' Timing-Allow-Origin unlocks).
//
// The pages are static files; everything they know comes from the API
// (steering, titles, recipes) of the origin that served them, or of the
// control plane named by ?control=URL (which then needs a cors section
// allowing the page's origin). Every report carries the signed context
// of a recipe the control plane issued, which the ingester checks for
// reports from browsers (measure.ContextSigner). Each page keeps its
// state in a window object (ocdnPlayer, ocdnSpeed, ocdnProbe) that the
// Chromium tests read.
package webclient

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// Paths of the pages, and the prefix of their scripts and styles.
const (
	PlayPath   = "/play/"
	SpeedPath  = "/speed/"
	ProbePath  = "/probe/"
	AssetsPath = "/web/"
)

//go:embed static
var staticFS embed.FS

// vendor/ holds what `make webclient-assets` installs from npm (hls.js).
// Only its README and .gitignore are committed, so the directory exists
// and a fresh clone builds and vets before npm has run; such a binary
// serves a player page that says the library is missing.
//
//go:embed vendor
var vendorFS embed.FS

// PlayerLibrary is the embedded file of the player library.
const PlayerLibrary = "hls.min.js"

// MissingAssets lists the npm-installed files this binary was built
// without (empty when `make webclient-assets` ran before the build).
func MissingAssets() []string {
	if _, err := fs.Stat(vendorFS, "vendor/"+PlayerLibrary); err != nil {
		return []string{"internal/webclient/vendor/" + PlayerLibrary}
	}
	return nil
}

// pages maps each page's path to its HTML file.
var pages = map[string]string{PlayPath: "play.html", SpeedPath: "speed.html", ProbePath: "probe.html"}

// contentSecurity limits what the pages may do: their own scripts only,
// fetches and media from anywhere (appliances are other origins; hls.js
// feeds the video element from a blob: MediaSource and may run its
// demuxer in a blob: worker).
const contentSecurity = "default-src 'self'; connect-src *; media-src 'self' blob:; worker-src 'self' blob:; img-src 'self' data:; style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the pages and their assets.
func Handler() http.Handler {
	static, _ := fs.Sub(staticFS, "static")
	vendor, _ := fs.Sub(vendorFS, "vendor")
	mux := http.NewServeMux()
	for path, file := range pages {
		mux.HandleFunc("GET "+path+"{$}", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", contentSecurity)
			w.Header().Set("Cache-Control", "no-cache")
			http.ServeFileFS(w, r, static, file)
		})
		// /play is /play/: the pages' relative links need the slash.
		mux.HandleFunc("GET "+strings.TrimSuffix(path, "/"), func(w http.ResponseWriter, r *http.Request) {
			to := path
			if r.URL.RawQuery != "" {
				to += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, to, http.StatusMovedPermanently)
		})
	}
	assets := http.StripPrefix(AssetsPath, http.FileServerFS(static))
	mux.HandleFunc("GET "+AssetsPath+"vendor/", func(w http.ResponseWriter, r *http.Request) {
		serveAsset(w, r, http.StripPrefix(AssetsPath+"vendor/", http.FileServerFS(vendor)))
	})
	mux.HandleFunc("GET "+AssetsPath, func(w http.ResponseWriter, r *http.Request) { serveAsset(w, r, assets) })
	return mux
}

// serveAsset serves a script or style sheet; they change only with the
// binary. Directories are not listed.
func serveAsset(w http.ResponseWriter, r *http.Request, h http.Handler) {
	if strings.HasSuffix(r.URL.Path, "/") {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	h.ServeHTTP(w, r)
}

// Mount serves the pages in front of api: their paths go to Handler,
// everything else to api.
func Mount(api http.Handler) http.Handler {
	web := Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isWebPath(r.URL.Path) {
			web.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

func isWebPath(p string) bool {
	for _, pre := range []string{PlayPath, SpeedPath, ProbePath, AssetsPath} {
		if strings.HasPrefix(p, pre) || p == strings.TrimSuffix(pre, "/") {
			return true
		}
	}
	return false
}
