// Package probe provides client-side measurement after Netflix's Probnik:
// the control plane hands a client a recipe (a set of targets, the probe
// types to run against each, how many pulses, the delay between them and
// each pulse's timeout, and context to copy into the report); the client
// runs it (Run), writes the resulting measure.Report to an on-disk spool,
// and an Uploader delivers spooled reports to POST /v1/reports with
// retries. Both talk to the control plane through cpclient, so any of its
// replicas can hand out the recipe and take the report.
//
// # Probe types
//
// Every pulse opens its own connection, so no timing includes connection
// reuse:
//
//   - tcp_connect: the time to establish a TCP connection (connect_ms).
//   - tls_handshake: connect, then the TLS handshake (tls_ms); targets
//     that are not https get status "error", "not https".
//   - http_ttfb: a GET with Range: bytes=0-0 on a fresh connection;
//     connect_ms and tls_ms are the set-up, ttfb_ms runs from the request
//     being written to the first response byte, duration_ms is the whole
//     pulse.
//   - throughput: a GET of the first range_bytes of the target URL on a
//     fresh connection; throughput_bps is the body bytes after the first
//     read divided by the time from the first body read to the last, so
//     it excludes connect, TLS, request and time to first byte, and
//     includes TCP slow start (a short range underestimates a fast path).
//     bytes is the whole body.
//   - dns: resolves a name no resolver has cached, p-<nonce>.<the
//     target's host name> (docs/dns.md), through the client's resolver
//     (Options.Resolver) for the target's family (A for ipv4-… names,
//     AAAA for ipv6-…) and times it (dns_ms, nonce), then fetches one
//     byte from the address it resolved to, by the probe name (its TLS
//     certificate covers it): connect_ms, tls_ms, ttfb_ms over that
//     family from the same appliance. The control plane joins the nonce
//     with its DNS server's log of who asked. A target whose URL has an
//     IP address instead of a name gets status "error".
//
// Every pulse carries the address family of its target (family): the
// target's, else that of the URL's IP address, else that of its name's
// ipv4-/ipv6- label.
//
// # Time limits
//
// Each pulse runs under its own PulseTimeout; a target that hangs ends
// that pulse with status "timeout", so a run takes at most
// pulses × (timeout + delay) in total.
package probe

import (
	"bytes"
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"time"

	"github.com/ocdn/ocdn/internal/cpclient"
	"github.com/ocdn/ocdn/internal/measure"
)

// Recipe is what GET /v1/recipe returns: what a client should measure.
type Recipe struct {
	ID      string   `json:"id"`
	Targets []Target `json:"targets"`
	// Pulses is how many times every target × type is probed.
	Pulses int `json:"pulses"`
	// PulseDelay is waited between consecutive pulses; PulseTimeout
	// bounds each one. JSON carries both in milliseconds.
	PulseDelay   time.Duration     `json:"-"`
	PulseTimeout time.Duration     `json:"-"`
	Context      map[string]string `json:"context,omitempty"`
	// ReportURL is where to upload the report (a full URL, such as a
	// separate collector's); empty means the control plane's /v1/reports
	// on whichever replica answers. See Uploader.UseRecipe.
	ReportURL string `json:"report_url,omitempty"`
	// Interval is how long the control plane asks a client to wait
	// before its next recipe (0: the client decides). JSON carries it in
	// milliseconds.
	Interval time.Duration `json:"-"`
}

type recipeJSON struct {
	recipeAlias
	PulseDelayMs   int64 `json:"pulse_delay_ms"`
	PulseTimeoutMs int64 `json:"pulse_timeout_ms"`
	IntervalMs     int64 `json:"interval_ms,omitempty"`
}

type recipeAlias Recipe

// MarshalJSON writes the durations in milliseconds.
func (r Recipe) MarshalJSON() ([]byte, error) {
	return json.Marshal(recipeJSON{recipeAlias(r), r.PulseDelay.Milliseconds(), r.PulseTimeout.Milliseconds(), r.Interval.Milliseconds()})
}

// UnmarshalJSON reads the durations in milliseconds.
func (r *Recipe) UnmarshalJSON(b []byte) error {
	var j recipeJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = Recipe(j.recipeAlias)
	r.PulseDelay = time.Duration(j.PulseDelayMs) * time.Millisecond
	r.PulseTimeout = time.Duration(j.PulseTimeoutMs) * time.Millisecond
	r.Interval = time.Duration(j.IntervalMs) * time.Millisecond
	return nil
}

// Target is one URL to probe.
type Target struct {
	ID        string `json:"id"`
	Appliance string `json:"appliance"`
	Site      string `json:"site"`
	URL       string `json:"url"`
	// Types are the probe types to run (measure.TypeTCPConnect, …).
	Types []string `json:"types"`
	// RangeBytes is how much a throughput probe downloads.
	RangeBytes int64 `json:"range_bytes,omitempty"`
	// Steered is true for the appliances steering would hand this client;
	// false for alternatives measured for comparison.
	Steered bool `json:"steered"`
	// Family is the address family the URL reaches the appliance over
	// (measure.FamilyIPv4, measure.FamilyIPv6); empty means the family of
	// the URL's address, or of its name's ipv4-/ipv6- label.
	Family string `json:"family,omitempty"`
}

// Validate checks what Run relies on, naming the field that is wrong.
func (r *Recipe) Validate() error {
	switch {
	case r.ID == "":
		return errors.New("recipe: id: missing")
	case r.Pulses < 1 || r.Pulses > 100:
		return fmt.Errorf("recipe: pulses: %d, want 1 to 100", r.Pulses)
	case r.PulseDelay < 0 || r.PulseTimeout < 0 || r.Interval < 0:
		return errors.New("recipe: pulse_delay_ms, pulse_timeout_ms and interval_ms must not be negative")
	case len(r.Targets) == 0:
		return errors.New("recipe: targets: empty")
	}
	n := 0
	for i, t := range r.Targets {
		if t.ID == "" || t.URL == "" {
			return fmt.Errorf("recipe: targets[%d]: id and url are required", i)
		}
		for _, ty := range t.Types {
			if !knownType(ty) {
				return fmt.Errorf("recipe: targets[%d].types: %q is not one of tcp_connect, tls_handshake, http_ttfb, throughput, dns", i, ty)
			}
		}
		switch t.Family {
		case "", measure.FamilyIPv4, measure.FamilyIPv6:
		default:
			return fmt.Errorf("recipe: targets[%d].family: %q is not ipv4 or ipv6", i, t.Family)
		}
		n += len(t.Types)
	}
	if n*r.Pulses > measure.MaxPulses {
		return fmt.Errorf("recipe: %d pulses in all, a report holds at most %d", n*r.Pulses, measure.MaxPulses)
	}
	return nil
}

func knownType(t string) bool {
	switch t {
	case measure.TypeTCPConnect, measure.TypeTLSHandshake, measure.TypeHTTPTTFB, measure.TypeThroughput, measure.TypeDNS:
		return true
	}
	return false
}

// RecipeConfig shapes the recipes RecipeHandler serves. The zero value
// serves 3 pulses of every type, 100 ms apart, 5 s timeout, 1 MiB ranges.
type RecipeConfig struct {
	Pulses       int
	PulseDelay   time.Duration
	PulseTimeout time.Duration
	// Types are given to targets that name none.
	Types []string
	// RangeBytes is given to targets that name none.
	RangeBytes int64
	// ReportURL and Interval are copied into every recipe.
	ReportURL string
	Interval  time.Duration
	// Version is reported as context["recipe_version"].
	Version string
	// Context, when set, adds per-client context (such as an experiment
	// arm) to each recipe.
	Context func(client netip.Addr) map[string]string
	// Sign, when set, signs each recipe's finished context (the control
	// plane's measure.ContextSigner.Sign), so that reports from browsers
	// can prove they carry a recipe it issued.
	Sign func(recipe string, ctx map[string]string)
	// Now is the server's clock for context["issued_at"] (time.Now when
	// nil).
	Now func() time.Time
}

func (c *RecipeConfig) setDefaults() {
	if c.Pulses <= 0 {
		c.Pulses = 3
	}
	if c.PulseDelay <= 0 {
		c.PulseDelay = 100 * time.Millisecond
	}
	if c.PulseTimeout <= 0 {
		c.PulseTimeout = 5 * time.Second
	}
	if len(c.Types) == 0 {
		c.Types = []string{measure.TypeTCPConnect, measure.TypeHTTPTTFB, measure.TypeThroughput}
	}
	if c.RangeBytes <= 0 {
		c.RangeBytes = 1 << 20
	}
	if c.Version == "" {
		c.Version = "1"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// ErrNoTargets may be returned by a choose function that has nothing for
// the client; RecipeHandler answers 503.
var ErrNoTargets = errors.New("no probe targets for this client")

// RecipeHandler serves GET /v1/recipe. choose returns, for the client
// address of the connection, the appliances steering would use plus
// alternatives at other sites (Steered marks the former); dualStack says
// the client asked with family=both: it has addresses of both families,
// so a dual-stack appliance may be probed over either. The handler
// fills in default types and range sizes, shuffles the targets (so that
// no target is always measured first, on a cold path, or last, on a
// loaded one), and adds a fresh recipe id and context: steered_site,
// steered_appliance (the first steered target), recipe_version and
// targets.
func RecipeHandler(choose func(client netip.Addr, dualStack bool) ([]Target, error), cfg RecipeConfig) http.Handler {
	cfg.setDefaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "recipe: use GET", http.StatusMethodNotAllowed)
			return
		}
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			http.Error(w, "recipe: client address: "+err.Error(), http.StatusBadRequest)
			return
		}
		var dualStack bool
		switch f := r.URL.Query().Get("family"); f {
		case "", "client":
		case "both":
			dualStack = true
		default:
			http.Error(w, fmt.Sprintf("recipe: family=%q: want both (a dual-stack client) or nothing", f), http.StatusBadRequest)
			return
		}
		targets, err := choose(ap.Addr().Unmap(), dualStack)
		if errors.Is(err, ErrNoTargets) || (err == nil && len(targets) == 0) {
			http.Error(w, "recipe: "+ErrNoTargets.Error(), http.StatusServiceUnavailable)
			return
		}
		if err != nil {
			http.Error(w, "recipe: internal error", http.StatusInternalServerError)
			return
		}
		// issued_at (measure.ContextIssuedAt) is the server's time of
		// issue: an analysis can then keep out pulses of recipes issued
		// before a change, such as a group's move, that a report
		// received after it still carries.
		rec := Recipe{
			ID: NewID(), Pulses: cfg.Pulses, PulseDelay: cfg.PulseDelay, PulseTimeout: cfg.PulseTimeout,
			ReportURL: cfg.ReportURL, Interval: cfg.Interval,
			Context: map[string]string{"recipe_version": cfg.Version, "targets": fmt.Sprint(len(targets)),
				measure.ContextIssuedAt: cfg.Now().UTC().Format(time.RFC3339Nano)},
		}
		if cfg.Context != nil {
			for k, v := range cfg.Context(ap.Addr().Unmap()) {
				rec.Context[k] = v
			}
		}
		rec.Targets = make([]Target, len(targets))
		for i, t := range targets {
			if len(t.Types) == 0 {
				t.Types = append([]string(nil), cfg.Types...)
			}
			if t.RangeBytes <= 0 {
				t.RangeBytes = cfg.RangeBytes
			}
			if t.Steered && rec.Context["steered_site"] == "" {
				rec.Context["steered_site"] = t.Site
				rec.Context["steered_appliance"] = t.Appliance
			}
			rec.Targets[i] = t
		}
		rand.Shuffle(len(rec.Targets), func(i, j int) { rec.Targets[i], rec.Targets[j] = rec.Targets[j], rec.Targets[i] })
		if cfg.Sign != nil {
			cfg.Sign(rec.ID, rec.Context)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(rec)
	})
}

// FetchRecipe asks the control plane for a recipe, through cp: a replica
// that cannot be reached or answers 5xx (503 is also how a replica says it
// has no targets for this client yet) is skipped for the next one. A
// dualStack client (addresses of both families) asks with family=both.
func FetchRecipe(ctx context.Context, cp *cpclient.Client, dualStack bool) (*Recipe, error) {
	path := "/v1/recipe"
	if dualStack {
		path += "?family=both"
	}
	resp, err := cp.Do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("recipe: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	var rec Recipe
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&rec); err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	if err := rec.Validate(); err != nil {
		return nil, err
	}
	return &rec, nil
}

// NewID returns 32 random hex characters, for recipe and report ids.
func NewID() string {
	var b [16]byte
	if _, err := cryptorand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}
