package lab

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/ocdn/ocdn/internal/api"
)

// Report is the lab's result. Its JSON field names are a public interface:
// later additions are fine, renames are not.
type Report struct {
	DurationSeconds float64           `json:"duration_seconds"`
	Interrupted     bool              `json:"interrupted"`
	Sessions        SessionStats      `json:"sessions"`
	Sites           []SiteReport      `json:"sites"`
	Appliances      []ApplianceReport `json:"appliances"`
	Origin          OriginReport      `json:"origin"`
	Events          []EventRecord     `json:"events"`
	BGP             BGPReport         `json:"bgp"`
	Health          HealthReport      `json:"health"`
	// Measurements counts the probe reports the control plane ingested.
	Measurements MeasurementReport `json:"measurements"`
	QoE          QoEReport         `json:"qoe"`

	// Fill, Offload (share of served bytes from embedded sites) and
	// Misses (bytes not served from the client's best local site, by
	// cause) are filled in by fill.go.
	Fill    *FillReport `json:"fill,omitempty"`
	Offload float64     `json:"offload"`
	Misses  *missesOf   `json:"misses,omitempty"`
	// Measured is measured steering's moves and rollbacks per arm and
	// the effect of degraded links (measured.go).
	Measured *MeasuredReport `json:"measured,omitempty"`
	// Browser says where the browser pages were (browser.go).
	Browser *BrowserReport `json:"browser,omitempty"`
	// Loops is the placement loop: replans, offload and misses per 5 s,
	// popularity shifts and releases (loops.go).
	Loops *LoopsReport `json:"loops,omitempty"`
	// Console is where the control plane's web console was served.
	Console string `json:"console,omitempty"`
	// Transport is the packet-level links' emulators and the servers'
	// TCP figures per experiment arm (transport.go); nil when the
	// scenario has no packet-level link.
	Transport *TransportReport `json:"transport,omitempty"`
	// IPv6 is the lab's IPv6 network (ipv6.go); nil when the scenario
	// asks for none.
	IPv6 *IPv6Report `json:"ipv6,omitempty"`
	// Families is the address-family and resolver analysis of the run's
	// pulses (ipv6.go); nil without dual-stack clients.
	Families *FamiliesReport `json:"families,omitempty"`
}

// IPv6Report says whether the lab ran IPv6 and with how many dual-stack
// clients.
type IPv6Report struct {
	// Namespace is the network namespace IPv6 ran in; Fallback why
	// there was none (the lab then ran IPv4 only).
	Namespace        string `json:"namespace,omitempty"`
	Fallback         string `json:"fallback,omitempty"`
	DualStackClients int    `json:"dual_stack_clients"`
}

// BGPReport sums the appliances' BGP sessions at the end of the run.
type BGPReport struct {
	Sessions            int `json:"sessions"`
	SessionsEstablished int `json:"sessions_established"`
	PrefixesReceived    int `json:"prefixes_received"`
}

// SessionStats counts playback sessions. Interrupted sessions were cut
// short by the end of the run (or Ctrl-C), not by the CDN.
type SessionStats struct {
	Started     int `json:"started"`
	Completed   int `json:"completed"`
	Failed      int `json:"failed"`
	Interrupted int `json:"interrupted"`
	Failovers   int `json:"failovers"`
}

// SiteReport sums a site's appliances.
type SiteReport struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	BytesServed int64  `json:"bytes_served"`
	Requests    int64  `json:"requests"`
}

// ApplianceReport is one appliance at the end of the run.
type ApplianceReport struct {
	ID          string `json:"id"`
	Site        string `json:"site"`
	State       string `json:"state"`
	BytesServed int64  `json:"bytes_served"`
	Requests    int64  `json:"requests"`
	FilledBytes int64  `json:"filled_bytes"`
}

// OriginReport is what the origin sent.
type OriginReport struct {
	BytesServed int64 `json:"bytes_served"`
}

// EventRecord is an event as it happened.
type EventRecord struct {
	AtSeconds float64 `json:"at_seconds"`
	Kind      string  `json:"kind"`
	Target    string  `json:"target"`
	Prefix    string  `json:"prefix,omitempty"`
	// ConvergedSeconds is, for route events, how long the control plane
	// took to change its answer after the router's change.
	ConvergedSeconds float64 `json:"converged_seconds,omitempty"`
}

// report gathers the run's figures as an operator could: each
// appliance's /v1/status, the control plane's API and /metrics, the
// origin's /metrics.
func (l *Lab) report(ctx context.Context, interrupted bool) *Report {
	ctx = context.WithoutCancel(ctx) // an interrupted run still reports
	r := &Report{Interrupted: interrupted}
	if !l.start.IsZero() {
		r.DurationSeconds = time.Since(l.start).Seconds()
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	if fams, err := scrape(ctx, hc, l.originURL); err == nil {
		r.Origin.BytesServed = int64(counter(fams, "ocdn_origin_response_bytes_total", "", ""))
	}
	var fams []*dto.MetricFamily
	if g := l.controlPlane().Registry(); g != nil {
		fams, _ = g.Gather()
	} else {
		fams, _ = scrape(ctx, hc, l.view.urls[0])
	}
	r.Measurements = measurementReport(fams)
	statuses := map[string]api.ApplianceRuntime{}
	var list []api.ApplianceRuntime
	for _, la := range l.appliances {
		st, _ := la.handle().Status(ctx) // a killed appliance's last status
		if la.killed.Load() {
			// Its sessions died with it, whatever it said last.
			st.BGP = append([]api.BGPSession(nil), st.BGP...)
			for i := range st.BGP {
				st.BGP[i].State, st.BGP[i].PrefixesReceived, st.BGP[i].PrefixesAccepted = "down", 0, 0
			}
		}
		statuses[la.cfg.ID] = st
		list = append(list, st)
	}
	states := map[string]string{}
	sts, _ := l.view.appliances(ctx)
	for _, st := range sts {
		states[st.ID] = st.State
	}
	sum, _ := l.view.fillSummary(ctx)
	l.mu.Lock()
	r.Sessions = l.sessions
	r.BGP = bgpReport(list)
	r.Health = l.healthReport(statuses)
	r.QoE = qoeReport(l.qoe)
	r.Events = append([]EventRecord{}, l.events...)
	l.mu.Unlock()
	sites := map[string]*SiteReport{}
	for _, s := range l.sc.Sites {
		sr := &SiteReport{ID: s.ID, Kind: string(s.Kind)}
		sites[s.ID] = sr
	}
	for _, la := range l.appliances {
		state := states[la.cfg.ID]
		if la.killed.Load() {
			state = "killed"
		}
		st := statuses[la.cfg.ID]
		ar := ApplianceReport{ID: la.cfg.ID, Site: la.cfg.Site, State: state, BytesServed: st.BytesServed, Requests: st.Requests, FilledBytes: st.Fill.Bytes}
		r.Appliances = append(r.Appliances, ar)
		sites[la.cfg.Site].BytesServed += ar.BytesServed
		sites[la.cfg.Site].Requests += ar.Requests
	}
	for _, s := range l.sc.Sites {
		r.Sites = append(r.Sites, *sites[s.ID])
	}
	sort.Slice(r.Events, func(i, j int) bool { return r.Events[i].AtSeconds < r.Events[j].AtSeconds })
	l.fillReport(r, statuses, sum, r.Origin.BytesServed)
	r.Measured = l.measuredReport(ctx)
	r.Loops = l.loopsReport(ctx)
	r.Transport = l.transportReport()
	r.IPv6 = l.ipv6Report()
	return r
}

// Print writes the human-readable report.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "\nocdn lab report (%.1f s of streaming", r.DurationSeconds)
	if r.Interrupted {
		fmt.Fprint(w, ", interrupted")
	}
	fmt.Fprintln(w, ")")
	if r.Console != "" {
		fmt.Fprintf(w, "\nConsole (up while the lab ran): %s\n", r.Console)
	}
	s := r.Sessions
	fmt.Fprintf(w, "\nSessions: %d started, %d completed, %d failed, %d cut short by the end of the run; %d failovers\n",
		s.Started, s.Completed, s.Failed, s.Interrupted, s.Failovers)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSITE\tKIND\tSERVED\tREQUESTS")
	for _, st := range r.Sites {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", st.ID, st.Kind, mb(st.BytesServed), st.Requests)
	}
	fmt.Fprintln(tw, "\nAPPLIANCE\tSITE\tSTATE\tSERVED\tFILLED")
	for _, a := range r.Appliances {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.ID, a.Site, a.State, mb(a.BytesServed), mb(a.FilledBytes))
	}
	tw.Flush()
	if f := r.Fill; f != nil {
		fmt.Fprintf(w, "\nFill: origin %s for %s unique (peers %s, other sites %s); %d files verified, %d bad copies rejected (%d injected); filled in %.1f s.\n",
			mb(f.OriginBytes), mb(f.UniqueBytes), mb(f.PeerBytes), mb(f.TierBytes), f.FilesVerified, f.FilesRejected, f.InjectedCorrupt, f.SecondsToFill)
	}
	if m := r.Misses; m != nil {
		fmt.Fprintf(w, "Offload %.1f%% (embedded sites). Misses: content %s, health %s, other %s (local %s).\n",
			100*r.Offload, mb(m.Content), mb(m.Health), mb(m.Other), mb(m.Local))
	}
	if r.Loops != nil {
		r.Loops.print(w)
	}
	fmt.Fprintf(w, "\nOrigin served %s. BGP: %d of %d sessions established, %d prefixes received.\n",
		mb(r.Origin.BytesServed), r.BGP.SessionsEstablished, r.BGP.Sessions, r.BGP.PrefixesReceived)
	q := r.QoE
	fmt.Fprintf(w, "QoE: startup p50 %.0f ms, rebuffering %.2f%% of play time, average bitrate %.0f kbit/s over %d sessions.\n",
		q.StartupMsP50, 100*q.RebufferRatio, q.AvgBitrateKbps, q.Sessions)
	if b := q.StartupBreakdown; b.Sessions > 0 {
		fmt.Fprintf(w, "Startup breakdown (first segment request, medians over %d sessions on a new connection, %d over HTTPS): DNS %.1f ms, connect %.1f ms, TLS %.1f ms, first byte %.1f ms.\n",
			b.Sessions, b.HTTPS, b.DNSMsP50, b.ConnectMsP50, b.TLSMsP50, b.FirstByteMsP50)
	}
	if v := r.IPv6; v != nil {
		if v.Fallback != "" {
			fmt.Fprintf(w, "IPv6: none (%s); IPv4 only.\n", v.Fallback)
		} else {
			fmt.Fprintf(w, "IPv6: %d dual-stack clients (namespace %s).\n", v.DualStackClients, v.Namespace)
		}
	}
	if len(q.Families) > 0 {
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FAMILY\tSESSIONS\tSTARTUP P50\tREBUFFER\tBITRATE\tDNS\tCONNECT\tTLS\tFIRST BYTE")
		for _, f := range q.Families {
			b := f.StartupBreakdown
			fmt.Fprintf(tw, "%s\t%d\t%.0f ms\t%.2f%%\t%.0f kbit/s\t%.1f ms\t%.1f ms\t%.1f ms\t%.1f ms\n", f.Family, f.Sessions, f.StartupMsP50,
				100*f.RebufferRatio, f.AvgBitrateKbps, b.DNSMsP50, b.ConnectMsP50, b.TLSMsP50, b.FirstByteMsP50)
		}
		tw.Flush()
	}
	h := r.Health
	fmt.Fprintf(w, "Health: control plane down %.1f s; heartbeat records queued %d, delivered later %d, still queued %d, dropped %d",
		h.ControlPlaneOutageSeconds, h.ReportsQueued, h.ReportsDelivered, h.ReportsPending, h.ReportsDropped)
	for _, id := range slices.Sorted(maps.Keys(h.ExclusionSeconds)) {
		fmt.Fprintf(w, "; %s out of steering %.2f s after its kill", id, h.ExclusionSeconds[id])
	}
	fmt.Fprintln(w, ".")
	m := r.Measurements
	fmt.Fprintf(w, "Measurements: %d probe reports accepted (%d pulses), %d rejected", m.ReportsAccepted, m.Pulses, m.ReportsRejected)
	for _, o := range slices.Sorted(maps.Keys(m.Rejections)) {
		fmt.Fprintf(w, " (%s %d)", o, m.Rejections[o])
	}
	if m.Dir != "" {
		fmt.Fprintf(w, "; Parquet in %s (ocdn analyze --data %s)", m.Dir, m.Dir)
	}
	fmt.Fprintln(w, ".")
	r.Measured.print(w)
	r.Families.print(w)
	r.Transport.print(w)
	if len(r.Events) > 0 {
		fmt.Fprintln(w, "\nEvents:")
		for _, e := range r.Events {
			fmt.Fprintf(w, "  %6.1fs  %s %s %s", e.AtSeconds, e.Kind, e.Target, e.Prefix)
			if e.ConvergedSeconds > 0 {
				fmt.Fprintf(w, " (steering changed after %.2f s)", e.ConvergedSeconds)
			}
			fmt.Fprintln(w)
		}
	}
	r.Browser.print(w)
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
