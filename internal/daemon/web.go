package daemon

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/cors"
	"github.com/ocdn/ocdn/internal/webclient"
)

// What a page of another origin may ask of the control plane's API in a
// preflight: reading (steering, titles, recipes) and posting reports,
// with a JSON body and, for operators' pages, a bearer token.
var (
	apiMethods        = []string{http.MethodGet, http.MethodHead, http.MethodPost}
	apiRequestHeaders = []string{"Content-Type", "Authorization"}
)

// withBrowsers serves the browser pages (internal/webclient: /play/,
// /speed/, /probe/) beside the control plane's API, and puts the API
// behind the cors section's policy when there is one.
func withBrowsers(api http.Handler, cfg *config.Control, reg prometheus.Registerer) (http.Handler, error) {
	p, err := cors.FromConfig(cfg.CORS, apiMethods, apiRequestHeaders, reg)
	if err != nil {
		return nil, err
	}
	return p.Wrap(webclient.Mount(api)), nil
}
