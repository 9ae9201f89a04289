package analyze

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/ocdn/ocdn/internal/stats"
)

// ExperimentMeta is what reports say about the experiment they belong to:
// the context keys "experiment", "experiment_start", "arm_shares"
// ("bgp=0.5,measured=0.5") and "control_arm" that the control plane
// writes into every recipe. Reports that name an arm but no experiment
// (older data) belong to the unnamed experiment "".
type ExperimentMeta struct {
	Name    string
	Start   time.Time
	Shares  map[string]float64 // nil when not recorded
	Control string
}

// parseShares reads "a=0.5,b=0.5"; nil when s is empty or malformed.
func parseShares(s string) map[string]float64 {
	if s == "" {
		return nil
	}
	out := map[string]float64{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		f, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil || k == "" || !(f >= 0 && f <= 1) {
			return nil
		}
		out[k] = f
	}
	return out
}

// Experiment metrics: the probe timings at the steered appliance and the
// playback QoE, named as in the experiment definition.
var ExperimentMetrics = []string{"connect_ms", "ttfb_ms", "throughput_bps", "startup_ms", "rebuffer_ratio", "bitrate_kbps"}

// ArmResult is one metric in one arm of an experiment: its median with a
// distribution-free interval and, for arms other than the control, the
// difference of medians against the control with a cluster bootstrap
// interval (clients resampled whole, since one client's values are not
// independent).
type ArmResult struct {
	Experiment string
	Arm        string
	Metric     string
	Reports    int
	Clients    int
	N          int // values
	// P50 with its order-statistic interval over the arm's values; the
	// interval treats values as independent, so read it as a lower bound
	// on the uncertainty; the difference below accounts for clients.
	P50, Lo, Hi float64
	OK          bool
	// Control is the arm compared against; Diff is P50(arm) −
	// P50(control) with its interval; Significant when the interval
	// excludes 0.
	Control              string
	Diff, DiffLo, DiffHi float64
	DiffOK               bool
	Significant          bool
	Note                 string
}

// SRM is the sample-ratio-mismatch check: are the arms' client /24s in the
// proportions the experiment assigned? A chi-square goodness-of-fit test
// on the units (client /24s, the unit of assignment) per arm; a mismatch
// (p < SRMAlpha) means the assignment or the data collection is broken
// and no difference between the arms can be trusted.
type SRM struct {
	ChiSquare float64
	DF        int
	P         float64
	Mismatch  bool
	Note      string
}

// SRMAlpha is the p-value below which arms are flagged: the customary
// strict threshold, since the check runs on every experiment.
const SRMAlpha = 0.001

// ExperimentResult compares the arms of one experiment.
type ExperimentResult struct {
	Meta ExperimentMeta
	// Arms lists the arm names: those with a share, then any other seen.
	ArmNames []string
	// Units are the client /24s (/48s) seen per arm, Expected what the
	// shares predict from their total.
	Units    map[string]int
	Expected map[string]float64
	SRM      SRM
	// Mismatched counts reports whose arm is not the one the control
	// plane assigned their client; their values are in no arm.
	Mismatched int
	Results    []ArmResult
}

// armSamples are one arm's values of one metric, sorted, with the client
// index of each.
type armSamples struct {
	vals    []float64
	cl      []int
	clients map[string]int
	reports map[string]bool
}

func (a *armSamples) add(report, client string, v float64) {
	if math.IsNaN(v) {
		return
	}
	if a.clients == nil {
		a.clients, a.reports = map[string]int{}, map[string]bool{}
	}
	ci, ok := a.clients[client]
	if !ok {
		ci = len(a.clients)
		a.clients[client] = ci
	}
	a.reports[report] = true
	a.vals = append(a.vals, v)
	a.cl = append(a.cl, ci)
}

// merge appends b's values, with their clients, and notes b's reports.
func (a *armSamples) merge(b *armSamples) {
	names := make([]string, len(b.clients))
	for name, i := range b.clients {
		names[i] = name
	}
	if a.clients == nil {
		a.clients, a.reports = map[string]int{}, map[string]bool{}
	}
	for j, v := range b.vals {
		ci, ok := a.clients[names[b.cl[j]]]
		if !ok {
			ci = len(a.clients)
			a.clients[names[b.cl[j]]] = ci
		}
		a.vals = append(a.vals, v)
		a.cl = append(a.cl, ci)
	}
	for id := range b.reports {
		a.reports[id] = true
	}
}

func (a *armSamples) sort() {
	idx := make([]int, len(a.vals))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(x, y int) int { return cmp.Compare(a.vals[x], a.vals[y]) })
	v, c := make([]float64, len(idx)), make([]int, len(idx))
	for i, j := range idx {
		v[i], c[i] = a.vals[j], a.cl[j]
	}
	a.vals, a.cl = v, c
}

type expData struct {
	meta     ExperimentMeta
	units    map[string]map[string]bool // arm → client prefixes
	mismatch map[string]bool            // report ids
	metrics  map[string]map[string]*armSamples
}

// Experiments compares the arms of every experiment in rows (pulses) and
// sessions (playback records). Pulses count only at the site the report
// was steered to: every recipe also probes the other sites, and pooling
// those would give both arms the same sites and hide a steering effect.
// A report whose arm is not its client's assigned arm is counted as a
// mismatch and left out. reps is the number of bootstrap replicates; rng
// makes them reproducible.
func Experiments(rows []Row, sessions []Session, level float64, reps int, rng *rand.Rand) []ExperimentResult {
	var a Arms
	for i := range rows {
		a.AddRow(&rows[i])
	}
	for i := range sessions {
		a.AddSession(&sessions[i])
	}
	return a.Results(level, reps, rng)
}

// Arms gathers what Experiments needs of rows and sessions one at a time,
// so that a caller streaming them (ScanFile) keeps only the arms' values — a
// value and a client index per metric of a row at its steered site, and
// the report and client ids — not the rows. The zero Arms is empty and
// ready.
type Arms struct {
	exps map[string]*expData
}

func (a *Arms) exp(m *ExperimentMeta) *expData {
	name := ""
	if m != nil {
		name = m.Name
	}
	e := a.exps[name]
	if e == nil {
		e = &expData{units: map[string]map[string]bool{}, mismatch: map[string]bool{}, metrics: map[string]map[string]*armSamples{}}
		if m != nil {
			e.meta = *m
		}
		if a.exps == nil {
			a.exps = map[string]*expData{}
		}
		a.exps[name] = e
	}
	return e
}

func (e *expData) sample(metric, arm string) *armSamples {
	if e.metrics[metric] == nil {
		e.metrics[metric] = map[string]*armSamples{}
	}
	s := e.metrics[metric][arm]
	if s == nil {
		s = &armSamples{}
		e.metrics[metric][arm] = s
	}
	return s
}

// unit notes that client prefix belongs to arm; ok is false (and the
// report counted as a mismatch) when the arm is not the assigned one.
func (e *expData) unit(report, arm, assigned, prefix string) (ok bool) {
	if assigned != "" && assigned != arm {
		e.mismatch[report] = true
		return false
	}
	if e.units[arm] == nil {
		e.units[arm] = map[string]bool{}
	}
	e.units[arm][prefix] = true
	return true
}

// AddRow adds a pulse row; rows without an arm are ignored.
func (a *Arms) AddRow(r *Row) {
	if r.Arm == "" {
		return
	}
	e := a.exp(r.Exp)
	if !e.unit(r.ReportID, r.Arm, r.AssignedArm, r.Prefix) || r.SteeredSite == "" || r.Site != r.SteeredSite {
		return
	}
	client := r.Prefix
	if r.ClientAddr.IsValid() {
		client = r.ClientAddr.String()
	}
	for _, m := range Metrics {
		e.sample(m.String(), r.Arm).add(r.ReportID, client, r.Values[m])
	}
}

// AddSession adds a playback record; those without an arm are ignored.
func (a *Arms) AddSession(s *Session) {
	if s.Arm == "" {
		return
	}
	e := a.exp(s.Exp)
	if !e.unit(s.ReportID, s.Arm, s.AssignedArm, s.Prefix) {
		return
	}
	s.addQoE(func(metric string) *armSamples { return e.sample(metric, s.Arm) })
}

// Merge adds what b gathered to a, as if b's rows and sessions had been
// added to a after a's own; b is left as it was. An experiment's
// definition is the first one seen, as with AddRow.
func (a *Arms) Merge(b *Arms) {
	for _, name := range slices.Sorted(mapKeys(b.exps)) {
		eb := b.exps[name]
		ea := a.exps[name]
		if ea == nil {
			meta := eb.meta
			ea = a.exp(&meta)
		}
		for arm, prefixes := range eb.units {
			if ea.units[arm] == nil {
				ea.units[arm] = map[string]bool{}
			}
			for p := range prefixes {
				ea.units[arm][p] = true
			}
		}
		for id := range eb.mismatch {
			ea.mismatch[id] = true
		}
		for metric, arms := range eb.metrics {
			for arm, sb := range arms {
				ea.sample(metric, arm).merge(sb)
			}
		}
	}
}

// Results compares the arms of every experiment added so far (see
// Experiments).
func (a *Arms) Results(level float64, reps int, rng *rand.Rand) []ExperimentResult {
	exps := a.exps
	var out []ExperimentResult
	for _, name := range slices.Sorted(mapKeys(exps)) {
		e := exps[name]
		res := ExperimentResult{Meta: e.meta, Units: map[string]int{}, Mismatched: len(e.mismatch)}
		for arm := range e.meta.Shares {
			res.ArmNames = append(res.ArmNames, arm)
		}
		slices.Sort(res.ArmNames)
		for _, arm := range slices.Sorted(mapKeys(e.units)) {
			if !slices.Contains(res.ArmNames, arm) {
				res.ArmNames = append(res.ArmNames, arm)
			}
		}
		for _, arm := range res.ArmNames {
			res.Units[arm] = len(e.units[arm])
		}
		control := e.meta.Control
		if control == "" || !slices.Contains(res.ArmNames, control) {
			control = "control"
			if !slices.Contains(res.ArmNames, control) && len(res.ArmNames) > 0 {
				control = res.ArmNames[0]
			}
		}
		res.Meta.Control = control
		res.Expected, res.SRM = sampleRatio(res.ArmNames, res.Units, e.meta.Shares)
		for _, metric := range ExperimentMetrics {
			arms := e.metrics[metric]
			if len(arms) == 0 {
				continue
			}
			res.Results = append(res.Results, compareArms(name, metric, res.ArmNames, arms, control, level, reps, rng)...)
		}
		out = append(out, res)
	}
	return out
}

// addQoE adds the session's playback metrics to the samples of its arm
// (sample(metric)), clustered on its client.
func (s *Session) addQoE(sample func(metric string) *armSamples) {
	client := s.Prefix
	if s.ClientAddr.IsValid() {
		client = s.ClientAddr.String()
	}
	sample("startup_ms").add(s.ReportID, client, s.StartupMs)
	sample("rebuffer_ratio").add(s.ReportID, client, s.RebufferRatio)
	sample("bitrate_kbps").add(s.ReportID, client, s.BitrateKbps)
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// sampleRatio runs the SRM check; without recorded shares the arms are
// taken as equal.
func sampleRatio(arms []string, units map[string]int, shares map[string]float64) (map[string]float64, SRM) {
	exp := map[string]float64{}
	var srm SRM
	total := 0
	for _, a := range arms {
		total += units[a]
	}
	if len(shares) == 0 {
		srm.Note = "shares not recorded: equal shares assumed"
	}
	var sum float64
	for _, a := range arms {
		s := 1 / float64(len(arms))
		if len(shares) > 0 {
			s = shares[a]
		}
		exp[a] = s * float64(total)
		sum += s
	}
	if len(arms) < 2 || total == 0 {
		srm.P = math.NaN()
		if srm.Note == "" {
			srm.Note = "fewer than two arms"
		}
		return exp, srm
	}
	for _, a := range arms {
		e := exp[a]
		if e == 0 {
			if units[a] > 0 {
				srm.ChiSquare = math.Inf(1)
			}
			continue
		}
		d := float64(units[a]) - e
		srm.ChiSquare += d * d / e
	}
	srm.DF = len(arms) - 1
	srm.P = 1 - distuv.ChiSquared{K: float64(srm.DF)}.CDF(srm.ChiSquare)
	srm.Mismatch = srm.P < SRMAlpha
	if len(shares) > 0 && math.Abs(sum-1) > 1e-6 {
		srm.Note = "recorded shares do not sum to 1"
	}
	if total < 20*len(arms) && srm.Note == "" {
		srm.Note = "few units: the test has little power"
	}
	return exp, srm
}

// compareArms summarises one metric in every arm and compares each arm
// with the control.
func compareArms(exp, metric string, names []string, arms map[string]*armSamples, control string, level float64, reps int, rng *rand.Rand) []ArmResult {
	for _, a := range arms {
		a.sort()
	}
	ctl := arms[control]
	var ctlReps []float64
	if ctl != nil && reps > 0 && len(ctl.vals) > 0 {
		ctlReps = clusterBootstrapMedians(ctl.vals, ctl.cl, len(ctl.clients), reps, rng)
	}
	var out []ArmResult
	for _, name := range names {
		a := arms[name]
		if a == nil || len(a.vals) == 0 {
			continue
		}
		r := ArmResult{Experiment: exp, Arm: name, Metric: metric, Reports: len(a.reports), Clients: len(a.clients), N: len(a.vals),
			Control: control, P50: math.NaN(), Lo: math.NaN(), Hi: math.NaN(), Diff: math.NaN(), DiffLo: math.NaN(), DiffHi: math.NaN()}
		lo, est, hi, ok := stats.QuantileCI(a.vals, 0.5, level)
		r.P50 = est
		if ok {
			r.Lo, r.Hi, r.OK = lo, hi, true
		} else {
			r.P50 = math.NaN() // never a number without its interval
			r.Note = NoteInsufficient
		}
		if name != control && ctl != nil && len(ctl.vals) > 0 {
			_, cest, _, _ := stats.QuantileCI(ctl.vals, 0.5, level)
			r.Diff = est - cest
			if reps > 0 && len(a.clients) >= 2 && len(ctl.clients) >= 2 {
				ar := clusterBootstrapMedians(a.vals, a.cl, len(a.clients), reps, rng)
				d := make([]float64, 0, reps)
				for i := range ar {
					if !math.IsNaN(ar[i]) && !math.IsNaN(ctlReps[i]) {
						d = append(d, ar[i]-ctlReps[i])
					}
				}
				if len(d) >= reps/2 {
					slices.Sort(d)
					alpha := 1 - level
					r.DiffLo, r.DiffHi = quantile7(d, alpha/2), quantile7(d, 1-alpha/2)
					r.DiffOK = true
					r.Significant = r.DiffLo > 0 || r.DiffHi < 0
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
