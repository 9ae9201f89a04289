package webclient

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMountServesPagesAndPassesTheRest(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("api " + r.URL.Path)) })
	h := Mount(api)
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w
	}
	for path, want := range map[string]string{PlayPath: "/web/play.js", SpeedPath: "/web/speed.js", ProbePath: "/web/probe.js"} {
		w := get(path)
		if w.Code != 200 || !strings.Contains(w.Body.String(), want) || !strings.Contains(w.Header().Get("Content-Security-Policy"), "connect-src *") {
			t.Errorf("GET %s = %d %v, want the page loading %s under the CSP", path, w.Code, w.Header(), want)
		}
	}
	if w := get("/play?title=hls0000"); w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != PlayPath+"?title=hls0000" {
		t.Errorf("GET /play = %d %v, want a redirect to %s", w.Code, w.Header(), PlayPath)
	}
	if w := get("/web/common.js"); w.Code != 200 || !strings.Contains(w.Header().Get("Content-Type"), "javascript") || !strings.Contains(w.Body.String(), "const ocdn") {
		t.Errorf("GET /web/common.js = %d %v", w.Code, w.Header())
	}
	for _, path := range []string{"/web/", "/web/vendor/", "/web/nothing.js", "/play/x"} {
		if w := get(path); w.Code != 404 {
			t.Errorf("GET %s = %d, want 404", path, w.Code)
		}
	}
	if w := get("/v1/steer"); w.Body.String() != "api /v1/steer" {
		t.Errorf("GET /v1/steer = %q, want it passed to the API", w.Body.String())
	}
	if m := MissingAssets(); len(m) == 0 {
		if w := get("/web/vendor/" + PlayerLibrary); w.Code != 200 || w.Body.Len() < 100_000 {
			t.Errorf("GET the player library = %d, %d bytes", w.Code, w.Body.Len())
		}
	}
}
