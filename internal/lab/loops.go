package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/defaults"
	"github.com/ocdn/ocdn/internal/player"
)

// The lab exercises the control plane's two loops. Demand → placement →
// fill: a popularity_shift makes a title hot among one ISP's clients (the
// clients choose it for a share of their plays), the control plane sees
// the demand at their home site, replans, and the site fills the title in
// its next window; the report follows that title's content misses at the
// site, per 5 s, from the shift until they fall below a tenth of their
// peak, in fill windows. A release puts a title on the control plane's
// release feed (PUT /v1/admin/popularity-feed, the file written to
// etc/feeds/) Lead before its clients start playing it; the report counts
// how many of its sessions were served from an embedded site from their
// first request.

// PlacementSettings shape the control plane's placement loop in the lab,
// compressed like the fill clock.
type PlacementSettings struct {
	// CheckInterval is how often demand is folded and the ranking
	// checked (default 1s); ReplanInterval how often the control plane
	// replans anyway (default 30s).
	CheckInterval  time.Duration `yaml:"check_interval"`
	ReplanInterval time.Duration `yaml:"replan_interval"`
	// HalfLife is the demand average's (default 30s). A lab's few
	// clients make a noisy ranking: Hysteresis (default 0.3) and
	// RankingChange (default 0.1) keep the placement from chasing it.
	HalfLife      time.Duration `yaml:"half_life"`
	Hysteresis    float64       `yaml:"hysteresis"`
	RankingChange float64       `yaml:"ranking_change"`
	// MaxChurn is the share of a site's capacity one replan may add
	// (default 0.25).
	MaxChurn float64 `yaml:"max_churn"`
}

func (p PlacementSettings) withDefaults() PlacementSettings {
	defaults.Positive(&p.CheckInterval, time.Second)
	defaults.Positive(&p.ReplanInterval, 30*time.Second)
	defaults.Positive(&p.HalfLife, 30*time.Second)
	defaults.Positive(&p.Hysteresis, 0.3)
	defaults.Positive(&p.RankingChange, 0.1)
	defaults.Positive(&p.MaxChurn, 0.25)
	return p
}

func (p PlacementSettings) validate() error {
	if p.CheckInterval < 0 || p.ReplanInterval < 0 || p.HalfLife < 0 {
		return config.Errf("placement", "check_interval, replan_interval and half_life must not be negative")
	}
	for _, v := range []struct {
		field string
		v     float64
		hi    float64
	}{{"max_churn", p.MaxChurn, 1}, {"ranking_change", p.RankingChange, 1}, {"hysteresis", p.Hysteresis, 0.99}} {
		if v.v < 0 || v.v > v.hi {
			return config.Errf("placement."+v.field, "%g is not a share from 0 to %g", v.v, v.hi)
		}
	}
	return nil
}

// validateLoopEvent checks a release or popularity_shift.
func (s *Scenario) validateLoopEvent(f string, e Event) error {
	n, err := strconv.Atoi(strings.TrimPrefix(e.Title, "t"))
	if !strings.HasPrefix(e.Title, "t") || err != nil || e.Title != fmt.Sprintf("t%04d", n) || n >= s.Catalog.Titles {
		return config.Errf(f+".title", "%q is not a title of the catalog (t0000 to t%04d)", e.Title, s.Catalog.Titles-1)
	}
	if e.Share <= 0 || e.Share > 1 {
		return config.Errf(f+".share", "%g is not a share of plays above 0 and at most 1", e.Share)
	}
	if e.Kind == "popularity_shift" {
		if !slices.ContainsFunc(s.Clients, func(c ClientGroup) bool { return c.ISP == e.Target }) {
			return config.Errf(f+".target", "%q is not an ISP with clients (a popularity shift targets the clients of one region)", e.Target)
		}
		return nil
	}
	at, _ := e.When(s.Duration)
	if e.Lead < 0 || e.Lead > at {
		return config.Errf(f+".lead", "%s is not between 0 and the release time %s: the feed is announced lead before the release", e.Lead, at)
	}
	for i, o := range s.Events {
		if o.Kind == "release" && o.Title == e.Title && f != fmt.Sprintf("events[%d]", i) {
			return config.Errf(f+".title", "%s is released twice (also events[%d])", e.Title, i)
		}
	}
	return nil
}

// playlist decides what the lab's clients play: Zipf over the catalog's
// titles in order, without releases not yet out; after a popularity shift
// a share of the target ISP's plays go to its title, after a release a
// share of everyone's go to the released title (the latest event first).
type playlist struct {
	titles []string

	mu         sync.Mutex
	unreleased map[string]bool
	released   []hotTitle
	shifted    map[string][]hotTitle // ISP → shifts
}

type hotTitle struct {
	title string
	share float64
}

func newPlaylist(titles []string, events []Event) *playlist {
	p := &playlist{titles: titles, unreleased: map[string]bool{}, shifted: map[string][]hotTitle{}}
	for _, e := range events {
		if e.Kind == "release" {
			p.unreleased[e.Title] = true
		}
	}
	return p
}

func (p *playlist) next(isp string, rng *rand.Rand) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, hot := range [][]hotTitle{p.shifted[isp], p.released} {
		for i := len(hot) - 1; i >= 0; i-- {
			if rng.Float64() < hot[i].share {
				return hot[i].title
			}
		}
	}
	out := make([]string, 0, len(p.titles))
	for _, t := range p.titles {
		if !p.unreleased[t] {
			out = append(out, t)
		}
	}
	return out[zipf(rng, len(out))]
}

func (p *playlist) shift(isp, title string, share float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.shifted[isp] = append(p.shifted[isp], hotTitle{title, share})
}

func (p *playlist) release(title string, share float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.unreleased, title)
	p.released = append(p.released, hotTitle{title, share})
}

// play is one finished session with who played it.
type play struct {
	isp  string
	sess player.Session
}

// loops is the lab's state for the loops: the playlist, the sessions
// played, the 5-s samples.
type loops struct {
	playlist *playlist
	mu       sync.Mutex
	plays    []play
	samples  []loopSample
	feeds    map[string]float64 // release title → when its feed was put (run seconds)
}

// loopSample is the cumulative counters at one moment.
type loopSample struct {
	at            float64 // seconds of streaming
	embedded, all int64   // client bytes
	content       int64   // content misses
	byHome        map[string]map[string]int64
	ok            bool // the control plane answered
}

func (l *Lab) recordPlay(isp string, sess player.Session) {
	l.loops.mu.Lock()
	defer l.loops.mu.Unlock()
	l.loops.plays = append(l.loops.plays, play{isp, sess})
}

// feedFile is the name of the release feed Compile writes for the i-th
// release event: every release announced up to and including it.
func feedFile(i int, title string) string {
	return filepath.Join("feeds", fmt.Sprintf("release-%02d-%s.json", i, title))
}

// compileFeeds writes one feed per release event: the files of each
// release announced so far, each predicted at its share of every client's
// plays of the title (plays a day × file size), urgent so that appliances
// fill them outside the window.
func (d *Deployment) compileFeeds(sc *Scenario) error {
	clients := 0
	for _, g := range sc.Clients {
		clients += g.Count
	}
	playsPerDay := float64(clients) * (24 * time.Hour).Seconds() / sc.Catalog.Duration.Seconds()
	var feed content.Feed
	for i, e := range sc.Events {
		if e.Kind != "release" {
			continue
		}
		for _, f := range d.Catalog.TitleFiles(e.Title) {
			feed.Predictions = append(feed.Predictions, content.Prediction{Path: f.Path, BytesPerDay: e.Share * playsPerDay * float64(f.Size), Urgent: true})
		}
		b, err := json.MarshalIndent(feed, "", "  ")
		if err != nil {
			return err
		}
		d.files[feedFile(i, e.Title)] = append(b, '\n')
	}
	return nil
}

// loopEvent makes a release or popularity_shift happen (a release's feed
// went Lead earlier, announceRelease) and completes its record.
func (l *Lab) loopEvent(e Event, rec *EventRecord) {
	rec.Target = e.Title
	switch e.Kind {
	case "popularity_shift":
		rec.Target = e.Target + " " + e.Title
		l.loops.playlist.shift(e.Target, e.Title, e.Share)
	case "release":
		l.loops.playlist.release(e.Title, e.Share)
	}
}

// announceRelease puts release i's feed to the control plane.
func (l *Lab) announceRelease(ctx context.Context, i int, e Event) {
	data := l.dep.files[feedFile(i, e.Title)]
	if err := l.view.putFeed(ctx, data); err != nil {
		l.log.Error("release feed", "title", e.Title, "err", err)
		return
	}
	l.loops.mu.Lock()
	l.loops.feeds[e.Title] = time.Since(l.start).Seconds()
	l.loops.mu.Unlock()
	l.status("release feed for " + e.Title + " sent to the control plane")
}

// sampleEvery is the resolution of the loop figures.
const sampleEvery = 5 * time.Second

// sampleLoop records the counters every sampleEvery of streaming until ctx
// ends.
func (l *Lab) sampleLoop(ctx context.Context) {
	l.sample(ctx)
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.sample(ctx)
		}
	}
}

func (l *Lab) sample(ctx context.Context) {
	s := loopSample{at: time.Since(l.start).Seconds()}
	kinds := map[string]config.SiteKind{}
	for _, site := range l.sc.Sites {
		kinds[site.ID] = site.Kind
	}
	for _, la := range l.appliances {
		st, _ := la.handle().Status(ctx) // a killed appliance's last status
		s.all += st.ClientBytes
		if kinds[la.cfg.Site] == config.SiteEmbedded {
			s.embedded += st.ClientBytes
		}
	}
	if sum, err := l.view.fillSummary(ctx); err == nil {
		s.ok, s.content, s.byHome = true, sum.Misses.Content, sum.Misses.ContentByHome
	}
	l.loops.mu.Lock()
	l.loops.samples = append(l.loops.samples, s)
	l.loops.mu.Unlock()
}

// LoopsReport is what the placement loop did: replans and their churn,
// offload and content misses per 5 s, and each popularity shift and
// release.
type LoopsReport struct {
	Replans int `json:"replans"`
	// ChurnBound is the share of a site's capacity one replan may add;
	// MaxChurnShare the largest any replan added to a site.
	ChurnBound    float64        `json:"churn_bound"`
	MaxChurnShare float64        `json:"max_churn_share"`
	Recent        []ReplanRecord `json:"recent_replans"`
	// Samples are offload and content misses per 5 s of streaming.
	Samples []LoopSample `json:"samples"`
	// WindowSeconds is one fill cycle (a day of the compressed clock,
	// one window) in run time.
	WindowSeconds float64         `json:"window_seconds"`
	Shifts        []ShiftReport   `json:"shifts"`
	Releases      []ReleaseReport `json:"releases"`
}

// ReplanRecord is one replan, at seconds of streaming (negative: while
// the appliances filled before streaming).
type ReplanRecord struct {
	AtSeconds  float64 `json:"at_seconds"`
	Reason     string  `json:"reason"`
	AddedBytes int64   `json:"added_bytes"`
	// MaxSiteShare is the largest share of a site's capacity it added.
	MaxSiteShare float64 `json:"max_site_share"`
}

// LoopSample is one 5-s interval ending at AtSeconds.
type LoopSample struct {
	AtSeconds float64 `json:"at_seconds"`
	// Offload is the share of the interval's client bytes served by
	// embedded sites.
	Offload          float64 `json:"offload"`
	ClientBytes      int64   `json:"client_bytes"`
	ContentMissBytes int64   `json:"content_miss_bytes"`
}

// ShiftReport follows one popularity shift: the content misses of its
// title at the region's home site.
type ShiftReport struct {
	AtSeconds float64 `json:"at_seconds"`
	Region    string  `json:"region"`
	Home      string  `json:"home"`
	Title     string  `json:"title"`
	// MissesBefore is the title's content misses at Home before the
	// shift; Misses those of each 5-s interval from the shift on.
	MissesBefore  int64   `json:"content_misses_before_bytes"`
	Misses        []int64 `json:"content_misses_bytes"`
	PeakBytes     int64   `json:"peak_bytes"`
	PeakAtSeconds float64 `json:"peak_at_seconds"`
	// RecoveredAtSeconds is the end of the first interval after the peak
	// from which every interval to the end of the run stayed under a
	// tenth of the peak (0: not in this run); RecoveryWindows is that
	// time after the shift in fill windows.
	RecoveredAtSeconds float64 `json:"recovered_at_seconds"`
	RecoveryWindows    float64 `json:"recovery_windows"`
}

// ReleaseReport follows one release: the sessions of its title by
// clients whose home is an embedded site, and how many of them the
// embedded site served from the first request.
type ReleaseReport struct {
	AtSeconds     float64 `json:"at_seconds"`
	FeedAtSeconds float64 `json:"feed_at_seconds"`
	Title         string  `json:"title"`
	Sessions      int     `json:"sessions"`
	// FirstFromEmbedded counts sessions whose first byte came from an
	// embedded site.
	FirstFromEmbedded int `json:"first_from_embedded"`
	// ContentMissBytes is the title's content misses at every home site.
	ContentMissBytes int64 `json:"content_miss_bytes"`
}

// loopsReport builds the report from the samples, the sessions and the
// control plane's replan history.
func (l *Lab) loopsReport(ctx context.Context) *LoopsReport {
	r := &LoopsReport{}
	factor := l.sc.Fill.ClockFactor
	defaults.Positive(&factor, 3600)
	r.WindowSeconds = (24 * time.Hour).Seconds() / factor
	if st, err := l.view.placement(ctx); err == nil {
		r.Replans, r.ChurnBound = st.Replans, st.ChurnBound
		for _, rp := range st.Recent {
			rec := ReplanRecord{AtSeconds: rp.At.Sub(l.start).Seconds(), Reason: rp.Reason, AddedBytes: rp.AddedBytes}
			for _, c := range rp.Sites {
				rec.MaxSiteShare = max(rec.MaxSiteShare, c.Share)
			}
			r.MaxChurnShare = max(r.MaxChurnShare, rec.MaxSiteShare)
			r.Recent = append(r.Recent, rec)
		}
	}
	l.loops.mu.Lock()
	samples := slices.Clone(l.loops.samples)
	plays := slices.Clone(l.loops.plays)
	feeds := make(map[string]float64, len(l.loops.feeds))
	for k, v := range l.loops.feeds {
		feeds[k] = v
	}
	l.loops.mu.Unlock()
	// Intervals between consecutive samples the control plane answered.
	var valid []loopSample
	for _, s := range samples {
		if s.ok {
			valid = append(valid, s)
		}
	}
	for i := 1; i < len(valid); i++ {
		a, b := valid[i-1], valid[i]
		ls := LoopSample{AtSeconds: b.at, ClientBytes: b.all - a.all, ContentMissBytes: b.content - a.content}
		if ls.ClientBytes > 0 {
			ls.Offload = float64(b.embedded-a.embedded) / float64(ls.ClientBytes)
		}
		r.Samples = append(r.Samples, ls)
	}
	home := l.homeSites()
	for _, e := range l.sc.Events {
		at, _ := e.When(l.sc.Duration)
		switch e.Kind {
		case "popularity_shift":
			r.Shifts = append(r.Shifts, shiftReport(valid, at.Seconds(), e.Target, home[e.Target], e.Title, r.WindowSeconds))
		case "release":
			rr := ReleaseReport{AtSeconds: at.Seconds(), FeedAtSeconds: feeds[e.Title], Title: e.Title}
			if n := len(valid); n > 0 {
				for _, titles := range valid[n-1].byHome {
					rr.ContentMissBytes += titles[e.Title]
				}
			}
			embedded := l.embeddedAppliances()
			for _, p := range plays {
				if p.sess.Title != e.Title || !l.embeddedHome(p.isp) {
					continue
				}
				rr.Sessions++
				if len(p.sess.ServedOrder) > 0 && embedded[p.sess.ServedOrder[0]] {
					rr.FirstFromEmbedded++
				}
			}
			r.Releases = append(r.Releases, rr)
		}
	}
	return r
}

// shiftReport follows title's content misses at home through the samples.
func shiftReport(samples []loopSample, at float64, region, home, title string, window float64) ShiftReport {
	sr := ShiftReport{AtSeconds: at, Region: region, Home: home, Title: title}
	misses := func(s loopSample) int64 { return s.byHome[home][title] }
	var after []loopSample // interval ends after the shift, with the sample before the first
	for i, s := range samples {
		if s.at <= at {
			sr.MissesBefore = misses(s)
			continue
		}
		if len(after) == 0 && i > 0 {
			after = append(after, samples[i-1])
		}
		after = append(after, s)
	}
	peakAt := -1
	for i := 1; i < len(after); i++ {
		d := misses(after[i]) - misses(after[i-1])
		sr.Misses = append(sr.Misses, d)
		if d > sr.PeakBytes {
			sr.PeakBytes, sr.PeakAtSeconds, peakAt = d, after[i].at, i-1
		}
	}
	if peakAt < 0 {
		return sr
	}
	// The first interval after the peak from which all stay under a tenth.
	for i := len(sr.Misses) - 1; i > peakAt && 10*sr.Misses[i] < sr.PeakBytes; i-- {
		sr.RecoveredAtSeconds = after[i+1].at
	}
	if sr.RecoveredAtSeconds > 0 && window > 0 {
		sr.RecoveryWindows = (sr.RecoveredAtSeconds - at) / window
	}
	return sr
}

// homeSites maps each ISP to its clients' home site: its embedded (or
// private) site, else the first IXP or fallback site.
func (l *Lab) homeSites() map[string]string {
	out := map[string]string{}
	var global string
	for _, s := range l.sc.Sites {
		if s.Kind == config.SiteIXP || s.Kind == config.SiteFallback {
			if global == "" {
				global = s.ID
			}
			continue
		}
		if _, ok := out[s.ISP]; !ok && s.ISP != "" {
			out[s.ISP] = s.ID
		}
	}
	for _, isp := range l.sc.ISPs {
		if _, ok := out[isp.Name]; !ok {
			out[isp.Name] = global
		}
	}
	return out
}

func (l *Lab) embeddedHome(isp string) bool {
	return slices.ContainsFunc(l.sc.Sites, func(s config.Site) bool { return s.ISP == isp && s.Kind == config.SiteEmbedded })
}

func (l *Lab) embeddedAppliances() map[string]bool {
	out := map[string]bool{}
	for _, a := range l.sc.Appliances {
		if s, ok := l.sc.SiteByID(a.Site); ok && s.Kind == config.SiteEmbedded {
			out[a.ID] = true
		}
	}
	return out
}

// print writes the loop figures.
func (r *LoopsReport) print(w io.Writer) {
	fmt.Fprintf(w, "\nPlacement loop: %d replans; churn per replan at most %.1f%% of a site's capacity (bound %.0f%%).\n",
		r.Replans, 100*r.MaxChurnShare, 100*r.ChurnBound)
	if len(r.Recent) > 0 {
		var parts []string
		for _, rp := range r.Recent {
			parts = append(parts, fmt.Sprintf("%.0fs %s %s", rp.AtSeconds, rp.Reason, mb(rp.AddedBytes)))
		}
		fmt.Fprintf(w, "  replans (time, reason, bytes moved): %s\n", strings.Join(parts, "; "))
	}
	if len(r.Samples) > 0 {
		var off, miss []string
		for _, s := range r.Samples {
			if s.ClientBytes == 0 {
				off = append(off, "-")
			} else {
				off = append(off, fmt.Sprintf("%.0f", 100*s.Offload))
			}
			miss = append(miss, fmt.Sprintf("%.1f", float64(s.ContentMissBytes)/1e6))
		}
		fmt.Fprintf(w, "  offload per 5 s (%%):         %s\n", strings.Join(off, " "))
		fmt.Fprintf(w, "  content misses per 5 s (MB): %s\n", strings.Join(miss, " "))
	}
	for _, s := range r.Shifts {
		fmt.Fprintf(w, "  popularity shift at %.1fs (%s → %s, home %s): content misses of %s before %s; then per 5 s %s; peak %s at %.0fs",
			s.AtSeconds, s.Region, s.Title, s.Home, s.Title, mb(s.MissesBefore), mbList(s.Misses), mb(s.PeakBytes), s.PeakAtSeconds)
		if s.RecoveredAtSeconds > 0 {
			fmt.Fprintf(w, "; under 10%% of the peak from %.0fs on: %.1f fill windows after the shift (a window is %.0f s)\n",
				s.RecoveredAtSeconds, s.RecoveryWindows, r.WindowSeconds)
		} else {
			fmt.Fprintln(w, "; not under 10% of the peak by the end of the run")
		}
	}
	for _, rl := range r.Releases {
		fmt.Fprintf(w, "  release of %s at %.1fs (feed at %.1fs): ", rl.Title, rl.AtSeconds, rl.FeedAtSeconds)
		if rl.Sessions == 0 {
			fmt.Fprint(w, "no client with an embedded home played it before the end of the run")
		} else {
			fmt.Fprintf(w, "%d of %d sessions of clients with an embedded home served from an embedded site from the first request", rl.FirstFromEmbedded, rl.Sessions)
		}
		fmt.Fprintf(w, "; content misses %s\n", mb(rl.ContentMissBytes))
	}
}

func mbList(xs []int64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.1f", float64(x)/1e6)
	}
	return "[" + strings.Join(parts, " ") + "] MB"
}

// putFeed sends a release feed to the control plane, which replans; with
// replicas, to the first that takes it (they share the plan's inputs).
func (v *controlView) putFeed(ctx context.Context, feed []byte) error {
	var err error
	for _, u := range v.urls {
		if err = v.putFeedTo(ctx, u, feed); err == nil {
			return nil
		}
	}
	return err
}

func (v *controlView) putFeedTo(ctx context.Context, base string, feed []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/v1/admin/popularity-feed", bytes.NewReader(feed))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+v.admin)
	resp, err := v.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("PUT /v1/admin/popularity-feed: %s: %s", resp.Status, msg)
	}
	var rec api.Replan
	return json.NewDecoder(resp.Body).Decode(&rec)
}

// placement is the control plane's replan history.
func (v *controlView) placement(ctx context.Context) (api.PlacementStatus, error) {
	var out api.PlacementStatus
	err := v.get(ctx, "/v1/admin/placement", v.admin, &out)
	return out, err
}
