// Package lab provides the whole CDN on one machine: it compiles a
// scenario into the config files of an origin, a control plane and sites
// of appliances (and the ISPs' BGP routers), starts those daemons from the
// files — in its own process or each as its own `ocdn` process — each on
// its own loopback address with real HTTP and BGP between them, and drives
// ISPs of clients against them, with a live status line and a final
// report.
package lab

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocdn/ocdn/internal/clock"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/daemon"
	"github.com/ocdn/ocdn/internal/netns"
	"github.com/ocdn/ocdn/internal/player"
)

// Options are the knobs of one run that are not part of the scenario.
type Options struct {
	// Status receives a short status line every StatusEvery; nil for none.
	Status      io.Writer
	StatusEvery time.Duration
	Logger      *slog.Logger
	// WorkDir holds the compiled configs (etc/), the appliances' stores,
	// the daemons' logs (with Processes) and the clients' spools; empty
	// means a temporary directory removed at the end.
	WorkDir string
	// DataDir keeps the measurement store (Parquet, for ocdn analyze);
	// empty means one inside the work directory, removed with it.
	DataDir string
	// Processes runs every daemon as its own OS process of Binary (an
	// ocdn executable) from the compiled configs, instead of in this
	// process.
	Processes bool
	Binary    string
	// Console, when set, is called once the control plane serves, with
	// the web console's URL and the file holding its operator token; the
	// console stays up until the run ends.
	Console func(url, operatorTokenFile string)
	// Pages, when set, is called once the appliances are filled and the
	// browser pages have something to play, with where they are; they
	// stay up until the run ends.
	Pages func(BrowserReport)
	// OnStreaming, when set, is called (in its own goroutine) once the
	// appliances are filled and the clients stream, with the running lab
	// (its control plane, the browser pages and proxy); when it returns,
	// the streaming ends. Tests drive a browser from it.
	OnStreaming func(ctx context.Context, live *Live)

	// ControlReplicas runs this many control planes sharing ControlStore
	// (a PostgreSQL DSN), each on its own port with its own measurement
	// directory (measure/replica-N, read as one store); 0 or 1 runs one
	// on SQLite.
	ControlReplicas int
	ControlStore    string
	// ApplianceOctet, when set, adds this to the third octet of every
	// appliance's address (127.1.0.1 becomes 127.1.100.1 with 100), so
	// that runs on one machine do not collide.
	ApplianceOctet int
	// Chaos, when set, is called once streaming starts with the levers of
	// fault injection (chaos.go); streaming stops at the scenario's
	// duration and the run waits for Chaos to return. It needs Processes:
	// only a process can be killed as a crash kills it.
	Chaos func(ctx context.Context, c *Chaos)
	// OnSession is told of every playback session that ended.
	OnSession func(SessionEnd)
	// OnSpool is told of every probe report a client spooled for upload.
	OnSpool func(id string, pulses int)
}

// Lab is one run of a scenario.
type Lab struct {
	sc   *Scenario
	opts Options
	log  *slog.Logger

	dep        *Deployment
	etc        string // where the compiled configs are
	catalog    *content.Catalog
	run        runner
	origin     daemonHandle
	originURL  string
	view       *controlView
	plan       *plan
	appliances []*labAppliance
	// replicas are the control planes, the first configured by control.yaml; a chaos
	// run replaces a killed one's handle when it restarts it.
	replicasMu sync.Mutex
	replicas   []controlHandle
	hooks      func() daemon.Hooks
	routers    map[string]*router // by ISP name; routeServer for the IXP
	start      time.Time

	// injectedCorrupt and fillSeconds feed the fill report (fill.go).
	injectedCorrupt int
	fillSeconds     float64

	work       string
	consoleURL string
	probeRuns  atomic.Int64

	mu       sync.Mutex
	events   []EventRecord
	sessions SessionStats
	qoe      []player.Session
	active   atomic.Int64
	health   healthState
	// browser says where a browser finds the pages (browser.go).
	browser *BrowserReport
	// loops is what the clients play and the placement loop's figures
	// (loops.go).
	loops loops
	// paths are the packet-level links (packet.go); packetFallback says
	// why there are none when the scenario asked for some.
	paths          []*packetPath
	packetFallback string
	// v6 is the IPv6 namespace's name (ipv6.go), v6net its network;
	// ipv6Fallback says why there is none when the scenario asked for
	// IPv6.
	v6           string
	v6net        *netns.Net
	ipv6Fallback string
	// roots and resolver are what clients verify appliances with and
	// resolve their names through: the lab's CA and the control plane's
	// DNS server.
	roots    *x509.CertPool
	resolver netip.AddrPort
}

type labAppliance struct {
	cfg    config.Appliance
	hooks  daemon.Hooks // what it was started with, for a restart
	mu     sync.Mutex
	h      applianceHandle
	killed atomic.Bool
}

// handle is the appliance's current process (a restart replaces it).
func (la *labAppliance) handle() applianceHandle {
	la.mu.Lock()
	defer la.mu.Unlock()
	return la.h
}

// controlPlane is the first control-plane replica's current process (a
// chaos run's restart replaces it).
func (l *Lab) controlPlane() controlHandle {
	l.replicasMu.Lock()
	defer l.replicasMu.Unlock()
	return l.replicas[0]
}

// New prepares a run; nothing is started until Run.
func New(sc *Scenario, opts Options) *Lab {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.StatusEvery <= 0 {
		opts.StatusEvery = 5 * time.Second
	}
	return &Lab{sc: sc, opts: opts, log: opts.Logger.With("component", "lab")}
}

// Run compiles the scenario into daemon configs, starts every daemon from
// them, streams for the scenario's duration, applies its events, stops
// everything and returns the report. Cancelling ctx ends the run early;
// every component is stopped before Run returns.
func (l *Lab) Run(ctx context.Context) (*Report, error) {
	work := l.opts.WorkDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "ocdn-lab-*"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(work)
	}
	l.work = work
	if l.opts.Chaos != nil && !l.opts.Processes {
		return nil, errors.New("lab: Chaos needs Processes (a crash is a SIGKILL to a process)")
	}
	// Registered first, so it runs last: after every daemon (whose
	// listeners sit in the paths' namespaces) has stopped.
	defer l.closePaths()
	defer l.closeIPv6()
	if err := l.compile(); err != nil {
		return nil, err
	}
	l.loops = loops{playlist: newPlaylist(l.catalog.Titles(), l.sc.Events), feeds: map[string]float64{}}

	// Every component runs under one context; stop cancels it and waits.
	ctx, cancel := context.WithCancel(ctx)
	defer func() { l.run.stop(); cancel() }()
	if l.opts.Processes {
		logs := filepath.Join(work, "logs")
		if err := os.MkdirAll(logs, 0o755); err != nil {
			return nil, err
		}
		bin := l.opts.Binary
		if bin == "" {
			return nil, errors.New("lab: Processes needs the ocdn binary")
		}
		l.run = &processes{binary: bin, logDir: logs}
	} else {
		l.run = &inProcess{onErr: func(name string, err error) { l.log.Error("component stopped", "component", name, "err", err) }}
	}
	hooks := func() daemon.Hooks {
		// The lab stops all at once: in-flight requests get half a second.
		return daemon.Hooks{Logger: l.opts.Logger, ShutdownGrace: 500 * time.Millisecond}
	}
	var err error
	if l.origin, err = l.run.origin(ctx, originPath(l.etc), hooks()); err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	l.originURL = baseURL(l.dep.Origin.Listen)
	first, err := l.run.control(ctx, "control", controlPath(l.etc), hooks())
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	controlURL := baseURL(l.dep.Control.Listen)
	controlURLs := []string{controlURL}
	l.replicas = []controlHandle{first}
	for i, rc := range l.dep.Replicas {
		h, err := l.run.control(ctx, replicaName(i+1), replicaPath(l.etc, i+1), hooks())
		if err != nil {
			return nil, fmt.Errorf("control replica %d: %w", i+2, err)
		}
		l.replicas = append(l.replicas, h)
		controlURLs = append(controlURLs, baseURL(rc.Listen))
	}
	l.hooks = hooks
	l.view = newControlView(controlURLs, l.dep)
	l.consoleURL = controlURL + "/ui/"
	l.status("console: " + l.consoleURL + " (sign in with the operator token in " + filepath.Join(l.etc, operatorFile) + ")")
	if l.opts.Console != nil {
		l.opts.Console(l.consoleURL, filepath.Join(l.etc, operatorFile))
	}

	if err := l.startRouters(ctx); err != nil {
		return nil, err
	}
	defer l.stopRouters()

	fillClock := l.fillClock()
	if l.plan, err = l.readPlan(ctx); err != nil {
		return nil, err
	}
	corrupt := l.corruptFiles(l.plan)
	for _, ac := range l.sc.Appliances {
		h := hooks()
		h.FillClock, h.CorruptFill = fillClock, l.corruptFor(ac.ID, corrupt)
		ah, err := l.run.appliance(ctx, ac.ID, appliancePath(l.etc, ac.ID), h)
		if err != nil {
			return nil, fmt.Errorf("appliance %s: %w", ac.ID, err)
		}
		h.CorruptFill = nil // a restarted appliance is an honest one
		l.appliances = append(l.appliances, &labAppliance{cfg: ac, hooks: h, h: ah})
	}
	// Every GoBGP instance of this process has started; sessions may come
	// up now.
	if err := l.connectRouters(ctx); err != nil {
		return nil, err
	}

	fillStart := time.Now()
	err = l.waitFilled(ctx)
	l.fillSeconds = time.Since(fillStart).Seconds()
	if err != nil {
		if ctx.Err() != nil {
			return l.report(ctx, true), nil
		}
		return nil, err
	}
	l.start = time.Now()
	l.startProfiles()
	l.status("filled; streaming")
	streamCtx, stopStreaming := context.WithTimeout(ctx, l.sc.Duration)
	defer stopStreaming()
	waitBrowser, err := l.startBrowser(ctx, streamCtx, stopStreaming, controlURL)
	if err != nil {
		return nil, err
	}
	defer func() { cancel(); waitBrowser() }()
	var clients sync.WaitGroup
	if err := l.startClients(streamCtx, ctx, controlURLs, &clients); err != nil {
		return nil, err
	}
	var sampler sync.WaitGroup
	sampler.Go(func() { l.sampleLoop(streamCtx) })
	l.runEvents(streamCtx)
	if l.opts.Chaos != nil {
		clients.Add(1)
		go func() { defer clients.Done(); l.opts.Chaos(streamCtx, &Chaos{l: l, runCtx: ctx}) }()
	}
	l.statusLoop(streamCtx)
	sampler.Wait()
	clients.Wait()
	l.sample(ctx) // the last interval's demand reports are in
	interrupted := ctx.Err() != nil
	rep := l.report(ctx, interrupted)
	rep.Browser = l.browser
	rep.Console = l.consoleURL
	// Stopping the control plane compacts the measurement store, so the
	// Parquet files are complete when Run returns; the appliances stop
	// first, so their last transport records are in them.
	l.run.stop()
	cancel()
	l.degradeEffects(rep.Measured, l.measureDataDir())
	l.transportArms(rep.Transport, l.measureDataDir())
	rep.Families = l.familiesReport(l.measureDataDir())
	rep.Measurements.Dir = l.opts.DataDir
	if l.opts.DataDir == "" {
		rep.Measurements.Dir = "" // removed with the work directory
		if l.opts.WorkDir != "" {
			rep.Measurements.Dir = filepath.Join(l.etc, measureDir)
		}
	}
	return rep, nil
}

// compile turns the scenario into the daemons' configs in WORK/etc, the
// files every daemon is then started from.
func (l *Lab) compile() error {
	var ep Endpoints
	var err error
	if ep.Control, err = freePort(netip.MustParseAddr("127.0.0.1")); err != nil {
		return err
	}
	if ep.Origin, err = freePort(netip.MustParseAddr("127.0.0.1")); err != nil {
		return err
	}
	if ep.DNS, err = freePort(netip.MustParseAddr("127.0.0.1")); err != nil {
		return err
	}
	if o := l.opts.ApplianceOctet; o > 0 {
		l.sc = l.sc.moveAppliances(o)
	}
	if err := l.openIPv6(); err != nil {
		return err
	}
	ep.Netns6 = l.v6
	if l.dep, err = Compile(l.sc, ep); err != nil {
		return err
	}
	if l.opts.DataDir != "" {
		abs, err := filepath.Abs(l.opts.DataDir)
		if err != nil {
			return err
		}
		l.dep.Control.Measure.Dir = abs
	}
	if err := l.compileReplicas(); err != nil {
		return err
	}
	if err := l.openPaths(); err != nil {
		return err
	}
	l.catalog = l.dep.Catalog
	l.etc = filepath.Join(l.work, "etc")
	if ca := l.dep.CA; ca != nil {
		l.roots = x509.NewCertPool()
		l.roots.AddCert(ca.Cert)
		l.resolver = l.dep.Control.DNS.Listen[0].AddrPort
	}
	return l.dep.Write(l.etc)
}

// waitFilled waits until every appliance holds its whole manifest and has
// its routes at the control plane, so that streaming measures serving
// rather than a cold start.
func (l *Lab) waitFilled(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pending := len(l.appliances)
		if sts, err := l.view.appliances(ctx); err == nil {
			if sum, err := l.view.fillSummary(ctx); err == nil {
				pending = 0
				for _, st := range sts {
					routed := !l.dep.speaksBGP(st.ID) || st.Prefixes > 0
					if st.State != "up" || st.Files < sum.Manifests[st.ID].Files || !routed {
						pending++
					}
				}
			}
		}
		if pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("appliances not filled after 2m: %d pending", pending)
		}
		l.status(fmt.Sprintf("filling: %d of %d appliances pending", pending, len(l.appliances)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// startClients starts every client; each plays titles back to back until
// too little time is left to finish one. ctx ends with the streaming;
// runCtx with the whole run (Ctrl-C), which cuts short the clients'
// last report uploads.
func (l *Lab) startClients(ctx, runCtx context.Context, controlURLs []string, wg *sync.WaitGroup) error {
	titleDur := l.sc.Catalog.Duration
	deadline, _ := ctx.Deadline()
	total := 0
	for _, g := range l.sc.Clients {
		total += g.Count
	}
	// Starts are staggered over at most a tenth of the run, so that
	// clients do not arrive in lockstep but all get to play.
	step := min(150*time.Millisecond, l.sc.Duration/time.Duration(10*total))
	n := 0
	for gi, g := range l.sc.Clients {
		isp := l.isp(g.ISP)
		for i := 0; i < g.Count; i++ {
			// The first share of each group is dual-stack.
			c := l.newClient(isp, i, i < dualStackCount(g), controlURLs)
			src := c.src
			rng := rand.New(rand.NewPCG(uint64(gi), uint64(i)))
			p, err := player.New(player.Config{ControlURLs: c.controlURLs, Dial: c.dial, DualStack: c.dualStack(), RootCAs: l.roots, Resolver: l.resolver,
				MaxBitrateKbps:  g.MaxBitrateKbps,
				SegmentDuration: l.sc.Player.SegmentDuration, MaxBuffer: l.sc.Player.MaxBuffer})
			if err != nil {
				return err
			}
			client := n
			uploadQoE := l.qoeUploader(c, client)
			wg.Add(1)
			go func() { defer wg.Done(); l.probeLoop(ctx, runCtx, c, client) }()
			stagger := time.Duration(n) * step
			n++
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer p.Close()
				if clock.Sleep(ctx, stagger) != nil {
					return
				}
				for time.Until(deadline) > titleDur+3*time.Second {
					title := l.loops.playlist.next(g.ISP, rng)
					l.active.Add(1)
					l.addSession(func(s *SessionStats) { s.Started++ })
					sess, err := p.Play(ctx, title)
					l.active.Add(-1)
					if l.opts.OnSession != nil {
						l.opts.OnSession(SessionEnd{ISP: g.ISP, Client: src, Title: title, Err: err, Interrupted: ctx.Err() != nil, At: time.Now()})
					}
					l.addSession(func(s *SessionStats) {
						s.Failovers += sess.Failovers
						switch {
						case err == nil:
							s.Completed++
						case ctx.Err() != nil:
							s.Interrupted++
						default:
							s.Failed++
						}
					})
					if err != nil && ctx.Err() == nil {
						l.log.Warn("session failed", "client", src, "title", title, "err", err)
						// A viewer whose title failed to start tries again
						// after a moment, not in a tight loop.
						clock.Sleep(ctx, time.Second)
					}
					if err == nil && sess.Completed {
						uploadQoE(runCtx, sess)
					}
					l.mu.Lock()
					l.qoe = append(l.qoe, sess)
					l.mu.Unlock()
					l.recordPlay(g.ISP, sess)
					if ctx.Err() != nil {
						return
					}
				}
			}()
		}
	}
	return nil
}

func (l *Lab) addSession(f func(*SessionStats)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.sessions)
}

// zipf picks an index with probability ∝ 1/(i+1), a typical popularity skew.
func zipf(rng *rand.Rand, n int) int {
	var total float64
	for i := 1; i <= n; i++ {
		total += 1 / float64(i)
	}
	x := rng.Float64() * total
	for i := 1; i <= n; i++ {
		if x -= 1 / float64(i); x <= 0 {
			return i - 1
		}
	}
	return n - 1
}

// clientAddr spreads an ISP's clients over its prefixes, one /24 each
// where the prefix has room, so that clients differ in the /24 steering
// spreads on, as households of an ISP do.
func clientAddr(isp config.ISP, i int) netip.Addr {
	ps := prefixesOf(isp, false)
	p := ps[i%len(ps)].Prefix
	k := uint32(i / len(ps))
	b := p.Addr().As4()
	base := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	hostBits := uint32(32 - p.Bits())
	var off uint32
	if hostBits > 8 {
		off = (k%(1<<(hostBits-8)))<<8 | 10
	} else {
		off = 1 + k%((1<<hostBits)-2)
	}
	v := base + off
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func (l *Lab) isp(name string) config.ISP {
	for _, isp := range l.sc.ISPs {
		if isp.Name == name {
			return isp
		}
	}
	return config.ISP{}
}

func (l *Lab) runEvents(ctx context.Context) {
	for i, e := range l.sc.Events {
		at, _ := e.When(l.sc.Duration) // validated
		if e.Kind == "release" {
			go func() {
				if clock.Sleep(ctx, at-e.Lead) == nil {
					l.announceRelease(ctx, i, e)
				}
			}()
		}
		go func() {
			if clock.Sleep(ctx, at) != nil {
				return
			}
			rec := EventRecord{AtSeconds: time.Since(l.start).Seconds(), Kind: e.Kind, Target: e.Target}
			switch e.Kind {
			case "kill_appliance":
				l.killAppliance(ctx, e.Target)
			case "stop_control_plane":
				l.stopControlPlane(ctx, e.Duration)
			case "degrade_link":
				// The link's profile changes at this time by itself.
				rec.Target = e.Link.ISP + "→" + e.Link.Site
			case "release", "popularity_shift":
				l.loopEvent(e, &rec)
			case "withdraw_prefix", "announce_prefix":
				rec.Prefix = e.Prefix.String()
				conv, err := l.routeEvent(ctx, e)
				if err != nil {
					l.log.Error("route event", "event", e.Kind, "err", err)
				}
				rec.ConvergedSeconds = conv.Seconds()
			}
			l.mu.Lock()
			l.events = append(l.events, rec)
			l.mu.Unlock()
			l.status(fmt.Sprintf("event: %s %s %s", e.Kind, e.Target, rec.Prefix))
		}()
	}
}

// killAppliance crashes appliance id; false when there is none alive.
func (l *Lab) killAppliance(ctx context.Context, id string) bool {
	for _, la := range l.appliances {
		if la.cfg.ID == id && !la.killed.Swap(true) {
			// Its last counters before the crash stand in for it.
			h := la.handle()
			h.Status(ctx)
			h.Kill()
			l.measureExclusion(ctx, la.cfg.ID, time.Now())
			return true
		}
	}
	return false
}

func (l *Lab) statusLoop(ctx context.Context) {
	t := time.NewTicker(l.opts.StatusEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.mu.Lock()
			s := l.sessions
			l.mu.Unlock()
			up := 0
			if sts, err := l.view.appliances(ctx); err == nil {
				for _, st := range sts {
					if st.State == "up" {
						up++
					}
				}
			}
			var served int64
			for _, la := range l.appliances {
				st, _ := la.handle().Status(ctx)
				served += st.BytesServed
			}
			l.status(fmt.Sprintf("playing %d | sessions %d done, %d failed | failovers %d | appliances up %d/%d | served %.1f MB",
				l.active.Load(), s.Completed, s.Failed, s.Failovers, up, len(l.appliances), float64(served)/1e6))
		}
	}
}

func (l *Lab) status(msg string) {
	if l.opts.Status == nil {
		return
	}
	el := 0.0
	if !l.start.IsZero() {
		el = time.Since(l.start).Seconds()
	}
	fmt.Fprintf(l.opts.Status, "[%5.1fs] %s\n", el, msg)
}
