package content

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"

	"github.com/ocdn/ocdn/internal/defaults"
)

// DefaultHalfLife is how fast observed demand is forgotten: demand counts
// half as much after three days. Catalogue demand decays over days (new
// releases peak in their first week), so a shorter half-life chases noise
// and a longer one keeps last month's hits.
const DefaultHalfLife = 3 * 24 * time.Hour

// Popularity predicts demand (bytes per day) per file per region. The
// control plane's regions are home sites: demand is counted where the
// client lives, not where it happened to be served.
//
// Observed bytes feed an exponentially weighted moving average in
// continuous time: each (region, file) keeps a sum of its observations,
// each weighted by 2^(−age/halfLife), and predicts the rate
// sum · ln 2 / halfLife (the rate that, sustained, keeps the sum where
// it is), in bytes per day. A daily fold (v ← α·x + (1−α)·v once a day)
// is the same average sampled at midnight; the continuous form has no
// day boundary, so a replan an hour after a title turns hot sees it, and
// a lab whose day is a minute needs no second clock. A feed of predicted
// demand for new releases fills the gap before there are observations:
// the prediction is max(EWMA, feed). It is safe for concurrent use.
type Popularity struct {
	halfLife time.Duration
	day      time.Duration

	mu      sync.Mutex
	regions map[string]map[string]decayed // region → path → observations
	feed    map[string]float64            // path → predicted bytes/day
}

// decayed is a sum of observations weighted by their age at time at.
type decayed struct {
	sum float64
	at  time.Time
}

// asOf returns the sum as of now (never grown by a clock going backwards).
func (d decayed) asOf(now time.Time, halfLife time.Duration) float64 {
	age := now.Sub(d.at)
	if age <= 0 {
		return d.sum
	}
	return d.sum * math.Exp2(-float64(age)/float64(halfLife))
}

// NewPopularity returns an empty predictor; halfLife ≤ 0 means
// DefaultHalfLife, day ≤ 0 means 24h (the unit of predictions).
func NewPopularity(halfLife, day time.Duration) *Popularity {
	defaults.Positive(&halfLife, DefaultHalfLife)
	defaults.Positive(&day, 24*time.Hour)
	return &Popularity{halfLife: halfLife, day: day, regions: map[string]map[string]decayed{}, feed: map[string]float64{}}
}

// HalfLife is the predictor's half-life.
func (p *Popularity) HalfLife() time.Duration { return p.halfLife }

// Observe records bytes demanded of path in region at now.
func (p *Popularity) Observe(region, path string, bytes int64, now time.Time) {
	if bytes <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.regions[region]
	if m == nil {
		m = map[string]decayed{}
		p.regions[region] = m
	}
	d := m[path]
	m[path] = decayed{sum: d.asOf(now, p.halfLife) + float64(bytes), at: later(d.at, now)}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// rate converts a decayed sum to bytes per day.
func (p *Popularity) rate(sum float64) float64 {
	return sum * math.Ln2 / float64(p.halfLife) * float64(p.day)
}

// Predict is the predicted bytes per day of path in region.
func (p *Popularity) Predict(region, path string, now time.Time) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(p.rate(p.regions[region][path].asOf(now, p.halfLife)), p.feed[path])
}

// Region returns the predictions of every file with demand in region or
// in the feed. Files whose observed demand has decayed below a byte a day
// are forgotten.
func (p *Popularity) Region(region string, now time.Time) map[string]float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.regions[region]
	out := make(map[string]float64, len(m)+len(p.feed))
	for k, v := range p.feed {
		out[k] = v
	}
	for k, d := range m {
		r := p.rate(d.asOf(now, p.halfLife))
		if r < 1 {
			delete(m, k)
			continue
		}
		out[k] = max(out[k], r)
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

// ParseFeed reads a feed and checks every entry: its path must be in the
// catalog, its demand a non-negative number, and no path may be listed
// twice (two predictions for one file are a broken feed, not a sum).
// Errors name the entry and the line it starts on, so that an operator
// can find it in a generated file of thousands.
func ParseFeed(data []byte, c *Catalog) (Feed, error) {
	fail := func(off int64, format string, args ...any) (Feed, error) {
		return Feed{}, fmt.Errorf("popularity feed: line %d: %s", lineAt(data, off), fmt.Sprintf(format, args...))
	}
	syntax := func(err error, off int64) (Feed, error) {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			off = se.Offset
		case errors.As(err, &te):
			off = te.Offset
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			off = int64(len(data))
			err = errors.New("unexpected end of the feed")
		}
		return fail(off, "%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if tok, err := dec.Token(); err != nil {
		return syntax(err, dec.InputOffset())
	} else if tok != json.Delim('{') {
		return fail(0, `want a JSON object {"predictions": [...]}`)
	}
	var f Feed
	seen := map[string]int{} // path → line
	for dec.More() {
		off := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return syntax(err, off)
		}
		if tok != "predictions" {
			return fail(skipSpace(data, off), "unknown field %v (a feed has only \"predictions\")", tok)
		}
		if tok, err = dec.Token(); err != nil {
			return syntax(err, dec.InputOffset())
		}
		if tok == nil {
			continue // "predictions": null
		}
		if tok != json.Delim('[') {
			return fail(dec.InputOffset(), "predictions: want a list")
		}
		for i := 0; dec.More(); i++ {
			off := skipSpace(data, dec.InputOffset())
			line := lineAt(data, off)
			var e Prediction
			if err := dec.Decode(&e); err != nil {
				return syntax(fmt.Errorf("predictions[%d]: %w", i, err), off)
			}
			if _, err := c.Lookup(e.Path); err != nil {
				return fail(off, "predictions[%d]: %v", i, err)
			}
			if e.BytesPerDay < 0 || math.IsNaN(e.BytesPerDay) || math.IsInf(e.BytesPerDay, 0) {
				return fail(off, "predictions[%d].bytes_per_day: %v is not a non-negative number (negative demand)", i, e.BytesPerDay)
			}
			if first, dup := seen[e.Path]; dup {
				return fail(off, "predictions[%d]: %s is listed twice (first on line %d)", i, e.Path, first)
			}
			seen[e.Path] = line
			f.Predictions = append(f.Predictions, e)
		}
		if _, err := dec.Token(); err != nil { // ']'
			return syntax(err, dec.InputOffset())
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return syntax(err, dec.InputOffset())
	}
	if off := skipSpace(data, dec.InputOffset()); off < int64(len(data)) {
		return fail(off, "trailing data after the feed's object")
	}
	return f, nil
}

// skipSpace returns the offset of the first byte at or after off that is
// neither JSON whitespace nor a separator: where the next value starts.
func skipSpace(data []byte, off int64) int64 {
	for off < int64(len(data)) {
		switch data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
		default:
			return off
		}
	}
	return off
}

// lineAt is the 1-based line of byte offset off.
func lineAt(data []byte, off int64) int {
	off = min(max(off, 0), int64(len(data)))
	return 1 + bytes.Count(data[:off], []byte("\n"))
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
