package lab

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/clock"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/control"
	"github.com/ocdn/ocdn/internal/fill"
)

// FillSettings shape the lab's fill: a compressed clock so that a fill
// window passes in seconds, the rate cap, and optional corrupt copies.
type FillSettings struct {
	// ClockFactor is how many clock seconds pass per real second (default
	// 3600: the 12-hour window lasts 12 s). The clock starts StartBefore
	// (default 2 minutes of clock time) before the window opens, so every
	// appliance waits for the window and then starts together.
	ClockFactor float64       `yaml:"clock_factor"`
	StartBefore time.Duration `yaml:"start_before"`
	// RateBytes caps each appliance's fill (bytes/s; 0 = none).
	RateBytes config.ByteSize `yaml:"rate"`
	// EscalateAfter is how long an appliance waits for a closer source
	// (default 10s).
	EscalateAfter time.Duration `yaml:"escalate_after"`
	// CorruptAppliance serves wrong bytes to fill requests for
	// CorruptFiles files that it is the first to fetch from the origin,
	// so that every other appliance's first try of them fails
	// verification.
	CorruptAppliance string `yaml:"corrupt_appliance"`
	CorruptFiles     int    `yaml:"corrupt_files"`
}

// FillReport is what fill did: bytes by tier, distinct bytes placed, and
// verification.
type FillReport struct {
	// OriginBytes is what the origin served (fill is its only client).
	OriginBytes int64 `json:"origin_bytes"`
	PeerBytes   int64 `json:"peer_bytes"`
	TierBytes   int64 `json:"tier_bytes"`
	// UniqueBytes is the size of the distinct files placed anywhere in
	// the CDN: what the origin must serve at least once.
	UniqueBytes   int64 `json:"unique_bytes"`
	FilesVerified int   `json:"files_verified"`
	// FilesRejected counts distinct bad copies (file, source) found by
	// verification; InjectedCorrupt is how many the scenario planted.
	FilesRejected   int     `json:"files_rejected"`
	InjectedCorrupt int     `json:"injected_corrupt"`
	SecondsToFill   float64 `json:"seconds_to_fill"`
}

// fillClock is the compressed clock: it starts StartBefore ahead of the
// window's opening in the first site's time zone.
func (l *Lab) fillClock() fill.Clock {
	fs := l.sc.Fill
	factor := fs.ClockFactor
	if factor <= 0 {
		factor = 3600
	}
	before := fs.StartBefore
	if before <= 0 {
		before = 2 * time.Minute
	}
	loc := time.UTC
	for _, s := range l.sc.Sites {
		if s.TimeZone != "" {
			if z, err := time.LoadLocation(s.TimeZone); err == nil {
				loc = z
				break
			}
		}
	}
	open := time.Date(2026, 1, 15, fill.DefaultStartHour, 0, 0, 0, loc)
	return clock.NewScaled(open.Add(-before), factor)
}

// plan is the control plane's placement as the appliances see it: their
// manifests, read once before they start.
type plan struct {
	holders map[string][]string // path → appliances listing it
	files   map[string]content.File
}

func (l *Lab) readPlan(ctx context.Context) (*plan, error) {
	p := &plan{holders: map[string][]string{}, files: map[string]content.File{}}
	for _, a := range l.sc.Appliances {
		m, err := l.view.manifest(ctx, a.ID)
		if err != nil {
			return nil, fmt.Errorf("reading %s's manifest: %w", a.ID, err)
		}
		for _, f := range m.Files {
			p.holders[f.Path] = append(p.holders[f.Path], a.ID)
			p.files[f.Path] = f
		}
	}
	return p, nil
}

// corruptFiles picks the files the corrupt appliance serves wrongly: the
// smallest of those it is the designated origin fetcher for and that
// other appliances list too (so someone fills them from it).
func (l *Lab) corruptFiles(p *plan) []string {
	fs := l.sc.Fill
	if fs.CorruptAppliance == "" || fs.CorruptFiles <= 0 {
		return nil
	}
	var cands []content.File
	for path, hs := range p.holders {
		if len(hs) > 1 && control.OriginFetcher(path, hs) == fs.CorruptAppliance {
			cands = append(cands, p.files[path])
		}
	}
	slices.SortFunc(cands, func(a, b content.File) int {
		if a.Size != b.Size {
			return cmp.Compare(a.Size, b.Size)
		}
		return strings.Compare(a.Path, b.Path)
	})
	var out []string
	for _, f := range cands[:min(len(cands), fs.CorruptFiles)] {
		out = append(out, f.Path)
	}
	l.injectedCorrupt = len(out)
	return out
}

// fillReport sums fill over the appliances; offload is the share of
// client bytes that embedded sites served; misses come from the control
// plane's classification of appliance demand reports.
func (l *Lab) fillReport(r *Report, statuses map[string]api.ApplianceRuntime, sum api.FillSummary, originBytes int64) {
	fr := &FillReport{OriginBytes: originBytes, InjectedCorrupt: l.injectedCorrupt,
		FilesRejected: sum.BadCopies, SecondsToFill: l.fillSeconds}
	for _, st := range statuses {
		fr.PeerBytes += st.Fill.PeerBytes
		fr.TierBytes += st.Fill.TierBytes
		fr.FilesVerified += st.Fill.FilesVerified
	}
	// The distinct files placed anywhere: what the origin must serve at
	// least once.
	for _, f := range l.plan.files {
		fr.UniqueBytes += f.Size
	}
	r.Fill = fr
	kinds := map[string]config.SiteKind{}
	for _, s := range l.sc.Sites {
		kinds[s.ID] = s.Kind
	}
	// Appliances' BytesServed include fill traffic between them; offload
	// is about clients, so it counts client bytes only.
	var embedded, all int64
	for _, la := range l.appliances {
		n := statuses[la.cfg.ID].ClientBytes
		all += n
		if kinds[la.cfg.Site] == config.SiteEmbedded {
			embedded += n
		}
	}
	if all > 0 {
		r.Offload = float64(embedded) / float64(all)
	}
	m := sum.Misses
	r.Misses = &m
}

// missesOf keeps the api type out of report.go's imports.
type missesOf = api.Misses

func (f FillSettings) validate(s *Scenario) error {
	if f.ClockFactor < 0 || f.RateBytes < 0 || f.CorruptFiles < 0 {
		return config.Errf("fill", "clock_factor, rate and corrupt_files must not be negative")
	}
	if f.CorruptAppliance != "" && !slices.ContainsFunc(s.Appliances, func(a config.Appliance) bool { return a.ID == f.CorruptAppliance }) {
		return config.Errf("fill.corrupt_appliance", "unknown appliance %q", f.CorruptAppliance)
	}
	return nil
}

// corruptFor is the corrupt files appliance id serves (none for others).
func (l *Lab) corruptFor(id string, files []string) []string {
	if id != l.sc.Fill.CorruptAppliance {
		return nil
	}
	return files
}
