package lab

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/ocdn/ocdn/internal/clientnet"
	"github.com/ocdn/ocdn/internal/clock"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/cpclient"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/netem"
	"github.com/ocdn/ocdn/internal/player"
	"github.com/ocdn/ocdn/internal/probe"
)

// LinkSpec is the emulated path between one ISP's clients and one site:
// every connection a client opens to an appliance of the site waits the
// round trip and is held to the bandwidth, in user space.
type LinkSpec struct {
	ISP           string        `yaml:"isp"`
	Site          string        `yaml:"site"`
	RTT           time.Duration `yaml:"rtt"`
	BandwidthMbps float64       `yaml:"bandwidth_mbps"`
	// Packet, when set, carries the link at the packet level with loss,
	// a bottleneck queue and jitter TCP can feel (packet.go).
	Packet *PacketSpec `yaml:"packet,omitempty"`
}

// ProbeSettings shape the lab clients' Probnik-style measurements.
type ProbeSettings struct {
	// Every is how often each client fetches and runs a recipe; 0 turns
	// probing off.
	Every      time.Duration   `yaml:"every"`
	Pulses     int             `yaml:"pulses"`
	RangeBytes config.ByteSize `yaml:"range_bytes"`
	// Types are the probe types (measure.recipe.types); default
	// tcp_connect, http_ttfb and throughput, and dns when the appliances
	// are named (Endpoints.DNS).
	Types []string `yaml:"types,omitempty"`
}

func (s *Scenario) validateMeasurement(isps map[string]config.ISP) error {
	sites := map[string]bool{}
	for _, st := range s.Sites {
		sites[st.ID] = true
	}
	seen := map[[2]string]bool{}
	for i, l := range s.Links {
		f := fmt.Sprintf("links[%d]", i)
		if _, ok := isps[l.ISP]; !ok {
			return config.Errf(f+".isp", "unknown ISP %q", l.ISP)
		}
		if !sites[l.Site] {
			return config.Errf(f+".site", "unknown site %q", l.Site)
		}
		if seen[[2]string{l.ISP, l.Site}] {
			return config.Errf(f, "a second link from %s to %s", l.ISP, l.Site)
		}
		seen[[2]string{l.ISP, l.Site}] = true
		if l.RTT < 0 || l.RTT > 5*time.Second || l.BandwidthMbps < 0 {
			return config.Errf(f, "rtt must be 0 to 5s and bandwidth_mbps not negative")
		}
		if err := s.validatePacket(f, l); err != nil {
			return err
		}
	}
	if s.Probes.Every < 0 || s.Probes.Pulses < 0 || s.Probes.RangeBytes < 0 {
		return config.Errf("probes", "every, pulses and range_bytes must not be negative")
	}
	return nil
}

// LinkChange is what a degrade_link event does to the link from one
// ISP's clients to one site, mid-run: the settings given replace the
// link's (zero keeps what it had). Connections open at the time feel the
// change from their next bytes.
type LinkChange struct {
	ISP           string        `yaml:"isp"`
	Site          string        `yaml:"site"`
	RTT           time.Duration `yaml:"rtt,omitempty"`
	BandwidthMbps float64       `yaml:"bandwidth_mbps,omitempty"`
	Jitter        netem.Jitter  `yaml:"jitter,omitempty"`
	// Loss is the packet loss probability (netem.Link.Loss: each loss
	// stalls its bytes by a retransmission timeout).
	Loss float64 `yaml:"loss,omitempty"`
}

func (s *Scenario) validateDegrade(f string, e Event) error {
	c := e.Link
	if c == nil {
		return config.Errf(f+".link", "degrade_link needs link: {isp, site, and rtt, bandwidth_mbps, jitter or loss}")
	}
	found := false
	for _, ls := range s.Links {
		found = found || (ls.ISP == c.ISP && ls.Site == c.Site)
	}
	if !found {
		return config.Errf(f+".link", "no link from ISP %q to site %q in links to degrade", c.ISP, c.Site)
	}
	if c.RTT == 0 && c.BandwidthMbps == 0 && c.Jitter.IsZero() && c.Loss == 0 {
		return config.Errf(f+".link", "changes nothing: set rtt, bandwidth_mbps, jitter or loss")
	}
	l := netem.Link{RTT: c.RTT, BandwidthBps: c.BandwidthMbps * 1e6, Jitter: c.Jitter, Loss: c.Loss}
	if err := l.Validate(); err != nil || c.RTT > 5*time.Second {
		return config.Errf(f+".link", "%v (rtt at most 5s)", err)
	}
	return nil
}

// link is the emulated link from isp to site: the scenario's settings,
// changed by each degrade_link event at its time (a netem profile on the
// run's clock, so every connection shares one schedule).
func (l *Lab) link(isp string, ls LinkSpec) netem.Link {
	base := netem.Link{RTT: ls.RTT, BandwidthBps: ls.BandwidthMbps * 1e6}
	if ls.Packet != nil {
		return ls.streamFallback() // reached only without packet paths
	}
	type change struct {
		at time.Duration
		c  *LinkChange
	}
	var changes []change
	for _, e := range l.sc.Events {
		if e.Kind == "degrade_link" && e.Link.ISP == isp && e.Link.Site == ls.Site {
			at, _ := e.When(l.sc.Duration) // validated
			changes = append(changes, change{at, e.Link})
		}
	}
	if len(changes) == 0 {
		return base
	}
	sort.SliceStable(changes, func(i, j int) bool { return changes[i].at < changes[j].at })
	sched := &netem.Schedule[netem.Link]{Start: l.start, Steps: []netem.Step[netem.Link]{{At: 0, Link: base}}}
	cur := base
	for _, ch := range changes {
		if ch.c.RTT > 0 {
			cur.RTT = ch.c.RTT
		}
		if ch.c.BandwidthMbps > 0 {
			cur.BandwidthBps = ch.c.BandwidthMbps * 1e6
		}
		if !ch.c.Jitter.IsZero() {
			cur.Jitter = ch.c.Jitter
		}
		if ch.c.Loss > 0 {
			cur.Loss = ch.c.Loss
		}
		if last := &sched.Steps[len(sched.Steps)-1]; last.At == ch.at {
			last.Link = cur
		} else {
			sched.Steps = append(sched.Steps, netem.Step[netem.Link]{At: ch.at, Link: cur})
		}
	}
	return netem.Link{Profile: sched}
}

// linkFor returns, for a client of isp, the emulated link to each
// appliance address (IPv4 and IPv6) of the sites the ISP has links to;
// the control plane and origin are reached directly.
func (l *Lab) linkFor(isp string) func(netip.AddrPort) (netem.Link, bool) {
	links := map[netip.Addr]netem.Link{}
	for _, ls := range l.sc.Links {
		if ls.ISP != isp {
			continue
		}
		link := l.link(isp, ls)
		for _, a := range l.sc.Appliances {
			if ls.Site == a.Site {
				links[a.Address.Addr()] = link
				if a.Address6.IsValid() {
					links[a.Address6.Addr()] = link
				}
			}
		}
	}
	return func(ap netip.AddrPort) (netem.Link, bool) {
		link, ok := links[ap.Addr()]
		return link, ok
	}
}

// probeLoop runs a recipe every Probes.Every until ctx ends, spooling each
// report and uploading the spool, as a client would.
func (l *Lab) probeLoop(ctx, runCtx context.Context, c *labClient, client int) {
	every := l.sc.Probes.Every
	if every <= 0 {
		return
	}
	src := c.src
	direct := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: c.direct}}
	defer direct.CloseIdleConnections()
	// Probes reach appliances as the player does: by name through the
	// resolver, verified with the lab's CA.
	cn, err := clientnet.New(clientnet.Config{RootCAs: l.roots, Resolver: l.resolver, Dial: clientnet.DialFunc(c.dial)})
	if err != nil {
		l.log.Error("probe client", "err", err)
		return
	}
	cp := cpclient.Must(c.controlURLs, direct, "")
	up := &probe.Uploader{Dir: filepath.Join(l.work, "spool", strconv.Itoa(client)), Control: cp,
		Client: direct, Logger: l.log, MinBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second}
	// Spread clients over the period so the control plane sees a steady
	// stream rather than bursts.
	first := time.Duration(client%17) * every / 17
	for wait := first; ; wait = every {
		if clock.Sleep(ctx, wait) != nil {
			break
		}
		rec, err := probe.FetchRecipe(ctx, cp, c.dualStack())
		if err != nil {
			l.log.Warn("recipe", "client", src, "err", err)
			continue
		}
		up.UseRecipe(rec)
		rep, err := probe.Run(ctx, rec, probe.Options{Dial: cn.DialContext, TLSConfig: cn.TLSConfig(), Resolver: cn.Resolver()})
		if err != nil {
			continue // cut short by the end of the run
		}
		if _, err := probe.Spool(up.Dir, rep); err != nil {
			l.log.Error("spool", "err", err)
			continue
		}
		if l.opts.OnSpool != nil {
			l.opts.OnSpool(rep.ID, len(rep.Pulses))
		}
		l.probeRuns.Add(1)
		up.Flush(ctx)
	}
	// Deliver what is left once streaming is over, as a client would when
	// it next comes online; an interrupted run does not wait for it.
	fctx, cancel := context.WithTimeout(runCtx, 5*time.Second)
	defer cancel()
	up.Flush(fctx)
}

// qoeUploader returns what a lab client does after each completed
// session, as a player would: upload its playback record, with the
// context a recipe from the control plane gives it (its experiment arm,
// its prefix group), through an on-disk spool.
func (l *Lab) qoeUploader(c *labClient, client int) func(ctx context.Context, s player.Session) {
	direct := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: c.direct}}
	cp := cpclient.Must(c.controlURLs, direct, "")
	up := &probe.Uploader{Dir: filepath.Join(l.work, "spool", strconv.Itoa(client)+"-qoe"), Control: cp,
		Client: direct, Logger: l.log, MinBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second}
	return func(ctx context.Context, s player.Session) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		rec, err := probe.FetchRecipe(ctx, cp, c.dualStack())
		if err != nil {
			l.log.Warn("recipe for a playback report", "client", c.src, "err", err)
			return
		}
		q := s.QoE()
		rep := &measure.Report{ID: probe.NewID(), Recipe: rec.ID, Context: rec.Context, ClientTime: s.Started, Player: &q}
		if _, err := probe.Spool(up.Dir, rep); err != nil {
			l.log.Error("spool", "err", err)
			return
		}
		up.UseRecipe(rec)
		up.Flush(ctx)
		direct.CloseIdleConnections()
	}
}

// MeasurementReport counts what the control plane's ingest saw.
type MeasurementReport struct {
	ReportsAccepted int `json:"reports_accepted"`
	ReportsRejected int `json:"reports_rejected"`
	// Rejections counts the rejected reports by the ingest's outcome
	// (invalid, too_old, future_dated, rate_limited, error, …).
	Rejections map[string]int `json:"rejections,omitempty"`
	Pulses     int            `json:"pulses"`
	// Dir is where the Parquet files are (ocdn analyze --data DIR).
	Dir string `json:"dir,omitempty"`
}

// QoEReport summarizes the playback sessions.
type QoEReport struct {
	Sessions       int     `json:"sessions"`
	StartupMsP50   float64 `json:"startup_ms_p50"`
	RebufferRatio  float64 `json:"rebuffer_ratio"`
	AvgBitrateKbps float64 `json:"avg_bitrate_kbps"`
	// StartupBreakdown is the median of each component of the first
	// segment request's startup, over the completed sessions whose first
	// request opened a new connection and got an answer.
	StartupBreakdown StartupBreakdown `json:"startup_breakdown"`
	// Families are the same figures per address family of the first
	// segment's connection (IPv4-only clients, and dual-stack ones by
	// the family their Happy Eyeballs race chose), ipv4 first.
	Families []FamilyQoE `json:"families,omitempty"`
}

// FamilyQoE is the QoE of the sessions over one address family.
type FamilyQoE struct {
	Family           string           `json:"family"`
	Sessions         int              `json:"sessions"`
	StartupMsP50     float64          `json:"startup_ms_p50"`
	RebufferRatio    float64          `json:"rebuffer_ratio"`
	AvgBitrateKbps   float64          `json:"avg_bitrate_kbps"`
	StartupBreakdown StartupBreakdown `json:"startup_breakdown"`
}

// StartupBreakdown is the median time of each part of a playback's first
// segment request (player.Startup).
type StartupBreakdown struct {
	// Sessions is how many sessions it is over, HTTPS how many of them
	// were https.
	Sessions     int     `json:"sessions"`
	HTTPS        int     `json:"https"`
	DNSMsP50     float64 `json:"dns_ms_p50"`
	ConnectMsP50 float64 `json:"connect_ms_p50"`
	TLSMsP50     float64 `json:"tls_ms_p50"`
	// FirstByteMsP50 is from the request written to the first response
	// byte.
	FirstByteMsP50 float64 `json:"first_byte_ms_p50"`
}

// startupBreakdown takes the medians over sessions whose first segment
// request opened a connection (a reused one has no DNS, connect or TLS
// to break down).
func startupBreakdown(sessions []player.Session) StartupBreakdown {
	var dns, conn, tls, fb []float64
	var b StartupBreakdown
	for _, s := range sessions {
		st := s.Startup
		// A first request that failed over before its first byte is a
		// failover's story, not a startup's.
		if !s.Completed || st == nil || st.Reused || st.ConnectMs == 0 || st.FirstByteMs == 0 {
			continue
		}
		b.Sessions++
		if st.HTTPS {
			b.HTTPS++
		}
		dns, conn, tls, fb = append(dns, st.DNSMs), append(conn, st.ConnectMs), append(tls, st.TLSMs), append(fb, st.FirstByteMs)
	}
	b.DNSMsP50, b.ConnectMsP50, b.TLSMsP50, b.FirstByteMsP50 = median(dns), median(conn), median(tls), median(fb)
	return b
}

// median of xs (sorted in place); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	return xs[len(xs)/2]
}

// measurementReport counts what the control plane's ingest saw, from its
// metrics.
func measurementReport(fams []*dto.MetricFamily) MeasurementReport {
	r := MeasurementReport{
		Pulses:          int(counter(fams, "ocdn_measure_pulses_total", "", "")),
		ReportsAccepted: int(counter(fams, "ocdn_measure_reports_total", "outcome", measure.OutcomeAccepted)),
	}
	for outcome, n := range counterByLabel(fams, "ocdn_measure_reports_total", "outcome") {
		if outcome != measure.OutcomeAccepted && outcome != measure.OutcomeDuplicate && n > 0 {
			if r.Rejections == nil {
				r.Rejections = map[string]int{}
			}
			r.Rejections[outcome] = int(n)
			r.ReportsRejected += int(n)
		}
	}
	return r
}

// qoeReport: the median startup delay, rebuffering time over playing
// time, and the play-time weighted mean bitrate of completed sessions,
// over all and per address family.
func qoeReport(sessions []player.Session) QoEReport {
	r := qoeOf(sessions)
	for _, fam := range []string{measure.FamilyIPv4, measure.FamilyIPv6} {
		var of []player.Session
		for _, s := range sessions {
			if s.Startup != nil && s.Startup.Family == fam {
				of = append(of, s)
			}
		}
		if q := qoeOf(of); q.Sessions > 0 {
			r.Families = append(r.Families, FamilyQoE{Family: fam, Sessions: q.Sessions, StartupMsP50: q.StartupMsP50,
				RebufferRatio: q.RebufferRatio, AvgBitrateKbps: q.AvgBitrateKbps, StartupBreakdown: q.StartupBreakdown})
		}
	}
	return r
}

func qoeOf(sessions []player.Session) QoEReport {
	var startups []float64
	var rebuf, played, bitrateTime float64
	for _, s := range sessions {
		if !s.Completed {
			continue
		}
		q := s.QoE()
		startups = append(startups, q.StartupMs)
		rebuf += q.RebufferMs
		played += q.DurationMs
		bitrateTime += q.AvgBitrateKbps * q.DurationMs
	}
	r := QoEReport{Sessions: len(startups), StartupBreakdown: startupBreakdown(sessions)}
	if len(startups) == 0 {
		return r
	}
	sort.Float64s(startups)
	r.StartupMsP50 = startups[len(startups)/2]
	if played > 0 {
		r.RebufferRatio = rebuf / played
		r.AvgBitrateKbps = bitrateTime / played
	}
	return r
}
