package lab

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/ocdn/ocdn/internal/analyze"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/measure"
)

// TransportReport is the transport part of the lab report: what each
// packet-level link planted and its emulator did, and what the servers'
// TCP saw per experiment arm over it (from the transport table the
// appliances' TCP_INFO sampling fills).
type TransportReport struct {
	// Fallback, when set, says why the packet links ran at the stream
	// level (no root): there are then no transport figures.
	Fallback string       `json:"fallback,omitempty"`
	Paths    []PathReport `json:"paths,omitempty"`
	// Arms are the packet links' connections per experiment arm; empty
	// when the measurement store has no transport table.
	Arms []TransportArmReport `json:"arms,omitempty"`
	// Note says why Arms is empty.
	Note string `json:"note,omitempty"`
}

// TransportArmReport is one arm's connections over one packet link.
type TransportArmReport struct {
	ISP               string `json:"isp"`
	Site              string `json:"site"`
	Experiment        string `json:"experiment"`
	Arm               string `json:"arm"`
	CongestionControl string `json:"congestion_control"`
	Connections       int    `json:"connections"`
	// Segments is the data segments the connections sent.
	Segments int64 `json:"data_segments"`
	// PlantedLoss is the link's loss; RetransRate the arm's pooled
	// retransmission rate with its 95% interval (absent: too few
	// connections).
	PlantedLoss float64  `json:"planted_loss"`
	RetransRate float64  `json:"retrans_rate"`
	RetransLo   *float64 `json:"retrans_lo,omitempty"`
	RetransHi   *float64 `json:"retrans_hi,omitempty"`
	// InflationMs is the median smoothed − min RTT of the arm's samples
	// with its interval; InflationDiff its difference against the
	// control arm with a bootstrap interval over connections (absent:
	// too few samples or connections).
	InflationMs   *float64 `json:"rtt_inflation_ms,omitempty"`
	InflationLo   *float64 `json:"rtt_inflation_lo,omitempty"`
	InflationHi   *float64 `json:"rtt_inflation_hi,omitempty"`
	Control       string   `json:"control"`
	InflationDiff *float64 `json:"rtt_inflation_diff_ms,omitempty"`
	DiffLo        *float64 `json:"rtt_inflation_diff_lo,omitempty"`
	DiffHi        *float64 `json:"rtt_inflation_diff_hi,omitempty"`
	// GoodputMbps is the median over connections of bytes acked over
	// busy time.
	GoodputMbps *float64 `json:"goodput_mbps,omitempty"`
}

// transportReport is the paths' part; nil without packet links.
func (l *Lab) transportReport() *TransportReport {
	if len(l.paths) == 0 && l.packetFallback == "" {
		return nil
	}
	return &TransportReport{Fallback: l.packetFallback, Paths: l.pathReports()}
}

// transportArms adds the per-arm figures from the measurement store in
// dir, once the control plane has written it.
func (l *Lab) transportArms(r *TransportReport, dir string) {
	if r == nil || len(l.paths) == 0 {
		return
	}
	rows, ok, err := analyze.LoadTransport(dir, analyze.Filter{})
	switch {
	case err != nil:
		r.Note = "reading the transport table: " + err.Error()
		return
	case !ok:
		r.Note = "no transport table in the measurement store (the appliances sample no TCP_INFO)"
		return
	}
	for _, pp := range l.paths {
		r.Arms = append(r.Arms, ArmsOverPath(rows, l.isp(pp.spec.ISP).Prefixes, pp.spec)...)
	}
}

// ArmsOverPath compares the experiment arms of the transport rows of
// connections from isp's prefixes to the link's site.
func ArmsOverPath(rows []measure.TransportRow, isp []config.Prefix, ls LinkSpec) []TransportArmReport {
	var keep []measure.TransportRow
	for _, row := range rows {
		p, err := netip.ParsePrefix(row.ClientPrefix)
		if err != nil || row.Site != ls.Site {
			continue
		}
		if slices.ContainsFunc(isp, func(ip config.Prefix) bool { return ip.Contains(p.Addr()) }) {
			keep = append(keep, row)
		}
	}
	res := analyze.Transport(keep, nil, nil, 0.95, 1000, rand.New(rand.NewPCG(1, 2)))
	var out []TransportArmReport
	for _, e := range res.Arms {
		for _, arm := range e.ArmNames {
			rc := e.Retrans[arm]
			a := TransportArmReport{ISP: ls.ISP, Site: ls.Site, Experiment: e.Experiment, Arm: arm, CongestionControl: e.CongestionControl[arm],
				Connections: rc.Connections, Segments: rc.Segments, PlantedLoss: ls.Packet.Loss, RetransRate: rc.Rate, RetransLo: finite(rc.Lo), RetransHi: finite(rc.Hi),
				Control: e.Control}
			if math.IsNaN(a.RetransRate) {
				a.RetransRate = 0 // no data segments
			}
			for _, ar := range e.Results {
				switch {
				case ar.Arm != arm:
				case ar.Metric == analyze.MetricRTTInflation:
					if ar.OK {
						a.InflationMs, a.InflationLo, a.InflationHi = finite(ar.P50), finite(ar.Lo), finite(ar.Hi)
					}
					if ar.DiffOK {
						a.InflationDiff, a.DiffLo, a.DiffHi = finite(ar.Diff), finite(ar.DiffLo), finite(ar.DiffHi)
					}
				case ar.Metric == analyze.MetricGoodput && ar.OK:
					a.GoodputMbps = finite(ar.P50 / 1e6)
				}
			}
			out = append(out, a)
		}
	}
	return out
}

// print writes the transport section of the report.
func (r *TransportReport) print(w io.Writer) {
	if r == nil {
		return
	}
	fmt.Fprintln(w, "\nTransport (packet-level links):")
	if r.Fallback != "" {
		fmt.Fprintf(w, "  fell back to stream links: %s; no transport figures\n", r.Fallback)
	}
	for _, p := range r.Paths {
		fmt.Fprintf(w, "  %s→%s: rtt %.0f ms, %.1f Mbit/s, queue %.0f ms, loss %.2f%%", p.ISP, p.Site, p.RTTMs, p.BandwidthMbps, p.QueueMs, 100*p.Loss)
		if p.PerClient {
			fmt.Fprintf(w, " per client (%d homes' lines)", p.ClientQueues)
		}
		if p.Profile {
			fmt.Fprint(w, " (then a profile)")
		}
		fmt.Fprintf(w, "; emulator: %d packets down, %.2f%% dropped at random, %d at the full queue, queueing mean %.1f ms, max %.1f ms\n",
			p.Packets, 100*p.LossRate, p.QueueDrops, p.MeanQueueMs, p.MaxQueueMs)
	}
	for _, a := range r.Arms {
		fmt.Fprintf(w, "  %s→%s arm %s (%s), %d connections: retransmitted %.2f%% %s of segments (planted loss %.2f%%); RTT inflation p50 %s; goodput p50 %s",
			a.ISP, a.Site, a.Arm, a.CongestionControl, a.Connections, 100*a.RetransRate, interval(a.RetransLo, a.RetransHi, 100), 100*a.PlantedLoss,
			est(a.InflationMs, a.InflationLo, a.InflationHi, "ms"), est(a.GoodputMbps, nil, nil, "Mbit/s"))
		if a.Arm != a.Control && a.InflationDiff != nil {
			fmt.Fprintf(w, "; inflation %+.1f ms %s against %s", *a.InflationDiff, interval(a.DiffLo, a.DiffHi, 1), a.Control)
		}
		fmt.Fprintln(w)
	}
	if r.Note != "" {
		fmt.Fprintf(w, "  per arm: %s\n", r.Note)
	}
}

// finite is v, or nil for NaN (JSON has no NaN; absent means unknown).
func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// interval formats [lo, hi]·scale, or "(no interval)".
func interval(lo, hi *float64, scale float64) string {
	if lo == nil || hi == nil {
		return "(no interval)"
	}
	return fmt.Sprintf("[%.2f, %.2f]", *lo*scale, *hi*scale)
}

// est formats an estimate in unit with its interval, or says that there
// was none (as ocdn analyze does: too few connections for a quantile).
func est(v, lo, hi *float64, unit string) string {
	if v == nil {
		return "insufficient samples"
	}
	if lo == nil || hi == nil {
		return fmt.Sprintf("%.1f %s", *v, unit)
	}
	return fmt.Sprintf("%.1f [%.1f, %.1f] %s", *v, *lo, *hi, unit)
}
