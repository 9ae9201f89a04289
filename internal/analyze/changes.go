package analyze

import (
	"slices"
	"time"

	"github.com/ocdn/ocdn/internal/stats"
)

// SeriesPoint is the p50 of one metric at one site in one hour.
type SeriesPoint struct {
	Hour        time.Time
	N           int
	P50, Lo, Hi float64 // Lo and Hi are NaN when N < stats.MinSamples(0.5, level)
}

// Series is the hourly p50 series of a metric at a site, in time order,
// hours with no values left out.
type Series struct {
	Site    string
	Metric  Metric
	Points  []SeriesPoint
	Changes []Change
}

// Change is a level shift found in a Series.
type Change struct {
	Site       string
	Metric     Metric
	At         time.Time // first hour of the shifted level (CUSUM estimate)
	DetectedAt time.Time // hour whose point raised the alarm
	Before     float64   // baseline p50
	After      float64   // median hourly p50 over up to 12 usable hours from At (to the next change)
	RelShift   float64   // After/Before − 1
	Direction  string    // "up" or "down"
}

// afterHours is how many points from a change estimate the new level.
const afterHours = 12

// MinSeriesSamples is how many values an hour needs for its p50 to enter
// change detection: the detector's defaults assume hourly medians with
// about 5% noise, which a handful of pulses does not give.
const MinSeriesSamples = 20

// HourlySeries builds the hourly p50 series per (site, metric).
func HourlySeries(rows []Row, level float64) []Series {
	type key struct {
		site string
		m    Metric
		hour int64
	}
	vals := make(map[key][]float64)
	for i := range rows {
		r := &rows[i]
		h := Hour(r.Time).Unix() / 3600
		for _, m := range Metrics {
			if x := r.Values[m]; x == x {
				k := key{r.Site, m, h}
				vals[k] = append(vals[k], x)
			}
		}
	}
	type skey struct {
		site string
		m    Metric
	}
	bySeries := make(map[skey]*Series)
	for k, x := range vals {
		slices.Sort(x)
		lo, est, hi, _ := stats.QuantileCI(x, 0.5, level)
		s := bySeries[skey{k.site, k.m}]
		if s == nil {
			s = &Series{Site: k.site, Metric: k.m}
			bySeries[skey{k.site, k.m}] = s
		}
		s.Points = append(s.Points, SeriesPoint{Hour: time.Unix(k.hour*3600, 0).UTC(), N: len(x), P50: est, Lo: lo, Hi: hi})
	}
	out := make([]Series, 0, len(bySeries))
	for _, s := range bySeries {
		slices.SortFunc(s.Points, func(a, b SeriesPoint) int { return a.Hour.Compare(b.Hour) })
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Series) int {
		if a.Site != b.Site {
			if a.Site < b.Site {
				return -1
			}
			return 1
		}
		return int(a.Metric) - int(b.Metric)
	})
	return out
}

// DetectSeriesChanges runs stats.DetectChanges (CUSUM, default
// configuration) over each series' hours with at least MinSeriesSamples
// values and fills in Series.Changes; it returns every change found.
// Missing hours are skipped, not interpolated: the detector treats the
// next available hour as the next point.
func DetectSeriesChanges(series []Series) ([]Change, error) {
	var all []Change
	for i := range series {
		s := &series[i]
		var pts []stats.Point
		for _, p := range s.Points {
			if p.N >= MinSeriesSamples {
				pts = append(pts, stats.Point{T: p.Hour, V: p.P50})
			}
		}
		chs, err := stats.DetectChanges(pts, stats.CUSUMConfig{})
		if err != nil {
			return nil, err
		}
		s.Changes = s.Changes[:0]
		for j, c := range chs {
			ch := Change{Site: s.Site, Metric: s.Metric, At: c.At, DetectedAt: c.DetectedAt,
				Before: c.Before, After: c.After, RelShift: c.RelShift, Direction: c.Direction.String()}
			// The detector's After is the median from At to the alarm,
			// often only two or three hours; with the whole series at
			// hand, the new level is better estimated from up to
			// afterHours points from At (stopping at the next change).
			end := time.Time{}
			if j+1 < len(chs) {
				end = chs[j+1].At
			}
			var after []float64
			for _, p := range pts {
				if !p.T.Before(c.At) && (end.IsZero() || p.T.Before(end)) && len(after) < afterHours {
					after = append(after, p.V)
				}
			}
			if len(after) > 0 && c.Before > 0 {
				ch.After = medianOf(after)
				ch.RelShift = ch.After/c.Before - 1
			}
			s.Changes = append(s.Changes, ch)
			all = append(all, ch)
		}
	}
	return all, nil
}

// MinChangeHours is how many usable hours a series needs before the CUSUM
// detector (default configuration) can raise any alarm.
func MinChangeHours() int {
	c, _ := stats.NewCUSUM(stats.CUSUMConfig{})
	return c.Config().MinBaseline + 1
}
