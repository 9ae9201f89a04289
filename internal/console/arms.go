package console

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/ocdn/ocdn/internal/analyze"
)

// The experiment arms need every pulse of each arm (the live sketches
// are per prefix group, not per arm), so the console reads them the way
// `ocdn analyze` does: from the ingester's Parquet files, which lag the
// reports by at most one WAL segment's age (a minute by default). Every
// ArmsEvery it merges what it gathered from each file of the last hour,
// reading only the files that appeared since: a file is written once,
// and what is kept of it (analyze.Arms: a value and a client index per
// metric of a pulse at its steered site) is a fraction of its rows.
// Loading the hour's rows whole every 30 s, as before, took a control
// plane's memory up with every report of the hour.

// armsFile is what the console gathered from one pulses file.
type armsFile struct {
	arms   analyze.Arms
	rows   int
	newest time.Time // of its rows' received times
}

// armsView is the last computation of the arms.
type armsView struct {
	At      time.Time
	Rows    int
	Results []analyze.ArmResult
	// Note says why there are no results (no Parquet yet, no arms).
	Note string
}

// armsWindow is how much measurement history the arms are computed over.
const armsWindow = time.Hour

// Control is the arm the others are compared with.
func (v armsView) Control() string {
	if len(v.Results) > 0 && v.Results[0].Control != "" {
		return v.Results[0].Control
	}
	return "the control arm"
}

func (c *Console) armsLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.ArmsEvery)
	defer t.Stop()
	for {
		v := c.computeArms()
		c.armsMu.Lock()
		c.arms = v
		c.armsMu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// computeArms merges the arms of the files that hold the last
// armsWindow's reports, whole files (each a WAL segment's reports, a
// minute by default), reading those not yet read. Only armsLoop calls it:
// it owns c.armsFiles.
func (c *Console) computeArms() armsView {
	now := c.cfg.Now()
	v := armsView{At: now}
	since := now.Add(-armsWindow)
	files, err := analyze.PulseFiles(c.cfg.MeasureDir, analyze.Filter{Since: since})
	if err != nil && !errors.Is(err, analyze.ErrNoData) {
		c.log.Warn("listing measurements for the experiment arms", "dir", c.cfg.MeasureDir, "err", err)
		v.Note = "could not read the measurements: " + err.Error()
		return v
	}
	kept := make(map[string]*armsFile, len(files))
	var arms analyze.Arms
	for _, path := range files {
		f := c.armsFiles[path]
		if f == nil {
			f = &armsFile{}
			n, err := analyze.ScanFile(path, analyze.Filter{}, func(r *analyze.Row) {
				f.arms.AddRow(r)
				if r.Time.After(f.newest) {
					f.newest = r.Time
				}
			})
			if err != nil {
				c.log.Warn("reading measurements for the experiment arms", "file", path, "err", err)
				v.Note = "could not read the measurements: " + err.Error()
				return v
			}
			f.rows = n
		}
		if f.newest.Before(since) {
			continue
		}
		kept[path] = f
		arms.Merge(&f.arms)
		v.Rows += f.rows
	}
	c.armsFiles = kept
	if v.Rows == 0 {
		v.Note = "no measurements in Parquet yet (reports reach Parquet when their write-ahead log segment closes, within a minute)"
		return v
	}
	sessions, err := analyze.LoadQoE(c.cfg.MeasureDir, analyze.Filter{Since: since})
	if err != nil && !errors.Is(err, analyze.ErrNoData) && !errors.Is(err, analyze.ErrEmptyRange) {
		c.log.Warn("reading playback records for the experiment arms", "dir", c.cfg.MeasureDir, "err", err)
	}
	for i := range sessions {
		arms.AddSession(&sessions[i])
	}
	// A fixed seed: the same data gives the same intervals on every
	// refresh, so the page does not flicker.
	for _, e := range arms.Results(0.95, 200, rand.New(rand.NewPCG(1, 2))) {
		v.Results = append(v.Results, e.Results...)
	}
	if len(v.Results) == 0 {
		v.Note = "no report carries an experiment arm (steering.experiment is off)"
	}
	return v
}

func (c *Console) armsNow() armsView {
	c.armsMu.Lock()
	defer c.armsMu.Unlock()
	return c.arms
}
