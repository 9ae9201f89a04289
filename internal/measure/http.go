package measure

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// MaxBodyBytes bounds a report upload.
const MaxBodyBytes = 1 << 20

// RateLimit is a token bucket per client /24 (IPv4) or /48 (IPv6).
type RateLimit struct {
	PerSecond float64 // sustained reports per second; 0 disables limiting
	Burst     int     // bucket size
	// MaxClients bounds the number of buckets kept (default 65536). When
	// full, idle buckets (refilled to the brim) are dropped first, then
	// arbitrary ones: a dropped bucket starts full again, which errs on the
	// side of accepting.
	MaxClients int
}

// DefaultRateLimit is 10 reports/s with a burst of 20 per client prefix.
var DefaultRateLimit = RateLimit{PerSecond: 10, Burst: 20, MaxClients: 65536}

type bucket struct {
	tokens float64
	last   time.Time
}

type limiter struct {
	lim RateLimit
	now func() time.Time
	mu  sync.Mutex
	m   map[netip.Prefix]*bucket
}

func newLimiter(lim RateLimit, now func() time.Time) *limiter {
	if lim.MaxClients <= 0 {
		lim.MaxClients = 65536
	}
	if lim.Burst < 1 {
		lim.Burst = 1
	}
	return &limiter{lim: lim, now: now, m: make(map[netip.Prefix]*bucket)}
}

func clientPrefix(a netip.Addr) netip.Prefix {
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p
}

func (l *limiter) allow(a netip.Addr) bool {
	if l.lim.PerSecond <= 0 {
		return true
	}
	k := clientPrefix(a)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[k]
	if b == nil {
		if len(l.m) >= l.lim.MaxClients {
			l.evict(now)
		}
		b = &bucket{tokens: float64(l.lim.Burst), last: now}
		l.m[k] = b
	}
	b.tokens += now.Sub(b.last).Seconds() * l.lim.PerSecond
	if b.tokens > float64(l.lim.Burst) {
		b.tokens = float64(l.lim.Burst)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *limiter) evict(now time.Time) {
	full := time.Duration(float64(l.lim.Burst) / l.lim.PerSecond * float64(time.Second))
	for k, b := range l.m {
		if now.Sub(b.last) >= full {
			delete(l.m, k)
		}
	}
	for k := range l.m { // still full: drop an arbitrary quarter
		if len(l.m) <= l.lim.MaxClients*3/4 {
			break
		}
		delete(l.m, k)
	}
}

// AcceptResponse is the body of a 200 answer to POST /v1/reports.
type AcceptResponse struct {
	Accepted  bool `json:"accepted"`
	Duplicate bool `json:"duplicate"`
	Pulses    int  `json:"pulses"`
}

// Handler serves POST /v1/reports: the body is one JSON Report (at most
// MaxBodyBytes, unknown fields rejected). Answers: 200 AcceptResponse once
// the report is durable (or was already stored); 400 with the reason for
// malformed, invalid, future-dated or too old reports, and for a browser
// report (one with an Origin header) whose recipe context is missing or
// not as the control plane signed it; 413 for a body over MaxBodyBytes;
// 429 when the client's prefix exceeds limit; 503 when the report could
// not be stored (retry later). The client address is the connection's
// (r.RemoteAddr).
func (in *Ingester) Handler(limit RateLimit) http.Handler {
	lim := newLimiter(limit, in.opts.Now)
	refusals := &refusalLog{log: in.log, now: in.opts.Now, last: map[int]time.Time{}, quiet: map[int]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/reports", func(w http.ResponseWriter, r *http.Request) {
		in.serveReport(w, r, lim, refusals)
	})
	return mux
}

// refusalLog logs why reports were refused, at most one line a minute
// per status: the metrics count refusals by outcome, and an operator
// seeing them wants a reason, but the endpoint is public and anyone can
// send garbage as fast as the rate limit lets them.
type refusalLog struct {
	log   *slog.Logger
	now   func() time.Time
	mu    sync.Mutex
	last  map[int]time.Time
	quiet map[int]int // refusals not logged since the last line
}

func (l *refusalLog) refused(r *http.Request, code int, msg string) {
	l.mu.Lock()
	now := l.now()
	if t, ok := l.last[code]; ok && now.Sub(t) < time.Minute {
		l.quiet[code]++
		l.mu.Unlock()
		return
	}
	quiet := l.quiet[code]
	l.last[code], l.quiet[code] = now, 0
	l.mu.Unlock()
	l.log.Info("report refused (one line a minute per status)", "status", code, "client", r.RemoteAddr, "reason", msg, "refused_since_last_line", quiet)
}

func (in *Ingester) serveReport(w http.ResponseWriter, r *http.Request, lim *limiter, refusals *refusalLog) {
	fail := func(code int, outcome, msg string) {
		if outcome != "" {
			in.m.reports.WithLabelValues(outcome).Inc()
		}
		if code != http.StatusServiceUnavailable {
			refusals.refused(r, code, msg)
		}
		http.Error(w, msg, code)
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		fail(http.StatusBadRequest, OutcomeInvalid, "client address: "+err.Error())
		return
	}
	client := ap.Addr().Unmap()
	if !lim.allow(client) {
		w.Header().Set("Retry-After", "1")
		fail(http.StatusTooManyRequests, OutcomeRateLimited, "too many reports from your network; retry later")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			fail(http.StatusRequestEntityTooLarge, OutcomeTooLarge, fmt.Sprintf("report body over %d bytes", MaxBodyBytes))
			return
		}
		fail(http.StatusBadRequest, OutcomeInvalid, "reading body: "+err.Error())
		return
	}
	rep, err := DecodeReport(body)
	if err != nil {
		fail(http.StatusBadRequest, OutcomeInvalid, err.Error())
		return
	}
	if rep.Transport != nil {
		fail(http.StatusBadRequest, OutcomeInvalid, "transport: only appliances send transport records, to the control plane's POST /v1/transport")
		return
	}
	// Browsers add Origin to every POST, same-origin or not; installed
	// clients send none.
	if _, browser := r.Header["Origin"]; browser {
		err = in.opts.Contexts.checkBrowser(rep)
	} else {
		err = checkInstalled(rep)
	}
	if err != nil {
		fail(http.StatusBadRequest, OutcomeInvalid, err.Error())
		return
	}
	res, err := in.Ingest(r.Context(), client, rep) // counts its own outcome
	switch {
	case errors.Is(err, ErrInvalidReport), errors.Is(err, ErrFutureDated), errors.Is(err, ErrTooOld):
		fail(http.StatusBadRequest, "", err.Error())
		return
	case err != nil:
		w.Header().Set("Retry-After", "5")
		fail(http.StatusServiceUnavailable, "", "report not stored; retry later")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(AcceptResponse{Accepted: true, Duplicate: res.Duplicate, Pulses: res.Pulses})
}

// DecodeReport parses one JSON report strictly: unknown fields and
// trailing data are errors. It does not validate; call Validate.
func DecodeReport(body []byte) (*Report, error) {
	var rep Report
	if err := decodeStrict(body, &rep, "report"); err != nil {
		return nil, err
	}
	return &rep, nil
}

// decodeStrict decodes one JSON object of what into v, refusing unknown
// fields and trailing data.
func decodeStrict(body []byte, v any, what string) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed %s JSON: %w", what, err)
	}
	if dec.More() {
		return fmt.Errorf("malformed %s JSON: data after the %s object", what, what)
	}
	return nil
}
