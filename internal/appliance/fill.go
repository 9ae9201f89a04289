package appliance

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/fill"
)

// fillState is the appliance's fill agent and demand counters.
type fillState struct {
	agent *fill.Agent

	clientBytes atomic.Int64

	mu      sync.Mutex
	files   map[string]int64
	clients map[clientFile]int64
	corrupt map[string]bool
}

type clientFile struct {
	client netip.Prefix
	path   string
}

func newFillState(a *Appliance) *fillState {
	fs := &fillState{files: map[string]int64{}, clients: map[clientFile]int64{}, corrupt: map[string]bool{}}
	for _, p := range a.cfg.CorruptFill {
		fs.corrupt[p] = true
	}
	fs.agent = fill.New(fill.Config{Appliance: a.cfg.ID, Store: a.store, Control: controlClient{a}, Client: fillClient(a.cfg.PeerRoots),
		Clock: a.cfg.FillClock, Rate: a.cfg.FillRate, UrgentRate: a.cfg.FillUrgentRate, RetireGrace: a.cfg.FillRetireGrace,
		Concurrency: a.cfg.FillConcurrency, StallTimeout: a.cfg.FillStallTimeout,
		OutOfCycleBudget: a.cfg.FillOutOfCycleBudget, Interval: a.cfg.FillInterval, StrictWindow: a.cfg.FillStrictWindow,
		Logger: a.cfg.Logger})
	return fs
}

// fillLoop runs the fill agent (internal/fill) and the demand reporter
// until ctx ends.
func (a *Appliance) fillLoop(ctx context.Context) {
	fs := a.fill
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.demandLoop(ctx) }()
	fs.agent.Run(ctx)
	wg.Wait()
}

// controlClient is the agent's view of the control plane over HTTP.
type controlClient struct{ a *Appliance }

func (c controlClient) Manifest(ctx context.Context) (api.Manifest, error) {
	var m api.Manifest
	err := c.a.cfg.Control.GetJSON(ctx, "/v1/manifest?appliance="+url.QueryEscape(c.a.cfg.ID), &m)
	return m, err
}

func (c controlClient) Plan(ctx context.Context) (api.FillPlan, error) {
	var p api.FillPlan
	err := c.a.cfg.Control.GetJSON(ctx, "/v1/fill?appliance="+url.QueryEscape(c.a.cfg.ID), &p)
	return p, err
}

func (c controlClient) Report(ctx context.Context, p api.FillProgress) error {
	return c.a.cfg.Control.PostJSON(ctx, "/v1/fill/progress", p, nil)
}

// demandLoop reports per-file and per-client-prefix served bytes every
// heartbeat interval (what the control plane's popularity and miss
// classification are computed from).
func (a *Appliance) demandLoop(ctx context.Context) {
	fs := a.fill
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fs.mu.Lock()
		files, clients := fs.files, fs.clients
		fs.files, fs.clients = map[string]int64{}, map[clientFile]int64{}
		fs.mu.Unlock()
		if len(files) == 0 {
			continue
		}
		rep := api.DemandReport{Appliance: a.cfg.ID, Files: files}
		for k, n := range clients {
			rep.Clients = append(rep.Clients, api.ClientDemand{Client: k.client.Addr().String(), Path: k.path, Bytes: n})
		}
		if err := a.cfg.Control.PostJSON(ctx, "/v1/demand", rep, nil); err != nil {
			// Keep the counts for the next report: while the control
			// plane is away demand accumulates, nothing is lost.
			fs.mu.Lock()
			for p, n := range files {
				fs.files[p] += n
			}
			for k, n := range clients {
				fs.clients[k] += n
			}
			fs.mu.Unlock()
			if ctx.Err() == nil {
				a.log.Warn("demand report failed; kept for the next one", "err", err)
			}
		}
	}
}

// serveContent serves /c/… through the edge, counting body bytes per file
// and per client prefix (/24, /48) for demand reports. Fill requests from
// other appliances (X-Ocdn-Fill) and measurements (api.MeasurementHeader,
// or api.MeasurementParam from web pages) are not demand. CorruptFill (fault
// injection) makes fill requests for the listed files get wrong bytes.
func (a *Appliance) serveContent(w http.ResponseWriter, r *http.Request) {
	fs := a.fill
	isFill := firstValue(r.Header, "X-Ocdn-Fill") != ""
	measuring := firstValue(r.Header, api.MeasurementHeader) != "" ||
		(r.URL.RawQuery != "" && r.URL.Query().Has(api.MeasurementParam))
	if isFill && len(fs.corrupt) > 0 {
		if parts := splitN(r.URL.Path, 4); len(parts) == 4 && fs.corrupt[parts[2]+"/"+parts[3]] {
			a.edge.ServeHTTP(&corruptWriter{ResponseWriter: w}, r)
			return
		}
	}
	// The edge reports the object path and the client it parsed, and
	// the bytes it sent: no wrapper and no second parse per request.
	sv := a.edge.Serve(w, r)
	if isFill || measuring || sv.Bytes == 0 || sv.Path == "" {
		return
	}
	var pfx netip.Prefix
	if sv.Client.IsValid() {
		bits := 24
		if sv.Client.Is6() {
			bits = 48
		}
		pfx, _ = sv.Client.Prefix(bits)
	}
	fs.clientBytes.Add(sv.Bytes)
	fs.mu.Lock()
	if _, seen := fs.files[sv.Path]; !seen {
		// A new key of its own, not a substring holding the whole URL
		// (its token) for as long as the report is pending.
		sv.Path = strings.Clone(sv.Path)
	}
	fs.files[sv.Path] += sv.Bytes
	if pfx.IsValid() {
		fs.clients[clientFile{pfx, sv.Path}] += sv.Bytes
	}
	fs.mu.Unlock()
}

// firstValue is Header.Get for a key in canonical form, as the servers
// store them: Get checks and canonicalizes the key again on each call.
func firstValue(h http.Header, canonicalKey string) string {
	if v := h[canonicalKey]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// splitN splits /c/{token}/{title}/{file} into its segments after "/".
func splitN(p string, n int) []string {
	var out []string
	start := 1
	for i := 1; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			out = append(out, p[start:i])
			start = i + 1
			if len(out) == n {
				if i != len(p) {
					return nil
				}
				break
			}
		}
	}
	return out
}

// corruptWriter flips every byte it passes on.
type corruptWriter struct{ http.ResponseWriter }

func (c *corruptWriter) Write(p []byte) (int, error) {
	q := make([]byte, len(p))
	for i, b := range p {
		q[i] = ^b
	}
	return c.ResponseWriter.Write(q)
}

func (c *corruptWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// FillStats is what fill has done so far.
type FillStats = fill.Stats

// Fill reports fill counters.
func (a *Appliance) Fill() FillStats { return a.fill.agent.Stats() }

// ClientBytes is the content bytes served to clients, not counting fill
// requests from other appliances (which BytesServed includes).
func (a *Appliance) ClientBytes() int64 { return a.fill.clientBytes.Load() }

// fillClient fetches fill sources, verifying https ones against roots (nil:
// the system's): peers serving TLS have certificates from the CDN's CA.
func fillClient(roots *x509.CertPool) *http.Client {
	if roots == nil {
		return &http.Client{}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}
}
