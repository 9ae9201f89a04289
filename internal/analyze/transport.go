package analyze

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/stats"
)

// The transport section reads the server's own view of its connections
// (DIR/transport: TCP_INFO samples the appliances take, measure.TransportRow)
// and sets it beside the clients' (pulses, playback records):
//
//   - per site and prefix group, the server's min RTT against the
//     client-measured connect time (a TCP connect takes one round trip, so
//     they should agree; the difference is the client's and the server's
//     stacks, or a path that differs by direction), and the quantiles of
//     the connections' retransmission rates;
//   - the client prefixes whose loss (retransmission rate) or RTT
//     inflation (smoothed − min RTT: queueing) stands out from their
//     site's, ranked, with intervals;
//   - per experiment arm (congestion control as an experiment):
//     throughput, retransmission rate, RTT inflation and playback QoE,
//     compared against the control arm as the steering arms are
//     (compareArms: medians with order-statistic intervals, differences
//     with a cluster bootstrap over connections or clients).

// Transport metrics, as arms.csv and the text report name them.
const (
	MetricRetransRate  = "retrans_rate"     // retransmitted / data segments of a connection
	MetricRTTInflation = "rtt_inflation_ms" // smoothed − min RTT of a sample
	MetricGoodput      = "goodput_bps"      // bytes acked · 8 / busy time of a connection
)

// TransportMetrics are the arm comparison's metrics in report order:
// transport ones, then the playback QoE of the arm's sessions.
var TransportMetrics = []string{MetricGoodput, MetricRetransRate, MetricRTTInflation, "startup_ms", "rebuffer_ratio", "bitrate_kbps"}

// TransportSite is one (site, prefix group) of the transport section.
type TransportSite struct {
	Site, PrefixGroup string
	Connections       int
	// MinRTTMs is the median over connections of the server's min RTT,
	// with its order-statistic interval (OK false: too few connections).
	MinRTTMs, MinRTTLo, MinRTTHi float64
	MinRTTOK                     bool
	// ConnectMs is the median connect time of the group's pulses to the
	// site (N of them); DiffMs is ConnectMs − MinRTTMs (NaN unless both
	// are known).
	ConnectMs, ConnectLo, ConnectHi float64
	ConnectOK                       bool
	ConnectN                        int
	DiffMs                          float64
	// Retrans are the p50, p90 and p99 of the connections'
	// retransmission rates, each with its interval.
	Retrans []QuantileValue
}

// QuantileValue is one quantile with its distribution-free interval; OK
// false means too few values for one (Est is then NaN).
type QuantileValue struct {
	Q, Est, Lo, Hi float64
	OK             bool
}

// PrefixTransport is one client prefix at one site: its pooled
// retransmission rate and its median RTT inflation, each with an
// interval, against the site's.
type PrefixTransport struct {
	Site, Prefix string
	Connections  int
	// RetransRate is retransmitted over data segments pooled over the
	// prefix's connections, with a bootstrap interval resampling
	// connections (a connection's segments are not independent).
	RetransRate, RetransLo, RetransHi float64
	// InflationMs is the median over the prefix's samples of smoothed −
	// min RTT, with an order-statistic interval.
	InflationMs, InflationLo, InflationHi float64
	InflationOK                           bool
	// SiteRetransRate and SiteInflationMs are the site's pooled values.
	SiteRetransRate, SiteInflationMs float64
	// LossStandsOut / InflationStandsOut: the interval's lower bound is
	// above the site's value.
	LossStandsOut, InflationStandsOut bool
}

// TransportArms is one experiment's arms compared on transport and QoE.
type TransportArms struct {
	Experiment string
	// Site is "" for the experiment's connections at every site; an
	// experiment whose connections are at several sites also gets one
	// comparison per site, on transport metrics only (a congestion
	// control's effect depends on the path: BBR inflates RTT less than
	// CUBIC on a deep clean queue, more on a lossy line, and a pooled
	// median mixes the two).
	Site     string
	Control  string
	ArmNames []string
	// CongestionControl is what each arm's sockets ran (the most common
	// value in its samples).
	CongestionControl map[string]string
	// Retrans is each arm's retransmission rate pooled over its
	// connections (Σ retransmitted / Σ data segments: the loss rate the
	// senders met), with a bootstrap interval resampling connections.
	Retrans map[string]RateCI
	Results []ArmResult
}

// RateCI is a pooled rate with its interval (NaN bounds: fewer than two
// connections).
type RateCI struct {
	Rate, Lo, Hi float64
	Connections  int
	// Segments is the data segments the rate is over.
	Segments int64
}

// TransportResults is the transport section.
type TransportResults struct {
	Samples, Connections int
	Sites                []TransportSite
	// Prefixes are ranked: those that stand out first, by how far the
	// lower bound of their retransmission rate (then inflation) is above
	// the site's.
	Prefixes []PrefixTransport
	Arms     []TransportArms
}

// tconn is one connection's samples, reduced.
type tconn struct {
	site, prefix, group, exp, arm, cc string
	final                             *measure.TransportRow // the last sample (final if there was one)
	inflation                         []float64             // ms, every sample
}

// connKey identifies a connection across its samples: the appliance, the
// client prefix and the connection's start (sample time − age), to the
// millisecond.
type connKey struct {
	appliance, prefix string
	start             int64
}

// groupIndex finds a client prefix's prefix group: the one pulses or
// playback records of that prefix named, else the most specific group
// that contains it. A dual-stack client reports its pulses and sessions
// from its IPv6 address, while its IPv4 connections' samples carry its
// IPv4 prefix: containment still finds that prefix's group.
type groupIndex struct {
	exact  map[string]string
	groups []netip.Prefix // most specific first
}

func newGroupIndex(groupOf map[string]string) groupIndex {
	gi := groupIndex{exact: groupOf}
	seen := map[netip.Prefix]bool{}
	for _, g := range groupOf {
		if p, err := netip.ParsePrefix(g); err == nil && !seen[p] {
			seen[p] = true
			gi.groups = append(gi.groups, p)
		}
	}
	slices.SortFunc(gi.groups, func(a, b netip.Prefix) int {
		return cmp.Or(cmp.Compare(b.Bits(), a.Bits()), a.Addr().Compare(b.Addr()))
	})
	return gi
}

// of is prefix's group, or prefix itself when no group covers it.
func (gi groupIndex) of(prefix string) string {
	if g := gi.exact[prefix]; g != "" {
		return g
	}
	if p, err := netip.ParsePrefix(prefix); err == nil {
		for _, g := range gi.groups {
			if g.Bits() <= p.Bits() && g.Contains(p.Addr()) {
				return g.String()
			}
		}
	}
	return prefix
}

// transportConns groups samples into connections.
func transportConns(rows []measure.TransportRow, groups groupIndex) []*tconn {
	byKey := map[connKey]*tconn{}
	var out []*tconn
	for i := range rows {
		r := &rows[i]
		k := connKey{r.Appliance, r.ClientPrefix, (r.SampleTime - r.ConnAgeUs) / 1000}
		c := byKey[k]
		if c == nil {
			c = &tconn{site: r.Site, prefix: r.ClientPrefix, group: groups.of(r.ClientPrefix), exp: r.Experiment, arm: r.Arm, cc: r.CongestionControl}
			byKey[k] = c
			out = append(out, c)
		}
		if r.MinRTTUs > 0 && r.SmoothedRTTUs >= r.MinRTTUs {
			c.inflation = append(c.inflation, float64(r.SmoothedRTTUs-r.MinRTTUs)/1000)
		}
		if c.final == nil || c.final.Reason != "final" && (r.Reason == "final" || r.ConnAgeUs > c.final.ConnAgeUs) {
			c.final = r
		}
	}
	return out
}

func (c *tconn) retransRate() float64 {
	if c.final.DataSegmentsOut <= 0 {
		return math.NaN()
	}
	return float64(c.final.RetransmittedSegments) / float64(c.final.DataSegmentsOut)
}

func (c *tconn) goodput() float64 {
	f := c.final
	if f.BusyUs > 0 && f.BytesAcked > 0 {
		return float64(f.BytesAcked) * 8e6 / float64(f.BusyUs)
	}
	if f.DeliveryRateBps > 0 {
		return float64(f.DeliveryRateBps)
	}
	return math.NaN()
}

// Transport computes the transport section from the transport table's
// rows, the pulses (connect times, prefix groups) and the playback
// records (QoE per arm). reps bootstrap replicates; rng makes them
// reproducible.
func Transport(rows []measure.TransportRow, pulses []Row, sessions []Session, level float64, reps int, rng *rand.Rand) *TransportResults {
	groupOf := map[string]string{}
	for i := range pulses {
		if pulses[i].PrefixGroup != "" {
			groupOf[pulses[i].Prefix] = pulses[i].PrefixGroup
		}
	}
	for i := range sessions {
		if sessions[i].PrefixGroup != "" {
			groupOf[sessions[i].Prefix] = sessions[i].PrefixGroup
		}
	}
	conns := transportConns(rows, newGroupIndex(groupOf))
	res := &TransportResults{Samples: len(rows), Connections: len(conns)}
	res.Sites = transportSites(conns, pulses, level)
	res.Prefixes = transportPrefixes(conns, level, reps, rng)
	res.Arms = transportArms(conns, sessions, level, reps, rng)
	return res
}

func transportSites(conns []*tconn, pulses []Row, level float64) []TransportSite {
	type key struct{ site, group string }
	minRTT := map[key][]float64{}
	retrans := map[key][]float64{}
	for _, c := range conns {
		k := key{c.site, c.group}
		if c.final.MinRTTUs > 0 {
			minRTT[k] = append(minRTT[k], float64(c.final.MinRTTUs)/1000)
		}
		if v := c.retransRate(); !math.IsNaN(v) {
			retrans[k] = append(retrans[k], v)
		}
		if _, ok := retrans[k]; !ok {
			retrans[k] = nil
		}
	}
	connect := map[key][]float64{}
	for i := range pulses {
		r := &pulses[i]
		g := r.PrefixGroup
		if g == "" {
			g = r.Prefix
		}
		k := key{r.Site, g}
		if _, ok := retrans[k]; !ok {
			continue // no server-side view of this group there
		}
		if v := r.Values[Connect]; !math.IsNaN(v) {
			connect[k] = append(connect[k], v)
		}
	}
	var out []TransportSite
	for _, k := range slices.SortedFunc(mapKeysOf(retrans), func(a, b key) int {
		return cmp.Or(cmp.Compare(a.site, b.site), cmp.Compare(a.group, b.group))
	}) {
		s := TransportSite{Site: k.site, PrefixGroup: k.group, DiffMs: math.NaN()}
		v := minRTT[k]
		slices.Sort(v)
		s.Connections = len(retrans[k])
		s.MinRTTLo, s.MinRTTMs, s.MinRTTHi, s.MinRTTOK = quantileCI(v, 0.5, level)
		cv := connect[k]
		slices.Sort(cv)
		s.ConnectN = len(cv)
		s.ConnectLo, s.ConnectMs, s.ConnectHi, s.ConnectOK = quantileCI(cv, 0.5, level)
		s.DiffMs = s.ConnectMs - s.MinRTTMs
		rv := retrans[k]
		slices.Sort(rv)
		for _, q := range []float64{0.5, 0.9, 0.99} {
			lo, est, hi, ok := quantileCI(rv, q, level)
			s.Retrans = append(s.Retrans, QuantileValue{Q: q, Est: est, Lo: lo, Hi: hi, OK: ok})
		}
		out = append(out, s)
	}
	return out
}

// quantileCI is stats.QuantileCI with no estimate (NaN) where the sample
// is too small for the interval: the transport section shows no figure
// without its interval.
func quantileCI(sorted []float64, q, level float64) (lo, est, hi float64, ok bool) {
	lo, est, hi, ok = stats.QuantileCI(sorted, q, level)
	if !ok {
		est = math.NaN()
	}
	return lo, est, hi, ok
}

func mapKeysOf[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// pooledRate is Σretransmitted / Σdata segments of conns, weighted.
func pooledRate(conns []*tconn, w []float64) float64 {
	var re, segs float64
	for i, c := range conns {
		wi := 1.0
		if w != nil {
			wi = w[i]
		}
		re += wi * float64(c.final.RetransmittedSegments)
		segs += wi * float64(c.final.DataSegmentsOut)
	}
	if segs == 0 {
		return math.NaN()
	}
	return re / segs
}

// pooledCI is the pooled retransmission rate of conns with a bootstrap
// interval over connections (stats.BootstrapCI's Poisson weights).
func pooledCI(cs []*tconn, level float64, reps int, rng *rand.Rand) RateCI {
	r := RateCI{Rate: pooledRate(cs, nil), Lo: math.NaN(), Hi: math.NaN(), Connections: len(cs)}
	for _, c := range cs {
		r.Segments += c.final.DataSegmentsOut
	}
	if len(cs) >= 2 && reps > 0 {
		idx := make([]float64, len(cs)) // only the weights matter
		r.Lo, r.Hi = stats.BootstrapCI(idx, func(_, w []float64) float64 { return pooledRate(cs, w) }, level, reps, rng)
	}
	return r
}

func transportPrefixes(conns []*tconn, level float64, reps int, rng *rand.Rand) []PrefixTransport {
	type key struct{ site, prefix string }
	bySite := map[string][]*tconn{}
	byPrefix := map[key][]*tconn{}
	for _, c := range conns {
		bySite[c.site] = append(bySite[c.site], c)
		byPrefix[key{c.site, c.prefix}] = append(byPrefix[key{c.site, c.prefix}], c)
	}
	inflations := func(cs []*tconn) []float64 {
		var v []float64
		for _, c := range cs {
			v = append(v, c.inflation...)
		}
		slices.Sort(v)
		return v
	}
	siteRate, siteInfl := map[string]float64{}, map[string]float64{}
	for s, cs := range bySite {
		siteRate[s] = pooledRate(cs, nil)
		siteInfl[s] = medianOf(inflations(cs))
	}
	var out []PrefixTransport
	// In a fixed order: the bootstrap draws from rng, so the same data
	// and seed give the same intervals.
	keys := slices.SortedFunc(maps.Keys(byPrefix), func(a, b key) int {
		return cmp.Or(cmp.Compare(a.site, b.site), cmp.Compare(a.prefix, b.prefix))
	})
	for _, k := range keys {
		cs := byPrefix[k]
		p := PrefixTransport{Site: k.site, Prefix: k.prefix, Connections: len(cs),
			RetransRate: pooledRate(cs, nil), RetransLo: math.NaN(), RetransHi: math.NaN(),
			SiteRetransRate: siteRate[k.site], SiteInflationMs: siteInfl[k.site]}
		rc := pooledCI(cs, level, reps, rng)
		p.RetransLo, p.RetransHi = rc.Lo, rc.Hi
		p.InflationLo, p.InflationMs, p.InflationHi, p.InflationOK = quantileCI(inflations(cs), 0.5, level)
		p.LossStandsOut = p.RetransLo > p.SiteRetransRate
		p.InflationStandsOut = p.InflationOK && p.InflationLo > p.SiteInflationMs
		out = append(out, p)
	}
	excess := func(p PrefixTransport) (float64, float64) {
		e1, e2 := math.Inf(-1), math.Inf(-1)
		if !math.IsNaN(p.RetransLo) {
			e1 = p.RetransLo - p.SiteRetransRate
		}
		if p.InflationOK {
			e2 = p.InflationLo - p.SiteInflationMs
		}
		return e1, e2
	}
	slices.SortFunc(out, func(a, b PrefixTransport) int {
		sa, sb := a.LossStandsOut || a.InflationStandsOut, b.LossStandsOut || b.InflationStandsOut
		if sa != sb {
			if sa {
				return -1
			}
			return 1
		}
		a1, a2 := excess(a)
		b1, b2 := excess(b)
		return cmp.Or(cmp.Compare(b1, a1), cmp.Compare(b2, a2), cmp.Compare(a.Site, b.Site), cmp.Compare(a.Prefix, b.Prefix))
	})
	return out
}

// transportArms compares the arms of each experiment the transport rows
// name. Transport metrics cluster on connections; QoE comes from the
// experiment's playback records and clusters on clients.
// expAcc is one experiment's connections and samples per arm (at one
// site, or all).
type expAcc struct {
	conns   map[string][]*tconn
	metrics map[string]map[string]*armSamples
	cc      map[string]map[string]int
	control string
}

func transportArms(conns []*tconn, sessions []Session, level float64, reps int, rng *rand.Rand) []TransportArms {
	type expKey struct{ exp, site string }
	exps := map[expKey]*expAcc{}
	sites := map[string]map[string]bool{}
	sample := func(e *expAcc, metric, arm string) *armSamples {
		if e.metrics[metric] == nil {
			e.metrics[metric] = map[string]*armSamples{}
		}
		if e.metrics[metric][arm] == nil {
			e.metrics[metric][arm] = &armSamples{}
		}
		return e.metrics[metric][arm]
	}
	for i, c := range conns {
		if c.arm == "" {
			continue
		}
		if sites[c.exp] == nil {
			sites[c.exp] = map[string]bool{}
		}
		sites[c.exp][c.site] = true
		for _, k := range []expKey{{c.exp, ""}, {c.exp, c.site}} {
			e := exps[k]
			if e == nil {
				e = &expAcc{conns: map[string][]*tconn{}, metrics: map[string]map[string]*armSamples{}, cc: map[string]map[string]int{}}
				exps[k] = e
			}
			if e.cc[c.arm] == nil {
				e.cc[c.arm] = map[string]int{}
			}
			e.cc[c.arm][c.cc]++
			e.conns[c.arm] = append(e.conns[c.arm], c)
			id := fmt.Sprint("conn", i)
			sample(e, MetricGoodput, c.arm).add(id, id, c.goodput())
			sample(e, MetricRetransRate, c.arm).add(id, id, c.retransRate())
			for _, v := range c.inflation {
				sample(e, MetricRTTInflation, c.arm).add(id, id, v)
			}
		}
	}
	for i := range sessions {
		s := &sessions[i]
		if s.Arm == "" || s.Exp == nil || exps[expKey{s.Exp.Name, ""}] == nil || s.AssignedArm != "" && s.AssignedArm != s.Arm {
			continue
		}
		e := exps[expKey{s.Exp.Name, ""}]
		e.control = s.Exp.Control
		s.addQoE(func(metric string) *armSamples { return sample(e, metric, s.Arm) })
	}
	var out []TransportArms
	for _, name := range slices.Sorted(mapKeys(sites)) {
		keys := []expKey{{name, ""}}
		if len(sites[name]) > 1 {
			for _, site := range slices.Sorted(mapKeys(sites[name])) {
				keys = append(keys, expKey{name, site})
			}
		}
		for _, k := range keys {
			e := exps[k]
			if k.site != "" {
				e.control = exps[expKey{name, ""}].control
			}
			out = append(out, e.arms(k.exp, k.site, level, reps, rng))
		}
	}
	return out
}

// arms compares experiment name's arms (at site, or all for "").
func (e *expAcc) arms(name, site string, level float64, reps int, rng *rand.Rand) TransportArms {
	ta := TransportArms{Experiment: name, Site: site, ArmNames: slices.Sorted(mapKeys(e.cc)), CongestionControl: map[string]string{},
		Retrans: map[string]RateCI{}}
	for _, arm := range ta.ArmNames { // in order: the bootstrap draws from rng
		ta.Retrans[arm] = pooledCI(e.conns[arm], level, reps, rng)
	}
	for arm, ccs := range e.cc {
		best := ""
		for cc, n := range ccs {
			if best == "" || n > ccs[best] || n == ccs[best] && cc < best {
				best = cc
			}
		}
		ta.CongestionControl[arm] = best
	}
	// The control: the experiment's, else cubic (the kernel's
	// default), else the first arm.
	ta.Control = e.control
	if !slices.Contains(ta.ArmNames, ta.Control) {
		ta.Control = ta.ArmNames[0]
		for _, a := range ta.ArmNames {
			if ta.CongestionControl[a] == "cubic" {
				ta.Control = a
				break
			}
		}
	}
	for _, m := range TransportMetrics {
		if arms := e.metrics[m]; len(arms) > 0 {
			ta.Results = append(ta.Results, compareArms(name, m, ta.ArmNames, arms, ta.Control, level, reps, rng)...)
		}
	}
	return ta
}

// LoadTransport reads the transport table under dir (every replica's, as
// measure.TableFiles finds them) keeping the rows f passes (time range by
// received_time; sites). It returns (nil, false, nil) when there is no
// transport table: stores from before server-side telemetry.
func LoadTransport(dir string, f Filter) ([]measure.TransportRow, bool, error) {
	files, err := measure.TableFiles(dir, "transport")
	if err != nil {
		return nil, false, err
	}
	if len(files) == 0 {
		return nil, false, nil
	}
	var out []measure.TransportRow
	for _, path := range files {
		if h, ok := partitionHour(path); ok && !f.keepHour(h) {
			continue
		}
		err := withParquetFile(path, func(pf *parquet.File) error {
			for _, c := range []string{"report_id", "site", "client_prefix", "arm", "min_rtt_us", "smoothed_rtt_us", "retransmitted_segments", "data_segments_out"} {
				if !hasColumn(pf, c) {
					return fmt.Errorf("%s: %w: transport table without column %q", path, ErrNewerSchema, c)
				}
			}
			r := parquet.NewGenericReader[measure.TransportRow](pf)
			defer r.Close()
			buf := make([]measure.TransportRow, 512)
			for {
				n, rerr := r.Read(buf)
				for _, row := range buf[:n] {
					// Transport rows carry no ASN: an --asn filter
					// leaves them all out.
					if f.keep(&Row{Time: time.UnixMicro(row.ReceivedTime).UTC(), Site: row.Site}) {
						out = append(out, row)
					}
				}
				if errors.Is(rerr, io.EOF) {
					return nil
				}
				if rerr != nil {
					return fmt.Errorf("%s: %w: %v", path, ErrBadFile, rerr)
				}
			}
		})
		if err != nil {
			return nil, true, err
		}
	}
	return out, true, nil
}

// jf is a float for JSON: null for NaN or ±Inf (no number without its
// meaning).
func jf(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// jci is an interval for JSON: [null, null] when there is none (ok
// false), as when either end is not a number.
func jci(ok bool, lo, hi float64) [2]*float64 {
	if !ok {
		return [2]*float64{}
	}
	return [2]*float64{jf(lo), jf(hi)}
}

// WriteTransportJSON writes the transport section as JSON (transport.json
// in the report directory): the same figures as the CSV tables, nested,
// with null where a value has no interval.
func WriteTransportJSON(path string, t *TransportResults, level float64) error {
	type quant struct {
		Q            float64  `json:"q"`
		Est          *float64 `json:"est"`
		CILo         *float64 `json:"ci_lo"`
		CIHi         *float64 `json:"ci_hi"`
		Insufficient bool     `json:"insufficient,omitempty"`
	}
	type site struct {
		Site        string      `json:"site"`
		PrefixGroup string      `json:"prefix_group"`
		Connections int         `json:"connections"`
		MinRTTMs    *float64    `json:"min_rtt_ms_p50"`
		MinRTTCI    [2]*float64 `json:"min_rtt_ci"`
		ConnectMs   *float64    `json:"connect_ms_p50"`
		ConnectCI   [2]*float64 `json:"connect_ci"`
		ConnectN    int         `json:"connect_n"`
		DiffMs      *float64    `json:"connect_minus_min_rtt_ms"`
		Retrans     []quant     `json:"retrans_rate_quantiles"`
	}
	type prefix struct {
		Site               string      `json:"site"`
		Prefix             string      `json:"client_prefix"`
		Connections        int         `json:"connections"`
		RetransRate        *float64    `json:"retrans_rate"`
		RetransCI          [2]*float64 `json:"retrans_ci"`
		SiteRetransRate    *float64    `json:"site_retrans_rate"`
		LossStandsOut      bool        `json:"loss_stands_out"`
		InflationMs        *float64    `json:"rtt_inflation_ms_p50"`
		InflationCI        [2]*float64 `json:"rtt_inflation_ci"`
		SiteInflationMs    *float64    `json:"site_rtt_inflation_ms"`
		InflationStandsOut bool        `json:"inflation_stands_out"`
	}
	type metric struct {
		Arm         string      `json:"arm"`
		Metric      string      `json:"metric"`
		N           int         `json:"n"`
		Clients     int         `json:"clients"`
		P50         *float64    `json:"p50"`
		CI          [2]*float64 `json:"ci"`
		Diff        *float64    `json:"diff_vs_control,omitempty"`
		DiffCI      [2]*float64 `json:"diff_ci"`
		Significant bool        `json:"significant"`
		Note        string      `json:"note,omitempty"`
	}
	type pooled struct {
		Rate        *float64    `json:"rate"`
		CI          [2]*float64 `json:"ci"`
		Connections int         `json:"connections"`
	}
	type exp struct {
		Experiment        string            `json:"experiment"`
		Site              string            `json:"site,omitempty"`
		Control           string            `json:"control"`
		Arms              []string          `json:"arms"`
		CongestionControl map[string]string `json:"congestion_control"`
		Retrans           map[string]pooled `json:"pooled_retrans_rate"`
		Metrics           []metric          `json:"metrics"`
	}
	out := struct {
		Level       float64  `json:"level"`
		Samples     int      `json:"samples"`
		Connections int      `json:"connections"`
		Sites       []site   `json:"sites"`
		Prefixes    []prefix `json:"prefixes"`
		Experiments []exp    `json:"experiments"`
	}{Level: level, Samples: t.Samples, Connections: t.Connections, Sites: []site{}, Prefixes: []prefix{}, Experiments: []exp{}}
	for _, s := range t.Sites {
		js := site{Site: s.Site, PrefixGroup: s.PrefixGroup, Connections: s.Connections, MinRTTMs: jf(s.MinRTTMs),
			MinRTTCI: jci(s.MinRTTOK, s.MinRTTLo, s.MinRTTHi), ConnectMs: jf(s.ConnectMs), ConnectCI: jci(s.ConnectOK, s.ConnectLo, s.ConnectHi),
			ConnectN: s.ConnectN, DiffMs: jf(s.DiffMs)}
		for _, q := range s.Retrans {
			jq := quant{Q: q.Q, Insufficient: !q.OK}
			if q.OK {
				jq.Est, jq.CILo, jq.CIHi = jf(q.Est), jf(q.Lo), jf(q.Hi)
			}
			js.Retrans = append(js.Retrans, jq)
		}
		out.Sites = append(out.Sites, js)
	}
	for _, p := range t.Prefixes {
		jp := prefix{Site: p.Site, Prefix: p.Prefix, Connections: p.Connections, RetransRate: jf(p.RetransRate),
			RetransCI: jci(true, p.RetransLo, p.RetransHi), SiteRetransRate: jf(p.SiteRetransRate), LossStandsOut: p.LossStandsOut,
			InflationMs: jf(p.InflationMs), InflationCI: jci(p.InflationOK, p.InflationLo, p.InflationHi),
			SiteInflationMs: jf(p.SiteInflationMs), InflationStandsOut: p.InflationStandsOut}
		out.Prefixes = append(out.Prefixes, jp)
	}
	for _, e := range t.Arms {
		je := exp{Experiment: e.Experiment, Site: e.Site, Control: e.Control, Arms: e.ArmNames, CongestionControl: e.CongestionControl, Retrans: map[string]pooled{}}
		for arm, r := range e.Retrans {
			je.Retrans[arm] = pooled{Rate: jf(r.Rate), CI: jci(true, r.Lo, r.Hi), Connections: r.Connections}
		}
		for _, a := range e.Results {
			je.Metrics = append(je.Metrics, metric{Arm: a.Arm, Metric: a.Metric, N: a.N, Clients: a.Clients, P50: jf(a.P50), CI: jci(a.OK, a.Lo, a.Hi),
				Diff: jf(a.Diff), DiffCI: jci(a.DiffOK, a.DiffLo, a.DiffHi), Significant: a.Significant, Note: a.Note})
		}
		out.Experiments = append(out.Experiments, je)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
