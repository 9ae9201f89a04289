// Package soak provides the chaos soak: the lab's daemons (internal/lab,
// each daemon its own `ocdn` process, two control-plane replicas on
// PostgreSQL) streaming to the lab's clients under a random but seeded
// schedule of faults — appliances SIGKILLed and restarted, stored objects
// corrupted while their appliance is down, a control-plane replica
// SIGKILLed and restarted, BGP sessions flapped, an appliance's disk
// filled up, slow and silent clients — while invariants are checked all
// along: no byte served differs from the origin, no acknowledged report
// is missing from the Parquet store, no session fails while another site
// could serve it, the daemons' memory and file descriptors stay bounded,
// every slow or silent client is cut off, and the control-plane replicas
// agree on which appliances get clients.
package soak

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/defaults"
	"github.com/ocdn/ocdn/internal/lab"
)

// Config is one soak.
type Config struct {
	// Duration is how long the lab streams under faults.
	Duration time.Duration
	// Seed makes the schedule (kinds, targets, timings) reproducible.
	Seed uint64
	// Binary is the ocdn executable every daemon runs as.
	Binary string
	// ControlStore is the PostgreSQL DSN the control-plane replicas share.
	ControlStore string
	// WorkDir holds the lab's configs, stores (each a tmpfs), logs and
	// spools; it must exist and be empty.
	WorkDir string
	// Gap is the mean time between fault starts (default 10s).
	Gap time.Duration
	// ApplianceOctet places the appliances at 127.1.X.* (see
	// lab.Options.ApplianceOctet) so that soaks and lab tests on one
	// machine do not collide.
	ApplianceOctet int
	// Clients scales the built-in scenario's client groups (default 1).
	ClientShare float64
	// MaxRSS and MaxFDs bound every daemon process (defaults 1 GiB, 1024).
	MaxRSS int64
	MaxFDs int
	// CutOffBound is how long a slow or silent client may hold a
	// connection (default 30s: the servers' 10s deadlines, with room for
	// a loaded machine).
	CutOffBound time.Duration
	// AgreeBound is how long control-plane replicas may disagree on
	// whether an appliance gets clients (default 30s: a few heartbeat
	// intervals and sync rounds, with room for a loaded machine).
	AgreeBound time.Duration
	// Status gets progress lines; nil for none.
	Status io.Writer
	Logger *slog.Logger
}

func (c *Config) defaults() {
	defaults.Positive(&c.Gap, 10*time.Second)
	defaults.Positive(&c.ClientShare, 1)
	defaults.Positive(&c.MaxRSS, 1<<30)
	defaults.Positive(&c.MaxFDs, 1024)
	defaults.Positive(&c.CutOffBound, 30*time.Second)
	defaults.Positive(&c.AgreeBound, 30*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Status == nil {
		c.Status = io.Discard
	}
}

// Invariant is one property the soak checked, and whether it held.
type Invariant struct {
	Name   string
	Held   bool
	Detail string
	// Violations are the first few counterexamples.
	Violations []string
}

// Result is what a soak injected and what held.
type Result struct {
	Seed       uint64
	Duration   time.Duration
	Replicas   int
	Appliances int
	Injected   map[string]int
	// Failed counts injections that could not be carried out (e.g. a
	// restart that failed), by kind.
	Failed map[string]int
	// FailedWhy are the first few reasons.
	FailedWhy  []string
	Invariants []Invariant
	Lab        *lab.Report
}

// OK says whether every invariant held.
func (r *Result) OK() bool {
	for _, inv := range r.Invariants {
		if !inv.Held {
			return false
		}
	}
	return len(r.Invariants) > 0
}

// Total is the number of faults injected.
func (r *Result) Total() int {
	n := 0
	for _, v := range r.Injected {
		n += v
	}
	return n
}

// Print writes the summary: what was injected, per kind, and each
// invariant with what held.
func (r *Result) Print(w io.Writer) {
	fmt.Fprintf(w, "chaos soak: seed %d, %v under faults, %d control-plane replicas, %d appliances\n", r.Seed, r.Duration, r.Replicas, r.Appliances)
	fmt.Fprintf(w, "injected %d faults:\n", r.Total())
	for _, k := range Kinds {
		line := fmt.Sprintf("  %-16s %4d", k, r.Injected[k])
		if f := r.Failed[k]; f > 0 {
			line += fmt.Sprintf("  (%d could not be carried out)", f)
		}
		fmt.Fprintln(w, line)
	}
	for _, why := range r.FailedWhy {
		fmt.Fprintf(w, "  not carried out: %s\n", why)
	}
	fmt.Fprintln(w, "invariants:")
	for _, inv := range r.Invariants {
		state := "HELD  "
		if !inv.Held {
			state = "FAILED"
		}
		fmt.Fprintf(w, "  %s %s: %s\n", state, inv.Name, inv.Detail)
		for _, v := range inv.Violations {
			fmt.Fprintf(w, "         - %s\n", v)
		}
	}
	if r.Lab != nil {
		s := r.Lab.Sessions
		fmt.Fprintf(w, "sessions: %d started, %d completed, %d failed, %d interrupted by the end, %d failovers\n",
			s.Started, s.Completed, s.Failed, s.Interrupted, s.Failovers)
	}
	if r.OK() {
		fmt.Fprintln(w, "every invariant held")
	} else {
		fmt.Fprintln(w, "SOME INVARIANT FAILED")
	}
}

// Run runs one soak. It needs root (each appliance's store is a tmpfs of
// its own, the disk the disk-full fault fills) and returns an error only
// when the soak could not run; a failed invariant is in the Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	sc, err := lab.LoadScenario("")
	if err != nil {
		return nil, err
	}
	sc.Duration = cfg.Duration
	sc.Events = nil // the soak is the schedule
	sc.Fill.CorruptAppliance, sc.Fill.CorruptFiles = "", 0
	for i := range sc.Clients {
		sc.Clients[i].Count = max(1, int(float64(sc.Clients[i].Count)*cfg.ClientShare))
	}
	if err := sc.Validate(); err != nil {
		return nil, err
	}

	// Each store a tmpfs the size of the whole catalog and a margin: the
	// disk the disk-full fault fills, and nobody else's.
	cat, err := content.Synth(sc.Catalog)
	if err != nil {
		return nil, err
	}
	storeSize := cat.TotalBytes() + 64<<20
	var mounted []string
	defer func() {
		for _, m := range mounted {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
				cfg.Logger.Error("unmount store", "dir", m, "err", err)
			}
		}
	}()
	for _, a := range sc.Appliances {
		dir := lab.StoreDir(cfg.WorkDir, a.ID)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", storeSize)); err != nil {
			return nil, fmt.Errorf("store of %s: mount tmpfs on %s: %w (the soak needs root)", a.ID, dir, err)
		}
		mounted = append(mounted, dir)
	}

	s := newSoak(cfg, len(sc.Appliances))
	opts := lab.Options{
		Status: cfg.Status, StatusEvery: 30 * time.Second, Logger: cfg.Logger,
		WorkDir: cfg.WorkDir, Processes: true, Binary: cfg.Binary,
		ControlReplicas: 2, ControlStore: cfg.ControlStore, ApplianceOctet: cfg.ApplianceOctet,
		Chaos: s.chaos, OnSession: s.session, OnSpool: s.spooled,
	}
	rep, err := lab.New(sc, opts).Run(ctx)
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	res := s.result(rep)
	res.Invariants = append(res.Invariants, s.reportsInvariant(filepath.Join(cfg.WorkDir, "etc", "measure")))
	return res, nil
}

// soak is one run's shared state: the schedule's bookkeeping and the
// invariants' evidence.
type soak struct {
	cfg Config

	mu        sync.Mutex
	injected  map[string]int
	failed    map[string]int
	failedWhy limited
	// down holds, per appliance, the intervals it was down by our doing;
	// an open interval has a zero end.
	down       map[string][]interval
	replicas   int
	appliances int

	bytes    byteCheck
	sessions sessionCheck
	reports  map[string]int // spooled report id → pulses
	procs    procCheck
	cutoff   cutoffCheck
	agree    agreeCheck
}

type interval struct{ from, to time.Time }

func newSoak(cfg Config, appliances int) *soak {
	return &soak{cfg: cfg, injected: map[string]int{}, failed: map[string]int{}, down: map[string][]interval{},
		reports: map[string]int{}, appliances: appliances, procs: procCheck{peak: map[string]procSample{}}}
}

func (s *soak) status(format string, args ...any) {
	fmt.Fprintf(s.cfg.Status, "soak: "+format+"\n", args...)
}

func (s *soak) count(kind string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failed[kind]++
		s.failedWhy.add("%s: %v", kind, err)
		s.cfg.Logger.Error("fault", "kind", kind, "err", err)
		return
	}
	s.injected[kind]++
}

func (s *soak) spooled(id string, pulses int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reports[id] = pulses
}

func (s *soak) result(rep *lab.Report) *Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := &Result{Seed: s.cfg.Seed, Duration: s.cfg.Duration, Replicas: s.replicas, Appliances: s.appliances,
		Injected: s.injected, Failed: s.failed, FailedWhy: s.failedWhy.list, Lab: rep}
	res.Invariants = append(res.Invariants, s.bytes.invariant(), s.sessions.invariant(),
		s.procs.invariant(s.cfg), s.cutoff.invariant(s.cfg), s.agree.invariant(s.cfg))
	return res
}

// limited keeps the first few violations of an invariant.
type limited struct {
	n    int
	list []string
}

func (l *limited) add(format string, args ...any) {
	l.n++
	if len(l.list) < 10 {
		l.list = append(l.list, fmt.Sprintf(format, args...))
	}
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
