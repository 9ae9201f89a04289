package sim

import (
	"fmt"
	"math"
	"time"

	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/rendezvous"
)

// title is one title of the simulated catalog.
type title struct {
	files    []int32 // video rungs in ladder order, then audio
	audio    int32   // -1 when none
	duration time.Duration
	// release is when a new release goes live (zero: always there).
	release time.Time
	// rank is the title's global popularity rank (0 = most popular).
	rank int
}

// catalog is the simulated catalog: files as the control plane knows them
// (content.File; no bytes exist, so SHA-256 is a placeholder) and titles.
type catalog struct {
	files  []content.File
	titles []title
	index  map[string]int32
}

// placeholderSHA stands for hashes no one checks: the simulator verifies
// fills by construction.
const placeholderSHA = "0000000000000000000000000000000000000000000000000000000000000000"

// buildCatalog makes the scenario's catalog: titles 0..Titles-1 ranked by
// index, plus Releases.PerDay titles for every day of the run that go
// live at Releases.Hour UTC.
func buildCatalog(s *Scenario) *catalog {
	c := &catalog{index: map[string]int32{}}
	spec := s.Catalog
	days := int(math.Ceil(s.Duration.Hours() / 24))
	nRel := s.Demand.Releases.PerDay * days
	total := spec.Titles + nRel
	for t := 0; t < total; t++ {
		h := rendezvous.Mix(s.Seed ^ uint64(t)*0x9e3779b97f4a7c15)
		u := float64(h>>11) / (1 << 53)
		// Durations spread log-uniformly between the bounds: many
		// episodes, fewer films.
		lo, hi := spec.MinDuration.Seconds(), spec.MaxDuration.Seconds()
		dur := time.Duration(lo*math.Pow(hi/lo, u)) * time.Second
		if dur <= 0 {
			dur = spec.MinDuration
		}
		ti := title{duration: dur, audio: -1, rank: t}
		if t >= spec.Titles {
			k := t - spec.Titles
			day := k / max(s.Demand.Releases.PerDay, 1)
			d0 := time.Date(s.Start.Year(), s.Start.Month(), s.Start.Day(), s.Demand.Releases.Hour, 0, 0, 0, time.UTC)
			ti.release = d0.AddDate(0, 0, day)
			if ti.release.Before(s.Start) {
				ti.release = ti.release.AddDate(0, 0, 1)
			}
		}
		name := fmt.Sprintf("t%05d", t)
		add := func(path string, kind content.Kind, kbps int) int32 {
			size := int64(float64(kbps) * 1000 / 8 * dur.Seconds())
			i := int32(len(c.files))
			c.files = append(c.files, content.File{Path: path, Size: size, SHA256: placeholderSHA, Kind: kind, BitrateKbps: kbps})
			c.index[path] = i
			return i
		}
		for _, kbps := range spec.LadderKbps {
			ti.files = append(ti.files, add(fmt.Sprintf("%s/video_%dk.mp4", name, kbps), content.KindVideo, kbps))
		}
		if spec.AudioKbps > 0 {
			ti.audio = add(fmt.Sprintf("%s/audio_%dk.mp4", name, spec.AudioKbps), content.KindAudio, spec.AudioKbps)
		}
		c.titles = append(c.titles, ti)
	}
	return c
}

// fromContent wraps a real catalog (the lab's synthetic one) with each
// title's files: video rungs by bitrate, audio apart.
func fromContent(cat *content.Catalog, dur time.Duration) *catalog {
	c := &catalog{files: cat.Files, index: map[string]int32{}}
	byTitle := map[string]int{}
	for i, f := range cat.Files {
		c.index[f.Path] = int32(i)
		t := f.Title()
		ti, ok := byTitle[t]
		if !ok {
			ti = len(c.titles)
			byTitle[t] = ti
			c.titles = append(c.titles, title{audio: -1, duration: dur, rank: ti})
		}
		if f.Kind == content.KindAudio {
			c.titles[ti].audio = int32(i)
		} else {
			c.titles[ti].files = append(c.titles[ti].files, int32(i))
		}
	}
	return c
}
