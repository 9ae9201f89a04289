package control

import (
	"context"
	"math"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/ocdn/ocdn/internal/measure"
)

// MeasuredSteering configures re-ranking by measurements.
type MeasuredSteering struct {
	Enabled bool
	// Experiment assigns each client prefix (/24 or /48) to an arm by
	// hash: "measured" clients are re-ranked, "bgp" clients are not, and
	// the arm is recorded in every recipe's context so analysis can
	// compare them.
	Experiment bool
	// MinSamples per (group, site) before a site's median counts (default
	// 50); Margin is the relative TTFB difference that must separate the
	// two sites' 95% intervals (default 0.10).
	MinSamples int
	Margin     float64
	// Refresh is how often the table is rebuilt from live aggregates.
	Refresh time.Duration
}

// siteStat is a site's median TTFB for a group with its 95% interval.
type siteStat struct{ lo, p50, hi float64 }

// measuredTable is an immutable snapshot of measurements for steering.
type measuredTable struct {
	cfg   MeasuredSteering
	stats map[string]map[string]siteStat // group → site → TTFB
}

// measuredView is what the steering snapshot holds: it reads the latest
// table on every comparison, so a refresh needs no snapshot rebuild.
type measuredView struct {
	cur *atomic.Pointer[measuredTable]
}

func (v measuredView) Applies(client netip.Addr) bool {
	t := v.cur.Load()
	return t != nil && (!t.cfg.Experiment || Arm(client) == ArmMeasured)
}

// Compare orders sites by median TTFB, but only when the better site's
// upper bound, raised by the margin, is still below the other's lower
// bound: measured differences move clients only when they are clear.
func (v measuredView) Compare(group netip.Prefix, a, b string) int {
	t := v.cur.Load()
	if t == nil {
		return 0
	}
	g := t.stats[group.String()]
	sa, okA := g[a]
	sb, okB := g[b]
	if !okA || !okB {
		return 0
	}
	m := 1 + t.cfg.Margin
	switch {
	case sa.hi*m < sb.lo:
		return -1
	case sb.hi*m < sa.lo:
		return 1
	}
	return 0
}

// Arms of the measurement experiment.
const (
	ArmBGP      = "bgp"
	ArmMeasured = "measured"
)

// Arm assigns a client's /24 (IPv4) or /48 (IPv6) to an experiment arm by
// hash: a household stays in its arm for the whole experiment, and a
// routed prefix's clients split between both arms, so the arms compare
// like with like.
func Arm(client netip.Addr) string {
	bits := 24
	if client.Is6() {
		bits = 48
	}
	p, _ := client.Unmap().Prefix(bits)
	if xxhash.Sum64String(p.String())%2 == 0 {
		return ArmBGP
	}
	return ArmMeasured
}

// buildMeasuredTable turns live aggregates into per-site medians with
// distribution-free 95% intervals read off the sketches at the ranks
// the order-statistic interval would use (within the sketch's 1%
// accuracy).
func buildMeasuredTable(in *measure.Ingester, cfg MeasuredSteering) *measuredTable {
	t := &measuredTable{cfg: cfg, stats: map[string]map[string]siteStat{}}
	for _, a := range in.Aggregates() {
		if a.Metric != "ttfb_ms" || a.Count < float64(cfg.MinSamples) {
			continue
		}
		sk := in.Sketch(a.Group, a.Site, a.Metric)
		if sk == nil {
			continue
		}
		n := sk.Count()
		half := 1.96 * math.Sqrt(n*0.25) / n
		lo, err1 := sk.Quantile(max(0, 0.5-half))
		p50, err2 := sk.Quantile(0.5)
		hi, err3 := sk.Quantile(min(1, 0.5+half))
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		if t.stats[a.Group] == nil {
			t.stats[a.Group] = map[string]siteStat{}
		}
		t.stats[a.Group][a.Site] = siteStat{lo: lo, p50: p50, hi: hi}
	}
	return t
}

// refreshMeasured rebuilds the table every Refresh until ctx ends.
func (s *Server) refreshMeasured(ctx context.Context) {
	cfg := s.cfg.Measured
	tick := time.NewTicker(cfg.Refresh)
	defer tick.Stop()
	for {
		s.measured.Store(buildMeasuredTable(s.measure, cfg))
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (c *MeasuredSteering) setDefaults() {
	if c.MinSamples <= 0 {
		c.MinSamples = 50
	}
	if c.Margin <= 0 {
		c.Margin = 0.10
	}
	if c.Refresh <= 0 {
		c.Refresh = 5 * time.Second
	}
}

// recipeContext records each client's experiment arm in its recipes.
func (s *Server) recipeContext(client netip.Addr) map[string]string {
	group, _, ok := s.Lookup(client)
	if !ok {
		return nil
	}
	return map[string]string{"arm": Arm(client), "prefix_group": group.String()}
}
