package cors

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const page = "http://127.0.0.1:18000"

func contentPolicy(t testing.TB, origins ...string) *Policy {
	t.Helper()
	p, err := New(Config{AllowedOrigins: origins, Methods: []string{"GET", "HEAD"},
		RequestHeaders: []string{"Range", "If-Range", "X-Ocdn-Measurement"}, MaxAge: 90 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// served records whether the wrapped handler ran.
type served struct{ n int }

func (s *served) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.n++
	w.Write([]byte("body"))
}

func do(p *Policy, method string, hdr map[string]string) (*httptest.ResponseRecorder, int) {
	var h served
	r := httptest.NewRequest(method, "/c/tok/t0000/video.mp4", nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	p.Wrap(&h).ServeHTTP(w, r)
	return w, h.n
}

// corsHeaders are the response headers this package sets.
func corsHeaders(h http.Header) map[string]string {
	out := map[string]string{}
	for _, k := range []string{hAllowOrigin, hAllowMethods, hAllowHeaders, hExposeHeaders, hMaxAge, hTimingAllow, hVary} {
		if v := h.Values(k); len(v) > 0 {
			out[k] = strings.Join(v, " | ")
		}
	}
	return out
}

func TestApply(t *testing.T) {
	p := contentPolicy(t, page, "https://player.example.com")
	expose := "Content-Range, Content-Length, ETag, Accept-Ranges, X-Ocdn-Appliance"
	for _, tc := range []struct {
		name     string
		method   string
		hdr      map[string]string
		code     int
		served   bool
		wantHdrs map[string]string
	}{
		{"no origin: untouched", "GET", map[string]string{"Range": "bytes=0-1"}, 200, true, map[string]string{}},
		{"allowed origin", "GET", map[string]string{"Origin": page, "Range": "bytes=0-1"}, 200, true, map[string]string{
			hAllowOrigin: page, hTimingAllow: page, hExposeHeaders: expose, hVary: "Origin"}},
		{"other origin: no CORS headers", "GET", map[string]string{"Origin": "http://evil.example"}, 200, true, map[string]string{}},
		{"origin differing in port", "GET", map[string]string{"Origin": "http://127.0.0.1:18001"}, 200, true, map[string]string{}},
		{"preflight for a range", "OPTIONS", map[string]string{"Origin": page, hRequestMethod: "GET", hRequestHeaders: "range"}, 204, false, map[string]string{
			hAllowOrigin: page, hAllowMethods: "GET, HEAD", hAllowHeaders: "range", hMaxAge: "90",
			hVary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}},
		{"preflight, headers in any case", "OPTIONS", map[string]string{"Origin": page, hRequestMethod: "HEAD", hRequestHeaders: "Range, X-OCDN-Measurement"}, 204, false, map[string]string{
			hAllowOrigin: page, hAllowMethods: "GET, HEAD", hAllowHeaders: "range, x-ocdn-measurement", hMaxAge: "90",
			hVary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}},
		{"preflight for a method not served", "OPTIONS", map[string]string{"Origin": page, hRequestMethod: "PUT"}, 403, false, map[string]string{
			hVary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}},
		{"preflight for a header not accepted", "OPTIONS", map[string]string{"Origin": page, hRequestMethod: "GET", hRequestHeaders: "range, authorization"}, 403, false, map[string]string{
			hVary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}},
		{"preflight from another origin", "OPTIONS", map[string]string{"Origin": "http://evil.example", hRequestMethod: "GET"}, 403, false, map[string]string{
			hVary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}},
		{"OPTIONS without request method is no preflight", "OPTIONS", map[string]string{"Origin": page}, 200, true, map[string]string{
			hAllowOrigin: page, hTimingAllow: page, hExposeHeaders: expose, hVary: "Origin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, n := do(p, tc.method, tc.hdr)
			if w.Code != tc.code || (n == 1) != tc.served {
				t.Errorf("status %d, handler ran %d times; want %d, ran: %v", w.Code, n, tc.code, tc.served)
			}
			if diff := cmp.Diff(tc.wantHdrs, corsHeaders(w.Header())); diff != "" {
				t.Errorf("CORS headers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRefusalSaysWhy(t *testing.T) {
	p := contentPolicy(t, page)
	for hdr, want := range map[string]map[string]string{
		`method "DELETE" is not served here (GET, HEAD)`: {"Origin": page, hRequestMethod: "DELETE"},
		`request header "x-custom" is not accepted here`: {"Origin": page, hRequestMethod: "GET", hRequestHeaders: "range,x-custom"},
		`origin "http://a.example" is not allowed`:       {"Origin": "http://a.example", hRequestMethod: "GET"},
	} {
		w, _ := do(p, "OPTIONS", want)
		if !strings.Contains(w.Body.String(), hdr) {
			t.Errorf("preflight %v answered %q, want it to say %q", want, w.Body.String(), hdr)
		}
	}
}

func TestAnyOrigin(t *testing.T) {
	p := contentPolicy(t, "*")
	w, _ := do(p, "GET", map[string]string{"Origin": "http://anywhere.example:8080"})
	want := map[string]string{hAllowOrigin: "*", hTimingAllow: "*", hExposeHeaders: strings.Join(DefaultExposedHeaders, ", ")}
	if diff := cmp.Diff(want, corsHeaders(w.Header())); diff != "" {
		t.Errorf("CORS headers (-want +got):\n%s", diff)
	}
	w, _ = do(p, "OPTIONS", map[string]string{"Origin": "http://anywhere.example:8080", hRequestMethod: "GET"})
	if w.Code != 204 || w.Header().Get(hAllowOrigin) != "*" {
		t.Errorf("preflight = %d %v, want 204 with *", w.Code, w.Header())
	}
}

// TestVaryKeepsWhatTheHandlerSet: a Vary already on the response is
// extended, not replaced.
func TestVaryKeepsWhatTheHandlerSet(t *testing.T) {
	p := contentPolicy(t, page)
	w := httptest.NewRecorder()
	w.Header().Set("Vary", "Accept-Encoding")
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Origin", page)
	if got := p.Apply(w, r); got != Allowed {
		t.Fatalf("Apply = %v, want Allowed", got)
	}
	if got := w.Header().Values("Vary"); !cmp.Equal(got, []string{"Accept-Encoding", "Origin"}) {
		t.Errorf("Vary = %q, want Accept-Encoding and Origin", got)
	}
}

func TestNilPolicyTouchesNothing(t *testing.T) {
	var p *Policy
	w, n := do(p, "OPTIONS", map[string]string{"Origin": page, hRequestMethod: "GET"})
	if n != 1 || len(corsHeaders(w.Header())) != 0 || p.Allows(page) {
		t.Errorf("nil policy: handler ran %d times, headers %v", n, w.Header())
	}
}

func TestNewNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Methods: []string{"GET"}}, "AllowedOrigins"},
		{Config{AllowedOrigins: []string{page}}, "Methods"},
		{Config{AllowedOrigins: []string{page + "/"}, Methods: []string{"GET"}}, "AllowedOrigins"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	p, err := New(Config{AllowedOrigins: []string{page}, Methods: []string{"GET"}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	do(p, "OPTIONS", map[string]string{"Origin": page, hRequestMethod: "GET"})
	do(p, "OPTIONS", map[string]string{"Origin": page, hRequestMethod: "POST"})
	do(p, "GET", map[string]string{"Origin": "http://other.example"})
	do(p, "GET", map[string]string{})
	for _, c := range []struct {
		vec   *prometheus.CounterVec
		label string
		want  float64
	}{{p.preflights, "allowed", 1}, {p.preflights, "method", 1}, {p.requests, "denied", 1}, {p.requests, "allowed", 0}} {
		var m dto.Metric
		if err := c.vec.WithLabelValues(c.label).Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetCounter().GetValue(); got != c.want {
			t.Errorf("%s = %v, want %v", c.label, got, c.want)
		}
	}
	mfs, err := reg.Gather()
	n := 0
	for _, mf := range mfs {
		n += len(mf.GetMetric())
	}
	if err != nil || n != 6 {
		t.Errorf("Gather = %d series, %v; want 6", n, err)
	}
}

// FuzzPreflight: whatever a client sends, a preflight is answered 204
// only for an allowed origin, a served method and accepted headers, and
// then with exactly those; Apply never panics.
func FuzzPreflight(f *testing.F) {
	f.Add(page, "GET", "range")
	f.Add(page, "PUT", "")
	f.Add("null", "GET", "range,,  ,X-OCDN-MEASUREMENT")
	f.Add(page, "GET", "authorization")
	f.Add("http://evil.example", "GET", "")
	p := contentPolicy(f, page)
	f.Fuzz(func(t *testing.T, origin, method, headers string) {
		r := httptest.NewRequest("OPTIONS", "/c/t/x/y", nil)
		r.Header[hOrigin] = []string{origin}
		r.Header[hRequestMethod] = []string{method}
		r.Header[hRequestHeaders] = []string{headers}
		w := httptest.NewRecorder()
		if got := p.Apply(w, r); got != Answered {
			t.Fatalf("Apply(preflight) = %v, want Answered", got)
		}
		ok := origin == page && (method == "GET" || method == "HEAD")
		for _, h := range requestedHeaders([]string{headers}) {
			ok = ok && p.headers[h]
		}
		switch {
		case ok && (w.Code != 204 || w.Header().Get(hAllowOrigin) != page):
			t.Fatalf("preflight %q %q %q = %d %v, want 204 for the page", origin, method, headers, w.Code, w.Header())
		case !ok && (w.Code != 403 || w.Header().Get(hAllowOrigin) != ""):
			t.Fatalf("preflight %q %q %q = %d %v, want 403 without Allow-Origin", origin, method, headers, w.Code, w.Header())
		}
	})
}

// discard is a ResponseWriter that keeps only headers, so the benchmarks
// measure the policy.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkApplyNoOrigin is what CORS costs every request but a
// browser's: compare with BenchmarkApplyNilPolicy (no cors section).
func BenchmarkApplyNoOrigin(b *testing.B) {
	benchApply(b, contentPolicy(b, page), "")
}

func BenchmarkApplyNilPolicy(b *testing.B) { benchApply(b, nil, "") }

func BenchmarkApplyAllowedOrigin(b *testing.B) {
	benchApply(b, contentPolicy(b, page, "https://player.example.com"), page)
}

func benchApply(b *testing.B, p *Policy, origin string) {
	r := httptest.NewRequest("GET", "/c/tok/t0000/video_1000k.mp4", nil)
	r.Header.Set("Range", "bytes=0-65535")
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		p.Apply(w, r)
	}
}
