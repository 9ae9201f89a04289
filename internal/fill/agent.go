package fill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/clock"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/defaults"
	"github.com/ocdn/ocdn/internal/store"
)

// Control is what the agent needs from the control plane; the appliance
// implements it over HTTP, tests with anything.
type Control interface {
	Manifest(ctx context.Context) (api.Manifest, error)
	Plan(ctx context.Context) (api.FillPlan, error)
	Report(ctx context.Context, p api.FillProgress) error
}

// Config wires an Agent.
type Config struct {
	Appliance string
	Store     *store.Store
	Control   Control
	// Client makes the downloads (default: a client without timeout; a
	// stalled transfer is cut by the context).
	Client *http.Client
	Clock  Clock
	// Rate caps download bytes per second over all transfers (0 = none).
	Rate int64
	// UrgentRate caps fill outside the window (urgent files) in bytes per
	// second: lower than Rate, since it competes with evening traffic
	// (default Rate/4; 0 with no Rate means none).
	UrgentRate int64
	// Concurrency is how many files download at once (default 2).
	Concurrency int
	// OutOfCycleBudget is how many bytes of urgent files may be filled
	// outside the window per window cycle (default 1 GiB).
	OutOfCycleBudget int64
	// Interval is the real time between passes (default 10s).
	Interval time.Duration
	// Attempts is how many times a broken transfer is resumed from the
	// same source before the next source is tried (default 3).
	Attempts int
	// StallTimeout gives a source up, for the next one, when it sends
	// nothing for this long (default 30s): a hung peer must not hold a
	// file until the window closes.
	StallTimeout time.Duration
	// StrictWindow applies the window from the start. Without it an
	// appliance whose manifest has never fully landed (being turned up,
	// not yet serving much) fills at once, outside the window too.
	StrictWindow bool
	// MaxFileSize rejects manifests naming absurdly large files (default 1 TiB).
	MaxFileSize int64
	// RetireGrace is how long a retired file stays on disk after the
	// control plane acknowledged it left steering (default 1m; retire.go).
	RetireGrace time.Duration
	Logger      *slog.Logger
}

// Stats is what fill has done so far.
type Stats = api.FillStats

// Agent fills one appliance's store. Run it in one goroutine.
type Agent struct {
	cfg  Config
	log  *slog.Logger
	lim  *limiter // in the window
	ulim *limiter // outside it
	wake chan struct{}

	mu       sync.Mutex
	stats    Stats
	bad      []api.BadCopy
	badSet   map[string]bool // path + "\x00" + source URL prefix
	cycle    string
	oocSpent int64
	landed   bool // the whole manifest has been held at least once
	version  string
	// retiring files are no longer reported held (retire.go);
	// retireGen counts retirements and their reversals.
	retiring  map[string]*retiree
	retireGen uint64
}

// Errors a pass can end with.
var (
	ErrBadManifest = errors.New("bad manifest")
	ErrBadPlan     = errors.New("bad fill plan")
	errRestart     = errors.New("source ignored the range; starting over")
	errSource      = errors.New("source failed")
	errStalled     = errors.New("source stalled")
)

// New returns an agent.
func New(cfg Config) *Agent {
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	defaults.Positive(&cfg.Concurrency, 2)
	defaults.Positive(&cfg.OutOfCycleBudget, 1<<30)
	defaults.Positive(&cfg.Interval, 10*time.Second)
	defaults.Positive(&cfg.Attempts, 3)
	defaults.Positive(&cfg.StallTimeout, 30*time.Second)
	defaults.Positive(&cfg.MaxFileSize, 1<<40)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	defaults.Positive(&cfg.UrgentRate, cfg.Rate/4)
	defaults.Positive(&cfg.RetireGrace, time.Minute)
	return &Agent{cfg: cfg, log: cfg.Logger.With("component", "fill", "appliance", cfg.Appliance),
		lim: newLimiter(cfg.Rate), ulim: newLimiter(cfg.UrgentRate), wake: make(chan struct{}, 1),
		badSet: map[string]bool{}, stats: Stats{State: "idle"}, retiring: map[string]*retiree{}}
}

// Wake makes Run start its next pass now rather than after Interval: the
// appliance calls it when a heartbeat reply names a manifest version
// other than the one the agent last read.
func (a *Agent) Wake() {
	select {
	case a.wake <- struct{}{}:
	default: // a pass is already due
	}
}

// ManifestVersion is the version of the manifest the last pass read.
func (a *Agent) ManifestVersion() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.version
}

// Stats reports the counters.
func (a *Agent) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

// Run makes a pass every Interval, or at once when woken, until ctx ends.
func (a *Agent) Run(ctx context.Context) {
	t := time.NewTimer(a.cfg.Interval)
	defer t.Stop()
	for {
		if err := a.Pass(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("fill pass incomplete", "err", err)
		}
		t.Reset(a.cfg.Interval)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.wake:
		}
	}
}

// Pass fetches the manifest and the fill plan, downloads what the window
// (or the out-of-cycle budget) allows, retires files no longer listed once
// every listed file has landed or their room is needed, deletes retired
// files that have left steering (retire.go), and reports progress. A bad
// manifest or plan changes nothing in the store.
func (a *Agent) Pass(ctx context.Context) (err error) {
	defer func() { a.report(ctx, err) }()
	m, err := a.cfg.Control.Manifest(ctx)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	want, err := a.checkManifest(m)
	if err != nil {
		return err
	}
	plan, err := a.cfg.Control.Plan(ctx)
	if err != nil {
		return fmt.Errorf("fill plan: %w", err)
	}
	if err := a.checkPlan(plan, want); err != nil {
		return err
	}
	win, err := WindowFrom(plan.Window)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadPlan, err)
	}
	a.unretire(want)
	a.deleteRetired()
	now := a.cfg.Clock.Now()
	a.mu.Lock()
	a.version = m.Version
	open := win.Open(now) || (!a.cfg.StrictWindow && !a.landed)
	if c := win.cycle(now); c != a.cycle {
		a.cycle, a.oocSpent = c, 0
	}
	a.mu.Unlock()

	var todo []api.FillFile
	waiting := 0
	for _, pf := range plan.Files {
		if a.holds(pf.File) {
			continue
		}
		if pf.WaitSeconds > 0 {
			waiting++
			continue
		}
		if !open {
			if !pf.Urgent || !a.spendOutOfCycle(pf.File.Size) {
				waiting++
				continue
			}
		}
		todo = append(todo, pf)
	}
	// Fill what fits now; if the rest needs the room of files the
	// manifest dropped, they are retired and the rest waits for them to
	// leave steering and the disk.
	var need int64
	for _, pf := range todo {
		need += pf.File.Size
	}
	makingRoom, retiring := false, 0
	if free := a.makeRoom(want, need); need > free {
		fits := todo[:0]
		for _, pf := range todo {
			if pf.File.Size <= free {
				free -= pf.File.Size
				fits = append(fits, pf)
			}
		}
		if retiring = a.Retiring(); retiring > 0 {
			waiting += len(todo) - len(fits)
			todo = fits
			makingRoom = true
		}
	}
	lim := a.lim
	if !open {
		lim = a.ulim
	}
	sem := make(chan struct{}, a.cfg.Concurrency)
	var wg sync.WaitGroup
	var emu sync.Mutex
	var full error
	failed := 0
	for _, pf := range todo {
		emu.Lock()
		stop := full != nil
		emu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := a.fetchFile(ctx, pf, lim); err != nil {
				emu.Lock()
				defer emu.Unlock()
				failed++
				if errors.Is(err, store.ErrFull) && full == nil {
					full = err
				}
				if ctx.Err() == nil && !errors.Is(err, store.ErrFull) {
					a.log.Warn("fill file failed", "path", pf.File.Path, "err", err)
				}
			}
		}()
	}
	wg.Wait()
	missing := 0
	for _, f := range m.Files {
		if !a.holds(f) {
			missing++
		}
	}
	a.mu.Lock()
	a.stats.Pending = missing
	a.landed = a.landed || missing == 0
	a.mu.Unlock()
	switch {
	case full != nil:
		return full
	case missing == 0:
		// The whole manifest has landed: only now retire what it no
		// longer lists, so serving never has a gap.
		a.retire(a.extras(want))
	case failed > 0:
		return fmt.Errorf("%d of %d files failed", failed, len(todo))
	case makingRoom:
		a.setState("waiting", fmt.Sprintf("making room: %d files leaving steering before they are deleted", retiring))
		return nil
	case !open && waiting > 0:
		a.setState("waiting", fmt.Sprintf("window opens %s", win.NextOpen(now).Format(time.RFC3339)))
		return nil
	}
	return ctx.Err()
}

// holds counts objects the store is still re-verifying after a restart:
// downloading them again would double the work, and one that fails is
// quarantined and then fetched by the next pass.
func (a *Agent) holds(f content.File) bool {
	return a.cfg.Store.Holds(f.Path, f.SHA256)
}

func (a *Agent) spendOutOfCycle(n int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.oocSpent+n > a.cfg.OutOfCycleBudget {
		return false
	}
	a.oocSpent += n
	return true
}

func (a *Agent) setState(state, detail string) {
	a.mu.Lock()
	a.stats.State, a.stats.Detail = state, detail
	a.mu.Unlock()
}

func (a *Agent) report(ctx context.Context, err error) {
	a.mu.Lock()
	switch {
	case err == nil && a.stats.State == "waiting":
	case err == nil && a.stats.Pending == 0:
		a.stats.State, a.stats.Detail = "idle", ""
	case err == nil:
		a.stats.State, a.stats.Detail = "filling", ""
	case errors.Is(err, store.ErrFull):
		a.stats.State, a.stats.Detail = "full", err.Error()
	case ctx.Err() != nil:
	default:
		a.stats.State, a.stats.Detail = "error", err.Error()
	}
	if err == nil && a.stats.State == "waiting" && a.stats.Pending == 0 {
		a.stats.State = "idle"
	}
	s := a.stats
	p := api.FillProgress{Appliance: a.cfg.Appliance, State: s.State, Detail: s.Detail, Pending: s.Pending,
		PeerBytes: s.PeerBytes, TierBytes: s.TierBytes, OriginBytes: s.OriginBytes,
		FilesVerified: s.FilesVerified, FilesRejected: s.FilesRejected, Bad: append([]api.BadCopy(nil), a.bad...)}
	a.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	if rerr := a.cfg.Control.Report(ctx, p); rerr != nil && ctx.Err() == nil {
		a.log.Warn("fill progress report failed", "err", rerr)
	}
}

// checkManifest validates what the control plane sent before anything is
// acted on.
func (a *Agent) checkManifest(m api.Manifest) (map[string]content.File, error) {
	want := make(map[string]content.File, len(m.Files))
	for i, f := range m.Files {
		if err := checkFile(f, a.cfg.MaxFileSize); err != nil {
			return nil, fmt.Errorf("%w: files[%d]: %v", ErrBadManifest, i, err)
		}
		if _, dup := want[f.Path]; dup {
			return nil, fmt.Errorf("%w: files[%d]: %s listed twice", ErrBadManifest, i, f.Path)
		}
		want[f.Path] = f
	}
	return want, nil
}

func checkFile(f content.File, maxSize int64) error {
	if err := content.ValidatePath(f.Path); err != nil {
		return err
	}
	if f.Size < 0 || f.Size > maxSize {
		return fmt.Errorf("%s: size %d is not between 0 and %d", f.Path, f.Size, maxSize)
	}
	if len(f.SHA256) != 64 || strings.Trim(f.SHA256, "0123456789abcdef") != "" {
		return fmt.Errorf("%s: sha256 %q is not 64 lowercase hex digits", f.Path, f.SHA256)
	}
	return nil
}

func (a *Agent) checkPlan(p api.FillPlan, want map[string]content.File) error {
	for i, pf := range p.Files {
		f := pf.File
		if err := checkFile(f, a.cfg.MaxFileSize); err != nil {
			return fmt.Errorf("%w: files[%d]: %v", ErrBadPlan, i, err)
		}
		if m, ok := want[f.Path]; !ok || m != f {
			return fmt.Errorf("%w: files[%d]: %s is not in the manifest (unknown file)", ErrBadPlan, i, f.Path)
		}
		if math.IsNaN(pf.WaitSeconds) || pf.WaitSeconds < 0 || pf.WaitSeconds > 86400 {
			return fmt.Errorf("%w: files[%d].wait_seconds: %v is not 0 to 86400", ErrBadPlan, i, pf.WaitSeconds)
		}
		if len(pf.Sources) == 0 && pf.WaitSeconds == 0 {
			return fmt.Errorf("%w: files[%d]: %s has no sources", ErrBadPlan, i, f.Path)
		}
		for j, s := range pf.Sources {
			u, err := url.Parse(s.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("%w: files[%d].sources[%d]: url %q is not an http(s) URL", ErrBadPlan, i, j, s.URL)
			}
			if s.Tier != api.TierPeer && s.Tier != api.TierSite && s.Tier != api.TierOrigin {
				return fmt.Errorf("%w: files[%d].sources[%d]: tier %q is not peer, tier or origin", ErrBadPlan, i, j, s.Tier)
			}
		}
	}
	return nil
}

// fetchFile tries the sources in order; a source whose bytes fail
// verification is marked bad (and reported) and the next one is used.
func (a *Agent) fetchFile(ctx context.Context, pf api.FillFile, lim *limiter) error {
	var last error = errSource
	for _, src := range pf.Sources {
		if a.isBad(pf.File.Path, src) {
			continue
		}
		err := a.download(ctx, pf.File, src, lim)
		switch {
		case err == nil:
			a.mu.Lock()
			a.stats.FilesVerified++
			a.mu.Unlock()
			return nil
		case errors.Is(err, store.ErrFull), ctx.Err() != nil:
			return err
		case errors.Is(err, store.ErrHashMismatch), errors.Is(err, store.ErrSizeMismatch):
			a.markBad(pf.File.Path, src)
			a.log.Warn("source served bad bytes", "path", pf.File.Path, "source", src.Appliance, "tier", src.Tier, "err", err)
		default:
			a.log.Info("source failed; trying the next", "path", pf.File.Path, "tier", src.Tier, "err", err)
		}
		last = err
	}
	return last
}

func badKey(path string, src api.FillSource) string {
	u := src.URL
	if src.Appliance != "" {
		u = src.Appliance
	}
	return path + "\x00" + u
}

func (a *Agent) isBad(path string, src api.FillSource) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.badSet[badKey(path, src)]
}

func (a *Agent) markBad(path string, src api.FillSource) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stats.FilesRejected++
	if k := badKey(path, src); !a.badSet[k] {
		a.badSet[k] = true
		a.bad = append(a.bad, api.BadCopy{Path: path, Appliance: src.Appliance, Tier: src.Tier})
	}
}

// download streams f from src into a store writer, resuming a broken
// transfer with a Range request for the rest (the writer keeps the bytes
// and the running hash), and commits: the store verifies size and SHA-256
// before the object becomes visible.
func (a *Agent) download(ctx context.Context, f content.File, src api.FillSource, lim *limiter) error {
	w, err := a.cfg.Store.NewWriter(f)
	if err != nil {
		return err
	}
	if w == nil {
		return nil // stored meanwhile
	}
	defer func() { w.Abort() }()
	var off int64
	for attempt := 0; ; attempt++ {
		n, err := a.get(ctx, f, src, off, w, lim)
		off += n
		if err == nil {
			break
		}
		if errors.Is(err, errRestart) {
			w.Abort()
			if w, err = a.cfg.Store.NewWriter(f); err != nil || w == nil {
				return err
			}
			off = 0
			continue
		}
		if ctx.Err() != nil || errors.Is(err, store.ErrSizeMismatch) || errors.Is(err, errSource) || attempt+1 >= a.cfg.Attempts {
			return err
		}
		a.log.Info("transfer broken; resuming", "path", f.Path, "tier", src.Tier, "offset", off, "err", err)
	}
	return w.Commit()
}

// get requests f from off on and copies the body into w under the rate
// cap lim. It returns the bytes written.
func (a *Agent) get(ctx context.Context, f content.File, src api.FillSource, off int64, w io.Writer, lim *limiter) (n int64, err error) {
	// The watchdog cancels the request when the source sends nothing for
	// StallTimeout; every read that returns bytes resets it.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(a.cfg.StallTimeout, func() { cancel(errStalled) })
	defer watchdog.Stop()
	defer func() {
		if context.Cause(ctx) == errStalled {
			err = fmt.Errorf("%w: %s sent nothing for %s", errSource, src.Tier, a.cfg.StallTimeout)
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errSource, err)
	}
	req.Header.Set("X-Ocdn-Fill", a.cfg.Appliance)
	if off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
	}
	resp, err := a.cfg.Client.Do(req)
	if err != nil {
		if off == 0 {
			return 0, fmt.Errorf("%w: %v", errSource, err)
		}
		return 0, err
	}
	defer resp.Body.Close()
	switch {
	case off > 0 && resp.StatusCode == http.StatusOK:
		return 0, errRestart
	case off > 0 && resp.StatusCode == http.StatusPartialContent:
		if !strings.HasPrefix(resp.Header.Get("Content-Range"), "bytes "+strconv.FormatInt(off, 10)+"-") {
			return 0, fmt.Errorf("%w: Content-Range %q does not start at %d", errSource, resp.Header.Get("Content-Range"), off)
		}
	case off == 0 && resp.StatusCode == http.StatusOK:
	default:
		return 0, fmt.Errorf("%w: %s answered %s", errSource, src.Tier, resp.Status)
	}
	buf := make([]byte, 32<<10)
	for {
		m, rerr := resp.Body.Read(buf)
		if m > 0 {
			watchdog.Reset(a.cfg.StallTimeout)
			if err := lim.wait(ctx, m); err != nil {
				return n, err
			}
			watchdog.Reset(a.cfg.StallTimeout) // waiting for the rate cap is not a stall
			if _, err := w.Write(buf[:m]); err != nil {
				return n, err
			}
			n += int64(m)
			a.count(src.Tier, m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

func (a *Agent) count(tier string, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stats.Bytes += int64(n)
	switch tier {
	case api.TierPeer:
		a.stats.PeerBytes += int64(n)
	case api.TierSite:
		a.stats.TierBytes += int64(n)
	default:
		a.stats.OriginBytes += int64(n)
	}
}
