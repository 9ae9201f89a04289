// Package player provides a playback client that behaves like a video
// player: it asks steering for a title's files, fetches segments as byte
// ranges against a playback clock with a bounded buffer, adapts the
// bitrate to the buffer level, fails over down the ranked URL list on
// error, timeout or throughput collapse, re-steers when the list is
// exhausted, and records what the viewer experienced.
//
// # Segments
//
// Every video rung of a title is one file. Segment k of any rung covers
// playback time [k·SegmentDuration, (k+1)·SegmentDuration) and is the
// byte range [k·b, (k+1)·b) of that rung's file, with b = bitrate ·
// SegmentDuration / 8; rungs can therefore change at every segment
// boundary.
//
// # Adaptation (BBA-0)
//
// The default ABR is BBA-0 of Huang et al. (SIGCOMM 2014): the next rung
// is a function of the buffer level B only. Below the reservoir (default
// 3/8 of MaxBuffer) the lowest rung is fetched; above reservoir + cushion
// (cushion defaults to 21/40 of MaxBuffer; the paper's 90 s and 126 s of
// a 240 s buffer, scaled) it moves towards the highest; in between a
// linear rate map f(B) from the lowest to the highest bitrate decides,
// and the rung moves only when f(B) crosses a neighbouring rung (see
// bba.next). Upward moves are one rung per segment, a deviation from the
// paper for buffers of seconds. The first segment is always the lowest
// rung (B = 0). The ladder is the title's video files at or below
// MaxBitrateKbps. Config.ABR = "fixed" plays the top allowed rung
// throughout instead.
//
// The failed-appliance set is shared by the rungs: an appliance that
// failed is skipped for every rung until steering answers again.
//
// # Failover
//
// A fetch fails over to the next URL of the rung's list on an HTTP or
// transport error, on RequestTimeout, or on throughput collapse: while
// the buffer is below the reservoir, the fetch must keep delivering at
// least CollapseRatio (default 0.5) of the rung's bitrate after a grace
// period (CollapseGrace, default 500 ms, counted from when the connection
// is ready: resolving, connecting and a TLS handshake are set-up); the
// check is a progress deadline re-armed on every read, so a stalled
// transfer is abandoned mid-segment, not after it. Collapse only aborts
// a fetch when the list has another URL to go to. After an error the
// next URL is asked for the rest of the segment (the bytes already
// received are kept); after a collapse on a rung above the lowest, the
// whole segment is fetched again at the lowest rung, since the buffer is
// short. When every URL of the list has failed, the player asks steering
// again: at once, then after 250 ms, doubling up to 4 s, for as long as
// ResteerPatience allows since the list first ran out. The only holder of
// a file restarting, or an appliance the control plane has not yet seen
// go, costs the viewer a stall, not the session; a session fails when
// nothing could serve it for that long.
//
// # The control plane
//
// Titles and steering come from a list of control-plane replicas through
// cpclient: a replica that refuses connections, times out (each attempt
// is bounded by RequestTimeout) or answers 5xx costs one request, and the
// next replica answers at once; the player stays with the replica that
// answered. Only when every replica fails does the player wait and ask
// again, with backoff, for up to ControlPatience: an outage of the whole
// control plane delays playback rather than failing it.
package player

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/clientnet"
	"github.com/ocdn/ocdn/internal/clock"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/cpclient"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/steer"
)

// Config wires a player. Zero values get the defaults documented on each
// field.
type Config struct {
	// ControlURLs are the control-plane replicas (http(s)://host:port),
	// tried in this order with failover; at least one is required.
	ControlURLs []string
	// Source is the client address to bind; zero lets the kernel choose.
	// Ignored when Dial is set.
	Source netip.Addr
	// Dial, when set, opens every connection to a resolved address (the
	// lab injects a netem dialer that binds Source itself).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// CAFile is a PEM bundle verifying https appliances and control
	// planes (default: the system's roots); RootCAs, when set, is used
	// instead.
	CAFile  string
	RootCAs *x509.CertPool
	// Resolver is the DNS server names in URLs are resolved through
	// (ADDR:PORT; default: the system's resolver).
	Resolver netip.AddrPort
	// DualStack says the client has IPv4 and IPv6: it asks steering for
	// every family's URL of each appliance (family=both) and connects to
	// an appliance as RFC 8305's Happy Eyeballs does, racing its name of
	// the other family against the URL's (IPv6 first).
	DualStack bool
	// SegmentDuration is the playback time one range request carries
	// (default 2 s).
	SegmentDuration time.Duration
	// MaxBuffer is how far ahead of playback the player downloads
	// (default 4 segments).
	MaxBuffer time.Duration
	// RequestTimeout bounds one segment fetch, and one request to one
	// control-plane replica; past it the player fails over (default 3 s).
	RequestTimeout time.Duration
	// ControlPatience is how long the player keeps asking a control plane
	// none of whose replicas answers (for steering or a title) before the
	// session fails: an outage of the control plane delays playback, it
	// does not end it (default 2 minutes). One replica down costs no
	// patience: the next one is asked at once.
	ControlPatience time.Duration
	// MaxBitrateKbps caps the ladder: only video rungs at or below it are
	// played (0 = no cap; if every rung is above it, the lowest).
	MaxBitrateKbps int
	// URLs is how many URLs to ask steering for (default 5).
	URLs int
	// ResteerPatience is how long a segment keeps asking steering again,
	// with backoff, after every URL it was given failed; the time counts
	// from when the first list ran out, without the time spent waiting
	// for a control plane that does not answer (ControlPatience bounds
	// that), and restarts when bytes arrive (default 30 s).
	ResteerPatience time.Duration
	// ABR is ABRBuffer ("bba", the default) or ABRFixed ("fixed").
	ABR string
	// Reservoir and Cushion are BBA-0's parameters (defaults 3/8 and
	// 21/40 of MaxBuffer, the paper's proportions).
	Reservoir, Cushion time.Duration
	// CollapseRatio is the share of the rung's bitrate below which a
	// fetch made with the buffer under the reservoir is abandoned
	// (default 0.5; negative disables the check).
	CollapseRatio float64
	// CollapseGrace is how long a fetch may take to deliver its first
	// bytes before the collapse check applies (default 500 ms).
	CollapseGrace time.Duration
}

// Player plays sessions one after another; it is not safe for concurrent
// Play calls.
type Player struct {
	cfg     Config
	client  *http.Client
	control *cpclient.Client
	// alternates are, for a dual-stack player, each appliance host name
	// steering gave with the appliance's names of the other family.
	altMu      sync.Mutex
	alternates map[string][]string
}

// New returns a player with its own connection pool bound to Source. It
// fails only for ControlURLs that are missing or not base URLs.
func New(cfg Config) (*Player, error) {
	if cfg.SegmentDuration <= 0 {
		cfg.SegmentDuration = 2 * time.Second
	}
	if cfg.MaxBuffer <= 0 {
		cfg.MaxBuffer = 4 * cfg.SegmentDuration
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 3 * time.Second
	}
	if cfg.ControlPatience <= 0 {
		cfg.ControlPatience = 2 * time.Minute
	}
	if cfg.URLs <= 0 {
		cfg.URLs = 5
	}
	if cfg.ResteerPatience <= 0 {
		cfg.ResteerPatience = 30 * time.Second
	}
	if cfg.ABR == "" {
		cfg.ABR = ABRBuffer
	}
	if cfg.Reservoir <= 0 {
		cfg.Reservoir = cfg.MaxBuffer * 3 / 8
	}
	if cfg.Cushion <= 0 {
		cfg.Cushion = cfg.MaxBuffer * 21 / 40
	}
	if cfg.CollapseRatio == 0 {
		cfg.CollapseRatio = 0.5
	}
	if cfg.CollapseGrace <= 0 {
		cfg.CollapseGrace = 500 * time.Millisecond
	}
	dial := cfg.Dial
	if dial == nil {
		d := &net.Dialer{Timeout: cfg.RequestTimeout}
		if cfg.Source.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: cfg.Source.AsSlice()}
		}
		dial = d.DialContext
	}
	p := &Player{cfg: cfg}
	ccfg := clientnet.Config{CAFile: cfg.CAFile, RootCAs: cfg.RootCAs, Resolver: cfg.Resolver, Dial: timedDial(dial)}
	if cfg.DualStack {
		p.alternates = map[string][]string{}
		ccfg.Alternates = p.alternatesOf
	}
	dialer, err := clientnet.New(ccfg)
	if err != nil {
		return nil, fmt.Errorf("player: %w", err)
	}
	tr := dialer.Transport()
	// Control requests share the pool (and so the source address and the
	// lab's emulated links) but carry a per-request timeout, so that a
	// replica that hangs costs one RequestTimeout before cpclient moves
	// on, rather than the whole request's context.
	control, err := cpclient.New(cfg.ControlURLs, &http.Client{Transport: tr, Timeout: cfg.RequestTimeout}, "")
	if err != nil {
		return nil, fmt.Errorf("player: control_urls: %w", err)
	}
	p.client, p.control = &http.Client{Transport: tr}, control
	return p, nil
}

// alternatesOf are host's names of the other family.
func (p *Player) alternatesOf(host string) []string {
	p.altMu.Lock()
	defer p.altMu.Unlock()
	return p.alternates[host]
}

// learnAlternates records, from a family=both answer, each URL's host
// with the appliance's names of the other family.
func (p *Player) learnAlternates(c steer.Choice) {
	own := hostOf(c.URL)
	if own == "" {
		return
	}
	var alts []string
	for _, u := range []string{c.URLIPv4, c.URLIPv6} {
		if h := hostOf(u); h != "" && h != own {
			alts = append(alts, h)
		}
	}
	if len(alts) == 0 {
		return
	}
	p.altMu.Lock()
	defer p.altMu.Unlock()
	p.alternates[own] = alts
}

// hostOf is u's host name or address, "" if u is not a URL.
func hostOf(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return pu.Hostname()
}

// Close releases idle connections.
func (p *Player) Close() { p.client.CloseIdleConnections() }

// Session is the QoE record of one playback.
type Session struct {
	Title string `json:"title"`
	// File and BitrateKbps are the rung of the last segment fetched.
	File        string    `json:"file"`
	BitrateKbps int       `json:"bitrate_kbps"`
	Started     time.Time `json:"started"`
	// StartupMs is from Play to the first segment being playable.
	StartupMs  float64 `json:"startup_ms"`
	Rebuffers  int     `json:"rebuffers"`
	RebufferMs float64 `json:"rebuffer_ms"`
	// AvgBitrateKbps is weighted by the playback time of each segment.
	AvgBitrateKbps float64 `json:"avg_bitrate_kbps"`
	// Switches counts rung changes between consecutive segments.
	Switches  int `json:"switches"`
	Segments  int `json:"segments"`
	Failovers int `json:"failovers"`
	// Collapses counts fetches abandoned for throughput collapse (each
	// is also a failover).
	Collapses int `json:"collapses"`
	Resteers  int `json:"resteers"`
	// ControlWaits counts the times no control-plane replica answered
	// and the player waited before asking again (one replica down costs
	// none).
	ControlWaits int   `json:"control_waits"`
	Bytes        int64 `json:"bytes"`
	// WastedBytes were downloaded for a segment then fetched again at a
	// lower rung after a collapse.
	WastedBytes int64            `json:"wasted_bytes"`
	ServedBy    map[string]int64 `json:"served_by"` // appliance → bytes
	// ServedOrder lists the appliances in the order they first served.
	ServedOrder []string `json:"served_order"`
	DurationMs  float64  `json:"duration_ms"`
	Completed   bool     `json:"completed"`
	Error       string   `json:"error,omitempty"`
	// Startup breaks down the first segment request (nil if none was
	// made).
	Startup *Startup `json:"startup,omitempty"`
}

// Startup breaks down a playback's first segment request, as
// net/http/httptrace sees it: resolving the appliance's name, connecting,
// the TLS handshake, and from the request written to the response's
// first byte. A component that did not happen is zero: DNS for an
// address URL, connect and TLS on a reused connection, TLS over http,
// the first byte of a request that failed (the player failed over).
type Startup struct {
	DNSMs       float64 `json:"dns_ms"`
	ConnectMs   float64 `json:"connect_ms"`
	TLSMs       float64 `json:"tls_ms"`
	FirstByteMs float64 `json:"first_byte_ms"`
	// HTTPS says the request was https; Reused that it went over a
	// connection already open.
	HTTPS  bool `json:"https"`
	Reused bool `json:"reused,omitempty"`
	// Family is the address family of the connection the request went
	// over (measure.FamilyIPv4 or FamilyIPv6): a dual-stack client's
	// Happy Eyeballs race says which won.
	Family string `json:"family,omitempty"`
}

// startupTrace records a Startup; the hooks may run on other goroutines
// (the dialer's), hence the lock.
type startupTrace struct {
	mu                          sync.Mutex
	st                          Startup
	dnsStart, tlsStart, wroteAt time.Time
}

// traceKey carries a request's *startupTrace to timedDial.
type traceKey struct{}

// timedDial times connecting to a resolved address for the startup
// trace in ctx, around the whole dial: an emulated link (the lab's netem
// dialer) delays the handshake before the socket's connect, which
// httptrace's ConnectStart/ConnectDone would miss.
func timedDial(dial clientnet.DialFunc) clientnet.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		t, _ := ctx.Value(traceKey{}).(*startupTrace)
		start := time.Now()
		c, err := dial(ctx, network, addr)
		if t != nil && err == nil {
			d := ms(time.Since(start))
			t.mu.Lock()
			// The connection that won (Happy Eyeballs may race two).
			if t.st.ConnectMs == 0 {
				t.st.ConnectMs = d
			}
			t.mu.Unlock()
		}
		return c, err
	}
}

func (t *startupTrace) trace() *httptrace.ClientTrace {
	lock := func(f func()) { t.mu.Lock(); f(); t.mu.Unlock() }
	return &httptrace.ClientTrace{
		DNSStart: func(httptrace.DNSStartInfo) { lock(func() { t.dnsStart = time.Now() }) },
		DNSDone: func(httptrace.DNSDoneInfo) {
			lock(func() { t.st.DNSMs = ms(time.Since(t.dnsStart)) })
		},
		TLSHandshakeStart: func() { lock(func() { t.tlsStart = time.Now() }) },
		TLSHandshakeDone: func(tls.ConnectionState, error) {
			lock(func() { t.st.TLSMs = ms(time.Since(t.tlsStart)) })
		},
		GotConn: func(i httptrace.GotConnInfo) {
			lock(func() { t.st.Reused, t.st.Family = i.Reused, connFamily(i.Conn) })
		},
		WroteRequest:         func(httptrace.WroteRequestInfo) { lock(func() { t.wroteAt = time.Now() }) },
		GotFirstResponseByte: func() { lock(func() { t.st.FirstByteMs = ms(time.Since(t.wroteAt)) }) },
	}
}

// connFamily is the address family of c's remote address, "" if it has
// none.
func connFamily(c net.Conn) string {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return ""
	}
	if ap.Addr().Unmap().Is4() {
		return measure.FamilyIPv4
	}
	return measure.FamilyIPv6
}

func (t *startupTrace) result() *Startup {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.st
	return &st
}

// QoE returns the session as the measurement record uploaded with
// reports.
func (s *Session) QoE() measure.QoE {
	order := s.ServedOrder
	if len(order) > measure.MaxServedBy {
		order = order[:measure.MaxServedBy]
	}
	return measure.QoE{
		StartupMs: s.StartupMs, Rebuffers: s.Rebuffers, RebufferMs: s.RebufferMs,
		AvgBitrateKbps: s.AvgBitrateKbps, Switches: s.Switches, Failovers: s.Failovers,
		ServedBy: append([]string(nil), order...), DurationMs: s.DurationMs,
	}
}

// ErrNoURLs means steering had nowhere to send the client.
var ErrNoURLs = errors.New("steering returned no URLs")

// errCollapse aborts a fetch whose rate fell below the collapse
// threshold with the buffer low.
var errCollapse = errors.New("throughput collapse")

// Play streams one title to the end of its playback, or until ctx ends.
func (p *Player) Play(ctx context.Context, title string) (Session, error) {
	s := Session{Title: title, Started: time.Now(), ServedBy: map[string]int64{}, ServedOrder: []string{}}
	err := p.play(ctx, &s)
	if err != nil {
		s.Error = err.Error()
	}
	s.Completed = err == nil
	s.DurationMs = ms(time.Since(s.Started))
	return s, err
}

// rung is one video file of the ladder.
type rung struct {
	file     content.File
	segBytes int64
}

func (p *Player) play(ctx context.Context, s *Session) error {
	var files []content.File
	err := p.withPatience(ctx, s, func() error {
		return p.control.GetJSON(ctx, "/v1/titles/"+url.PathEscape(s.Title), &files)
	})
	if err != nil {
		return fmt.Errorf("title: %w", err)
	}
	ladder := p.ladder(files)
	if len(ladder) == 0 {
		return fmt.Errorf("title %s has no video file", s.Title)
	}
	segDur := p.cfg.SegmentDuration
	segments := -1
	kbps := make([]int, len(ladder))
	for i, r := range ladder {
		kbps[i] = r.file.BitrateKbps
		n := int((r.file.Size + r.segBytes - 1) / r.segBytes)
		if segments < 0 || n < segments {
			segments = n
		}
	}
	abr := &bba{ladder: kbps, reservoir: p.cfg.Reservoir, cushion: p.cfg.Cushion}
	urls, err := p.steer(ctx, s, ladder)
	if err != nil {
		return err
	}
	// failed holds the appliances that failed since the last steering
	// answer; every rung's fetch skips them, so a failover sticks when
	// the rung changes.
	failed := map[string]bool{}
	// tried lists, per steering answer used up since bytes last arrived,
	// its appliances for the rung that failed: what a failed session's
	// error names. outage is when the first of them ran out; asking is
	// the time since spent waiting for steering's answers, which
	// ControlPatience bounds, not ResteerPatience.
	var tried []string
	var outage time.Time
	var asking time.Duration
	pick := func(path string) (steerURL, bool, bool) {
		for i, u := range urls[path] {
			if !failed[u.Appliance] {
				more := false
				for _, v := range urls[path][i+1:] {
					more = more || !failed[v.Appliance]
				}
				return u, more, true
			}
		}
		return steerURL{}, false, false
	}

	// Playback clock: playStart is when the first segment arrived; time
	// spent stalled pushes every later deadline back.
	var playStart time.Time
	var stalled time.Duration
	buffer := func(k int) time.Duration {
		if playStart.IsZero() {
			return 0
		}
		return max(time.Duration(k)*segDur-(time.Since(playStart)-stalled), 0)
	}
	ri := len(ladder) - 1
	if p.cfg.ABR != ABRFixed {
		ri = 0
	}
	var weighted float64 // kbps × seconds
	var played time.Duration
	for k := 0; k < segments; k++ {
		if k > 0 {
			// Wait while the buffer is full, as a player would.
			if wait := buffer(k) - p.cfg.MaxBuffer; wait > 0 {
				if err := clock.Sleep(ctx, wait); err != nil {
					return err
				}
			}
			if p.cfg.ABR != ABRFixed {
				next := abr.next(ri, buffer(k))
				if next != ri {
					s.Switches++
				}
				ri = next
			}
		}
		r := ladder[ri]
		off := int64(k) * r.segBytes
		end := min(off+r.segBytes, r.file.Size) - 1
		for off <= end {
			u, canCollapse, _ := pick(r.file.Path)
			var st *startupTrace
			if s.Startup == nil {
				st = &startupTrace{st: Startup{HTTPS: strings.HasPrefix(u.URL, "https://")}}
			}
			n, err := p.fetchRange(ctx, u.URL, off, end, r.file.BitrateKbps, buffer(k), canCollapse, st)
			if st != nil {
				s.Startup = st.result()
			}
			if n > 0 {
				tried, outage, asking = tried[:0], time.Time{}, 0
				s.Bytes += n
				if _, ok := s.ServedBy[u.Appliance]; !ok {
					s.ServedOrder = append(s.ServedOrder, u.Appliance)
				}
				s.ServedBy[u.Appliance] += n
				off += n
			}
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.Failovers++
			failed[u.Appliance] = true
			if errors.Is(err, errCollapse) {
				s.Collapses++
				if ri > 0 {
					// Too little buffer to finish this rung anywhere:
					// take the segment again at the lowest rung.
					s.WastedBytes += off - int64(k)*r.segBytes
					s.Switches++
					ri = 0
					r = ladder[0]
					off = int64(k) * r.segBytes
					end = min(off+r.segBytes, r.file.Size) - 1
				}
			}
			if _, _, ok := pick(r.file.Path); !ok {
				tried = append(tried, appliancesOf(urls[r.file.Path]))
				if outage.IsZero() {
					outage = time.Now()
				}
				wait := resteerWait(len(tried))
				if time.Since(outage)-asking+wait > p.cfg.ResteerPatience {
					return fmt.Errorf("segment %d: every URL of %d steering answers in %v failed (%s), last: %w",
						k, len(tried), time.Since(outage).Round(time.Millisecond), strings.Join(tried, "; "), err)
				}
				if err := clock.Sleep(ctx, wait); err != nil {
					return err
				}
				s.Resteers++
				asked := time.Now()
				if urls, err = p.steer(ctx, s, ladder); err != nil {
					return err
				}
				asking += time.Since(asked)
				clear(failed)
			}
		}
		s.File, s.BitrateKbps = r.file.Path, r.file.BitrateKbps
		s.Segments++
		segPlay := time.Duration(float64(end-int64(k)*r.segBytes+1) * 8 / float64(r.file.BitrateKbps) * float64(time.Millisecond))
		segPlay = min(segPlay, segDur)
		weighted += float64(r.file.BitrateKbps) * segPlay.Seconds()
		played += segPlay
		s.AvgBitrateKbps = weighted / played.Seconds()

		now := time.Now()
		if k == 0 {
			playStart = now
			s.StartupMs = ms(now.Sub(s.Started))
			continue
		}
		// The segment was due when playback reached its start.
		due := playStart.Add(time.Duration(k)*segDur + stalled)
		if late := now.Sub(due); late > 0 {
			s.Rebuffers++
			s.RebufferMs += ms(late)
			stalled += late
		}
	}
	// Play out what is buffered: the session ends when the viewer
	// reaches the end.
	end := playStart.Add(played + stalled)
	return clock.Sleep(ctx, time.Until(end))
}

// ladder is the title's video rungs at or below the cap, ascending.
func (p *Player) ladder(files []content.File) []rung {
	var video []content.File
	for _, f := range files {
		if f.Kind == content.KindVideo && f.BitrateKbps > 0 && f.Size > 0 {
			video = append(video, f)
		}
	}
	if len(video) == 0 {
		return nil
	}
	sort.Slice(video, func(i, j int) bool { return video[i].BitrateKbps < video[j].BitrateKbps })
	allowed := video[:1] // if every rung is above the cap, the lowest
	for i, f := range video {
		if p.cfg.MaxBitrateKbps == 0 || f.BitrateKbps <= p.cfg.MaxBitrateKbps {
			allowed = video[:i+1]
		}
	}
	out := make([]rung, len(allowed))
	for i, f := range allowed {
		segBytes := max(int64(f.BitrateKbps)*1000/8*int64(p.cfg.SegmentDuration/time.Millisecond)/1000, 1)
		out[i] = rung{file: f, segBytes: segBytes}
	}
	return out
}

// steer asks for every rung's URLs in one request.
func (p *Player) steer(ctx context.Context, s *Session, ladder []rung) (map[string][]steerURL, error) {
	paths := make([]string, len(ladder))
	for i, r := range ladder {
		paths[i] = r.file.Path
	}
	path := fmt.Sprintf("/v1/steer?files=%s&n=%d", url.QueryEscape(strings.Join(paths, ",")), p.cfg.URLs)
	if p.cfg.DualStack {
		path += "&family=both"
	}
	var out map[string][]steerURL
	err := p.withPatience(ctx, s, func() error {
		var resp api.SteerResponse
		if err := p.control.GetJSON(ctx, path, &resp); err != nil {
			return err
		}
		out = make(map[string][]steerURL, len(paths))
		for _, f := range resp.Files {
			for _, c := range f.URLs {
				if p.alternates != nil {
					p.learnAlternates(c)
				}
				out[f.Path] = append(out[f.Path], steerURL{URL: c.URL, Appliance: c.Appliance})
			}
		}
		for _, path := range paths {
			if len(out[path]) == 0 {
				// A control plane just back from an outage may not know
				// any appliance to be up yet: ask again shortly.
				return fmt.Errorf("%s: %w", path, ErrNoURLs)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("steer: %w", err)
	}
	return out, nil
}

type steerURL struct{ URL, Appliance string }

// resteerWait is the pause before asking steering again after the
// used-th answer in a row ran out: none after the first (the control
// plane may already know what failed), then 250 ms doubling to 4 s.
func resteerWait(used int) time.Duration {
	if used <= 1 {
		return 0
	}
	return min(250*time.Millisecond<<min(used-2, 5), 4*time.Second)
}

// appliancesOf names the appliances of urls in order, space-separated.
func appliancesOf(urls []steerURL) string {
	ids := make([]string, len(urls))
	for i, u := range urls {
		ids[i] = u.Appliance
	}
	return strings.Join(ids, " ")
}

// fetchRange downloads bytes off..end and returns how many arrived; the
// error is nil only if the whole range did. The fetch is abandoned at
// RequestTimeout, and, when collapse is allowed, as soon as it falls
// behind CollapseRatio × kbps while the buffer (buffer at the start,
// draining in real time) is below the reservoir.
func (p *Player) fetchRange(ctx context.Context, u string, off, end int64, kbps int, buffer time.Duration, collapse bool, st *startupTrace) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	if st != nil {
		ctx = httptrace.WithClientTrace(context.WithValue(ctx, traceKey{}, st), st.trace())
	}
	ctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	start := time.Now()
	var watchdog *time.Timer
	var deadline func(n int64) time.Time
	if collapse && p.cfg.CollapseRatio > 0 && p.cfg.ABR != ABRFixed {
		minBps := p.cfg.CollapseRatio * float64(kbps) * 1000 / 8 // bytes per second
		lowAt := start.Add(buffer - p.cfg.Reservoir)             // buffer reaches the reservoir
		// The grace and the rate count from when the connection is
		// ready: resolving a name, connecting and a TLS handshake are
		// set-up, bounded by RequestTimeout, not a collapse of the
		// path's throughput.
		var ready atomic.Int64 // since start, set by GotConn
		deadline = func(n int64) time.Time {
			d := start.Add(time.Duration(ready.Load()) + p.cfg.CollapseGrace + time.Duration(float64(n)/minBps*float64(time.Second)))
			if lowAt.After(d) {
				return lowAt
			}
			return d
		}
		// Armed once the connection is ready; until then RequestTimeout
		// bounds the set-up.
		watchdog = time.AfterFunc(p.cfg.RequestTimeout+p.cfg.CollapseGrace, func() { abort(errCollapse) })
		defer watchdog.Stop()
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) {
			ready.Store(int64(time.Since(start)))
			watchdog.Reset(time.Until(deadline(0)))
		}})
	}
	fail := func(n int64, err error) (int64, error) {
		if c := context.Cause(ctx); errors.Is(c, errCollapse) {
			return n, fmt.Errorf("%s: %w after %d bytes in %v", u, errCollapse, n, time.Since(start).Round(time.Millisecond))
		}
		return n, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, end))
	resp, err := p.client.Do(req)
	if err != nil {
		return fail(0, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		return 0, fmt.Errorf("%s: %s", u, resp.Status)
	}
	want := end - off + 1
	if resp.ContentLength >= 0 && resp.ContentLength != want {
		return 0, fmt.Errorf("%s: range %d-%d answered with %d bytes", u, off, end, resp.ContentLength)
	}
	body := io.LimitReader(resp.Body, want)
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := body.Read(buf)
		if k > 0 {
			n += int64(k)
			if watchdog != nil {
				watchdog.Reset(time.Until(deadline(n)))
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(n, err)
		}
	}
	if n != want {
		return fail(n, fmt.Errorf("%s: got %d of %d bytes", u, n, want))
	}
	return n, nil
}

// withPatience runs fn until it succeeds, fails for good, or finds the
// control plane unavailable for longer than ControlPatience. Unavailable
// means that no replica answered (each refused, timed out or answered
// 5xx; cpclient has already tried them all) or that steering had no URL
// yet; a 4xx is an answer and ends the session.
func (p *Player) withPatience(ctx context.Context, s *Session, fn func() error) error {
	deadline := time.Now().Add(p.cfg.ControlPatience)
	backoff := 250 * time.Millisecond
	for {
		err := fn()
		retry := cpclient.IsUnavailable(err) || errors.Is(err, ErrNoURLs)
		if err == nil || !retry || ctx.Err() != nil || time.Now().Add(backoff).After(deadline) {
			return err
		}
		s.ControlWaits++
		if clock.Sleep(ctx, backoff) != nil {
			return err
		}
		backoff = min(2*backoff, 4*time.Second)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
