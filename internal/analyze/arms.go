package analyze

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/ocdn/ocdn/internal/stats"
)

// ArmResult is the p50 of a metric in one arm of a steering experiment
// (reports whose context carries "arm"), and its difference from the
// control arm.
type ArmResult struct {
	Arm     string
	Metric  Metric
	Reports int
	Clients int
	N       int // values
	// P50 with its order-statistic interval over all values of the arm;
	// the interval treats values as independent, which pulses of one
	// client are not quite, so read it as a lower bound on the
	// uncertainty; the difference below accounts for clients.
	P50, Lo, Hi float64
	OK          bool
	// Control is the arm compared against ("control" if present, else the
	// first arm by name). Diff is P50(arm) − P50(control) with a
	// cluster (client-level) Poisson-bootstrap percentile interval.
	Control              string
	Diff, DiffLo, DiffHi float64
	DiffOK               bool
	Note                 string
}

type armData struct {
	reports map[string]bool
	clients map[string]int // client key → index
	vals    [numMetrics][]float64
	cl      [numMetrics][]int // client index of each value
}

// Arms compares experiment arms for every metric. reps is the number of
// bootstrap replicates (e.g. 1000); rng makes it reproducible. It returns
// nil when no report carries an arm.
func Arms(rows []Row, level float64, reps int, rng *rand.Rand) []ArmResult {
	arms := make(map[string]*armData)
	for i := range rows {
		r := &rows[i]
		if r.Arm == "" {
			continue
		}
		a := arms[r.Arm]
		if a == nil {
			a = &armData{reports: make(map[string]bool), clients: make(map[string]int)}
			arms[r.Arm] = a
		}
		a.reports[r.ReportID] = true
		ck := r.Prefix
		if r.ClientAddr.IsValid() {
			ck = r.ClientAddr.String()
		}
		ci, ok := a.clients[ck]
		if !ok {
			ci = len(a.clients)
			a.clients[ck] = ci
		}
		for _, m := range Metrics {
			if x := r.Values[m]; x == x {
				a.vals[m] = append(a.vals[m], x)
				a.cl[m] = append(a.cl[m], ci)
			}
		}
	}
	if len(arms) == 0 {
		return nil
	}
	names := make([]string, 0, len(arms))
	for n := range arms {
		names = append(names, n)
	}
	slices.Sort(names)
	control := names[0]
	if _, ok := arms["control"]; ok {
		control = "control"
	}
	// Sort each arm's values once, carrying client indices along.
	for _, a := range arms {
		for _, m := range Metrics {
			idx := make([]int, len(a.vals[m]))
			for i := range idx {
				idx[i] = i
			}
			slices.SortFunc(idx, func(x, y int) int { return cmp.Compare(a.vals[m][x], a.vals[m][y]) })
			v, c := make([]float64, len(idx)), make([]int, len(idx))
			for i, j := range idx {
				v[i], c[i] = a.vals[m][j], a.cl[m][j]
			}
			a.vals[m], a.cl[m] = v, c
		}
	}
	var out []ArmResult
	for _, m := range Metrics {
		ctl := arms[control]
		var ctlReps []float64
		if reps > 0 && len(ctl.vals[m]) > 0 {
			ctlReps = clusterBootstrapMedians(ctl.vals[m], ctl.cl[m], len(ctl.clients), reps, rng)
		}
		for _, name := range names {
			a := arms[name]
			r := ArmResult{Arm: name, Metric: m, Reports: len(a.reports), Clients: len(a.clients), N: len(a.vals[m]),
				Control: control, P50: math.NaN(), Lo: math.NaN(), Hi: math.NaN(),
				Diff: math.NaN(), DiffLo: math.NaN(), DiffHi: math.NaN()}
			if r.N == 0 {
				continue
			}
			lo, est, hi, ok := stats.QuantileCI(a.vals[m], 0.5, level)
			r.P50 = est
			if ok {
				r.Lo, r.Hi, r.OK = lo, hi, true
			} else {
				r.P50 = math.NaN() // never a number without its interval
				r.Note = NoteInsufficient
			}
			if name != control && len(ctl.vals[m]) > 0 {
				_, cest, _, _ := stats.QuantileCI(ctl.vals[m], 0.5, level)
				r.Diff = est - cest
				if reps > 0 {
					ar := clusterBootstrapMedians(a.vals[m], a.cl[m], len(a.clients), reps, rng)
					d := make([]float64, 0, reps)
					for i := range ar {
						if !math.IsNaN(ar[i]) && !math.IsNaN(ctlReps[i]) {
							d = append(d, ar[i]-ctlReps[i])
						}
					}
					if len(d) >= reps/2 && len(a.clients) >= 2 && len(ctl.clients) >= 2 {
						slices.Sort(d)
						alpha := 1 - level
						r.DiffLo, r.DiffHi = quantile7(d, alpha/2), quantile7(d, 1-alpha/2)
						r.DiffOK = true
					}
				}
				if !r.DiffOK {
					r.Diff = math.NaN()
					if r.Note == "" {
						r.Note = "too few clients for an interval on the difference"
					}
				}
			}
			out = append(out, r)
		}
	}
	return out
}

// clusterBootstrapMedians returns reps Poisson-bootstrap replicates of the
// median of sorted values v where every value of client c[i] shares that
// client's Poisson(1) weight, so within-client correlation is kept.
func clusterBootstrapMedians(v []float64, c []int, clients, reps int, rng *rand.Rand) []float64 {
	out := make([]float64, reps)
	w := make([]float64, clients)
	for r := range reps {
		var total float64
		for i := range w {
			w[i] = float64(poisson1(rng))
		}
		for _, ci := range c {
			total += w[ci]
		}
		if total == 0 {
			out[r] = math.NaN()
			continue
		}
		target, cum := total/2, 0.0
		out[r] = v[len(v)-1]
		for i, ci := range c {
			cum += w[ci]
			if cum >= target {
				out[r] = v[i]
				break
			}
		}
	}
	return out
}

// poisson1 draws from Poisson(1) by inversion.
func poisson1(rng *rand.Rand) int {
	u := rng.Float64()
	k, p := 0, math.Exp(-1)
	cdf := p
	for u > cdf && k < 20 {
		k++
		p /= float64(k)
		cdf += p
	}
	return k
}

func quantile7(x []float64, q float64) float64 {
	h := float64(len(x)-1) * q
	i := int(math.Floor(h))
	if i >= len(x)-1 {
		return x[len(x)-1]
	}
	return x[i] + (h-float64(i))*(x[i+1]-x[i])
}
