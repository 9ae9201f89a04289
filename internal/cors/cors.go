// Package cors provides the Cross-Origin Resource Sharing policy of a
// daemon's HTTP endpoints: which web origins may read its responses from
// a browser, which response headers they may read, and the answers to
// the preflights browsers send before requests that are not "simple"
// (a ranged GET is not: Range with anything but one plain range, and any
// custom header, makes a browser ask first).
//
// CORS only tells a browser what a page may read; it grants nothing the
// request's own credentials (content tokens, bearer tokens) do not.
// Browsers add Origin to every cross-origin request, so a request without
// one is left alone and costs one map lookup; see Policy.Apply.
//
// Allowed origins also get Timing-Allow-Origin, so a page's Resource
// Timing shows DNS, connect, TLS and first-byte times of its fetches
// (without it a browser zeroes them for cross-origin responses).
package cors

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/config"
)

// ApplianceHeader names the appliance that served a response; it is set
// on cross-origin content responses so a page knows whom it measured.
const ApplianceHeader = "X-Ocdn-Appliance"

// DefaultExposedHeaders are what pages may read unless a config says
// otherwise: what a player or probe needs from a ranged response.
var DefaultExposedHeaders = []string{"Content-Range", "Content-Length", "ETag", "Accept-Ranges", ApplianceHeader}

// DefaultMaxAge is how long browsers may cache a preflight answer.
const DefaultMaxAge = 10 * time.Minute

// Config shapes a Policy.
type Config struct {
	// AllowedOrigins are exact origins (https://host[:port]), or the one
	// entry "*" for any origin.
	AllowedOrigins []string
	// ExposedHeaders default to DefaultExposedHeaders.
	ExposedHeaders []string
	// MaxAge defaults to DefaultMaxAge.
	MaxAge time.Duration
	// Methods are what the endpoints serve (such as GET and HEAD); a
	// preflight for any other is refused.
	Methods []string
	// RequestHeaders are the request headers a page may send beyond the
	// ones browsers send without asking; a preflight naming any other is
	// refused. Case does not matter.
	RequestHeaders []string
	// Registerer receives the policy's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Policy answers preflights and marks responses. It is immutable and safe
// for concurrent use; a nil *Policy allows nothing and touches nothing.
type Policy struct {
	any          bool
	origins      map[string]bool
	methods      map[string]bool
	headers      map[string]bool // lowercase
	allowMethods []string
	expose       []string
	maxAge       []string

	preflights *prometheus.CounterVec
	requests   *prometheus.CounterVec
	// The counters of Apply's path, resolved once.
	reqAllowed, reqDenied prometheus.Counter
}

// Outcome is what Apply did with a request.
type Outcome int

const (
	// NotCORS: the request has no Origin header; nothing was set.
	NotCORS Outcome = iota
	// Allowed: a cross-origin request from an allowed origin; the CORS
	// response headers are set and the handler should serve it.
	Allowed
	// Denied: a cross-origin request from another origin; nothing was
	// set, so the browser will not let the page read the answer (the
	// handler still serves it: CORS is not access control).
	Denied
	// Answered: a preflight, answered in full; serve nothing more.
	Answered
)

// Canonical header keys, set without canonicalizing on every request.
const (
	hOrigin         = "Origin"
	hRequestMethod  = "Access-Control-Request-Method"
	hRequestHeaders = "Access-Control-Request-Headers"
	hAllowOrigin    = "Access-Control-Allow-Origin"
	hAllowMethods   = "Access-Control-Allow-Methods"
	hAllowHeaders   = "Access-Control-Allow-Headers"
	hExposeHeaders  = "Access-Control-Expose-Headers"
	hMaxAge         = "Access-Control-Max-Age"
	hTimingAllow    = "Timing-Allow-Origin"
	hVary           = "Vary"
)

var (
	star          = []string{"*"}
	varyOrigin    = []string{"Origin"}
	varyPreflight = []string{"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}
)

// New builds a policy; errors name the Config field.
func New(cfg Config) (*Policy, error) {
	if len(cfg.AllowedOrigins) == 0 {
		return nil, errors.New("cors: AllowedOrigins: empty")
	}
	if len(cfg.Methods) == 0 {
		return nil, errors.New("cors: Methods: empty")
	}
	p := &Policy{origins: map[string]bool{}, methods: map[string]bool{}, headers: map[string]bool{}}
	for _, o := range cfg.AllowedOrigins {
		if o == "*" {
			p.any = true
			continue
		}
		if err := config.ValidOrigin(o); err != nil {
			return nil, fmt.Errorf("cors: AllowedOrigins: %w", err)
		}
		p.origins[o] = true
	}
	for _, m := range cfg.Methods {
		p.methods[m] = true
	}
	p.allowMethods = []string{strings.Join(cfg.Methods, ", ")}
	for _, h := range cfg.RequestHeaders {
		p.headers[strings.ToLower(h)] = true
	}
	expose := cfg.ExposedHeaders
	if expose == nil {
		expose = DefaultExposedHeaders
	}
	if len(expose) > 0 {
		p.expose = []string{strings.Join(expose, ", ")}
	}
	age := cfg.MaxAge
	if age <= 0 {
		age = DefaultMaxAge
	}
	p.maxAge = []string{strconv.Itoa(int(age / time.Second))}
	p.preflights = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ocdn_cors_preflights_total",
		Help: "CORS preflights by outcome: allowed, or refused for the origin, method or request headers.",
	}, []string{"outcome"})
	p.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ocdn_cors_requests_total",
		Help: "Cross-origin requests (with an Origin header) by whether the origin is allowed.",
	}, []string{"outcome"})
	for _, o := range []string{"allowed", "origin", "method", "headers"} {
		p.preflights.WithLabelValues(o)
	}
	p.reqAllowed, p.reqDenied = p.requests.WithLabelValues("allowed"), p.requests.WithLabelValues("denied")
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(p.preflights); err != nil {
			return nil, fmt.Errorf("cors: metrics: %w", err)
		}
		if err := cfg.Registerer.Register(p.requests); err != nil {
			return nil, fmt.Errorf("cors: metrics: %w", err)
		}
	}
	return p, nil
}

// FromConfig builds the policy of a daemon's cors section (nil without
// one) for endpoints serving methods and accepting requestHeaders.
func FromConfig(c *config.CORS, methods, requestHeaders []string, reg prometheus.Registerer) (*Policy, error) {
	if c == nil {
		return nil, nil
	}
	return New(Config{AllowedOrigins: c.AllowedOrigins, ExposedHeaders: c.ExposedHeaders, MaxAge: c.MaxAge,
		Methods: methods, RequestHeaders: requestHeaders, Registerer: reg})
}

// Allows reports whether pages of origin may read responses.
func (p *Policy) Allows(origin string) bool {
	return p != nil && (p.any || p.origins[origin])
}

// Apply does the CORS part of one request. Without an Origin header it
// changes nothing and returns NotCORS. A preflight (OPTIONS with Origin
// and Access-Control-Request-Method) is answered here, 204 when the
// origin, the method and every requested header are allowed, else 403
// without CORS headers, so the browser refuses the real request; either
// way Apply returns Answered and the handler must not touch the store.
// Any other request from an allowed origin gets Access-Control-Allow-
// Origin, the exposed headers and Timing-Allow-Origin (Allowed); from
// another origin nothing (Denied).
func (p *Policy) Apply(w http.ResponseWriter, r *http.Request) Outcome {
	if p == nil {
		return NotCORS
	}
	// The map lookup with the canonical key is the whole cost of a
	// request without Origin, which is every request but a browser's.
	origin, ok := r.Header[hOrigin]
	if !ok || len(origin) == 0 {
		return NotCORS
	}
	if r.Method == http.MethodOptions {
		if _, pre := r.Header[hRequestMethod]; pre {
			p.preflight(w, r, origin[0])
			return Answered
		}
	}
	h := w.Header()
	if !p.Allows(origin[0]) {
		p.reqDenied.Inc()
		return Denied
	}
	p.reqAllowed.Inc()
	allow := star
	if !p.any {
		// The request's own one-element slice: no allocation, and with
		// its capacity cut an Add to the response cannot write into it.
		allow = origin[:1:1]
		addVary(h, varyOrigin)
	}
	h[hAllowOrigin] = allow
	h[hTimingAllow] = allow
	if p.expose != nil {
		h[hExposeHeaders] = p.expose
	}
	return Allowed
}

// addVary adds v to the response's Vary header.
func addVary(h http.Header, v []string) {
	if old, ok := h[hVary]; ok {
		h[hVary] = append(slices.Clip(old), v...)
		return
	}
	h[hVary] = v
}

func (p *Policy) preflight(w http.ResponseWriter, r *http.Request, origin string) {
	h := w.Header()
	refuse := func(outcome, msg string) {
		p.preflights.WithLabelValues(outcome).Inc()
		h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		h[hVary] = varyPreflight
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte("cors preflight refused: " + msg + "\n"))
	}
	if !p.Allows(origin) {
		refuse("origin", fmt.Sprintf("origin %q is not allowed", clip(origin)))
		return
	}
	method := r.Header.Get(hRequestMethod)
	if !p.methods[method] {
		refuse("method", fmt.Sprintf("method %q is not served here (%s)", clip(method), p.allowMethods[0]))
		return
	}
	asked := requestedHeaders(r.Header.Values(hRequestHeaders))
	for _, name := range asked {
		if !p.headers[name] {
			refuse("headers", fmt.Sprintf("request header %q is not accepted here", clip(name)))
			return
		}
	}
	p.preflights.WithLabelValues("allowed").Inc()
	if p.any {
		h[hAllowOrigin] = star
	} else {
		h[hAllowOrigin] = []string{origin}
	}
	h[hAllowMethods] = p.allowMethods
	if len(asked) > 0 {
		h[hAllowHeaders] = []string{strings.Join(asked, ", ")}
	}
	h[hMaxAge] = p.maxAge
	h[hVary] = varyPreflight
	w.WriteHeader(http.StatusNoContent)
}

// requestedHeaders parses Access-Control-Request-Headers: a
// comma-separated list of names, lowercase by the Fetch standard, which
// is how they are compared here too.
func requestedHeaders(vals []string) []string {
	var out []string
	for _, v := range vals {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.ToLower(strings.TrimSpace(name)); name != "" {
				out = append(out, name)
			}
		}
	}
	return out
}

// clip shortens a value quoted back in an error.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "…"
}

// Wrap applies the policy in front of h: preflights are answered without
// reaching h. A nil policy returns h itself.
func (p *Policy) Wrap(h http.Handler) http.Handler {
	if p == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.Apply(w, r) == Answered {
			return
		}
		h.ServeHTTP(w, r)
	})
}
