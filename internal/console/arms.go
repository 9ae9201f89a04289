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
// reports by at most one WAL segment's age (a minute by default). The
// last hour is read every ArmsEvery, streamed file by file into
// analyze.Arms, which keeps a few numbers per pulse of an arm at its
// steered site (a value and a client index per metric) — not the rows,
// which took the control plane's memory up with every hour's reports.

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

func (c *Console) computeArms() armsView {
	now := c.cfg.Now()
	v := armsView{At: now}
	var arms analyze.Arms
	st, err := analyze.Scan(c.cfg.MeasureDir, analyze.Filter{Since: now.Add(-armsWindow)}, arms.AddRow)
	switch {
	case errors.Is(err, analyze.ErrNoData) || errors.Is(err, analyze.ErrEmptyRange):
		v.Note = "no measurements in Parquet yet (reports reach Parquet when their write-ahead log segment closes, within a minute)"
		return v
	case err != nil:
		c.log.Warn("reading measurements for the experiment arms", "dir", c.cfg.MeasureDir, "err", err)
		v.Note = "could not read the measurements: " + err.Error()
		return v
	}
	v.Rows = st.RowsKept
	sessions, err := analyze.LoadQoE(c.cfg.MeasureDir, analyze.Filter{Since: now.Add(-armsWindow)})
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
