package content

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sync"
	"time"
)

// DefaultHalfLife is how fast observed demand is forgotten: a day's
// demand counts half as much after three days. Catalogue demand decays
// over days (new releases peak in their first week), so a shorter
// half-life chases noise and a longer one keeps last month's hits.
const DefaultHalfLife = 3 * 24 * time.Hour

// Popularity predicts demand (bytes per day) per file per region (a
// region is a site for now). Observed served bytes accumulate into the
// current day; at each day boundary the day's total is folded into an
// exponentially weighted moving average with the configured half-life:
// v ← α·x + (1−α)·v with α = 1 − 2^(−day/halfLife). A feed of predicted
// demand for new releases fills the gap before there are observations:
// the prediction is max(EWMA, feed). It is safe for concurrent use.
type Popularity struct {
	halfLife time.Duration
	day      time.Duration

	mu      sync.Mutex
	dayEnd  time.Time
	current map[string]map[string]float64 // region → path → bytes today
	ewma    map[string]map[string]float64 // region → path → bytes/day
	feed    map[string]float64            // path → predicted bytes/day
}

// NewPopularity returns an empty predictor; halfLife ≤ 0 means
// DefaultHalfLife, day ≤ 0 means 24h (the lab compresses it).
func NewPopularity(halfLife, day time.Duration) *Popularity {
	if halfLife <= 0 {
		halfLife = DefaultHalfLife
	}
	if day <= 0 {
		day = 24 * time.Hour
	}
	return &Popularity{halfLife: halfLife, day: day, current: map[string]map[string]float64{},
		ewma: map[string]map[string]float64{}, feed: map[string]float64{}}
}

// Observe records bytes served for path in region at now.
func (p *Popularity) Observe(region, path string, bytes int64, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.roll(now)
	m := p.current[region]
	if m == nil {
		m = map[string]float64{}
		p.current[region] = m
	}
	m[path] += float64(bytes)
}

// roll folds every finished day into the averages.
func (p *Popularity) roll(now time.Time) {
	if p.dayEnd.IsZero() {
		p.dayEnd = now.Add(p.day)
		return
	}
	alpha := 1 - math.Exp2(-float64(p.day)/float64(p.halfLife))
	for !now.Before(p.dayEnd) {
		for region, m := range p.ewma {
			cur := p.current[region]
			for path, v := range m {
				m[path] = (1 - alpha) * v
				if m[path] < 1 && cur[path] == 0 {
					delete(m, path)
				}
			}
		}
		for region, cur := range p.current {
			m := p.ewma[region]
			if m == nil {
				m = map[string]float64{}
				p.ewma[region] = m
			}
			for path, x := range cur {
				m[path] += alpha * x
			}
		}
		p.current = map[string]map[string]float64{}
		p.dayEnd = p.dayEnd.Add(p.day)
	}
}

// Predict is the predicted bytes per day of path in region.
func (p *Popularity) Predict(region, path string, now time.Time) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.roll(now)
	return max(p.ewma[region][path], p.feed[path])
}

// Region returns the predictions of every file with demand in region or
// in the feed.
func (p *Popularity) Region(region string, now time.Time) map[string]float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.roll(now)
	out := make(map[string]float64, len(p.ewma[region])+len(p.feed))
	for k, v := range p.feed {
		out[k] = v
	}
	for k, v := range p.ewma[region] {
		out[k] = max(out[k], v)
	}
	return out
}

// SetFeed replaces the new-release feed.
func (p *Popularity) SetFeed(f Feed) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.feed = make(map[string]float64, len(f.Predictions))
	for _, e := range f.Predictions {
		p.feed[e.Path] = e.BytesPerDay
	}
}

// Feed predicts demand for files without history (new releases). Its JSON
// form is {"predictions":[{"path":"t0042/video_3000k.mp4","bytes_per_day":1e9}]}.
type Feed struct {
	Predictions []Prediction `json:"predictions"`
}

// Prediction is one file's predicted demand.
type Prediction struct {
	Path        string  `json:"path"`
	BytesPerDay float64 `json:"bytes_per_day"`
	// Urgent asks appliances to fill the file outside their window.
	Urgent bool `json:"urgent,omitempty"`
}

// ParseFeed reads a feed, checking every path against the catalog.
func ParseFeed(data []byte, c *Catalog) (Feed, error) {
	var f Feed
	if err := json.Unmarshal(data, &f); err != nil {
		return Feed{}, fmt.Errorf("popularity feed: %w", err)
	}
	for i, e := range f.Predictions {
		if _, err := c.Lookup(e.Path); err != nil {
			return Feed{}, fmt.Errorf("popularity feed: predictions[%d]: %w", i, err)
		}
		if e.BytesPerDay < 0 || math.IsNaN(e.BytesPerDay) || math.IsInf(e.BytesPerDay, 0) {
			return Feed{}, fmt.Errorf("popularity feed: predictions[%d].bytes_per_day: %v is not a non-negative number", i, e.BytesPerDay)
		}
	}
	return f, nil
}

// LoadFeed reads a feed file.
func LoadFeed(path string, c *Catalog) (Feed, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Feed{}, err
	}
	return ParseFeed(data, c)
}

// CachingEfficiency is the share of the bytes requested by a cluster's
// clients that the cluster served itself.
func CachingEfficiency(servedByCluster, requestedByClients int64) float64 {
	if requestedByClients <= 0 {
		return 0
	}
	return float64(servedByCluster) / float64(requestedByClients)
}
