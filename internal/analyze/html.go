package analyze

import (
	"bufio"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"time"
)

// ReportMeta is what the HTML page says about how it was made.
type ReportMeta struct {
	DataDir   string
	Filter    Filter
	Generated time.Time
	Load      LoadStats
}

// maxHTMLRows bounds each HTML table; the CSV files hold everything.
const maxHTMLRows = 60

type metricView struct {
	Title          string
	CDF, Box, Time template.HTML
	Sites          []siteRow
}

type siteRow struct {
	Site  string
	Cells []QuantileCell // p50, p90, p99
}

type pageData struct {
	Meta             ReportMeta
	Res              *Results
	Filter           string
	MinChangeHours   int
	MinSeriesSamples int
	Metrics          []metricView
	Insufficient     []QuantileCell
	InsufficientN    int
	Pairs            []Pair
	PairsTotal       int
	RegretGroups     []GroupRegret
	RegretGroupsN    int
	MaxRows          int
	MaxSeriesHours   int
}

var funcs = template.FuncMap{
	"num":  num,
	"pval": pval,
	"pct": func(v float64) string {
		if math.IsNaN(v) {
			return "–"
		}
		return fmt.Sprintf("%.1f%%", v*100)
	},
	"pct2": func(v float64) string {
		if math.IsNaN(v) {
			return "–"
		}
		return fmt.Sprintf("%.2f%%", v*100)
	},
	"hour":   hourStr,
	"isp":    ispStr,
	"asn":    asnStr,
	"q":      func(q float64) string { return fmt.Sprintf("p%g", q*100) },
	"scaled": func(m Metric, v float64) string { return num(v * plotScale(m)) },
	"bytes": func(b int64) string {
		switch {
		case b >= 1<<30:
			return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
		case b >= 1<<20:
			return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20))
		case b >= 1<<10:
			return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
		}
		return fmt.Sprintf("%d B", b)
	},
	"time": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
}

var page = template.Must(template.New("report").Funcs(funcs).Parse(pageTemplate))

// WriteHTML writes the report page.
func WriteHTML(w io.Writer, res *Results, meta ReportMeta) error {
	d := pageData{Meta: meta, Res: res, Filter: meta.Filter.describe(), MinChangeHours: MinChangeHours(),
		MinSeriesSamples: MinSeriesSamples, MaxRows: maxHTMLRows}
	if d.Filter == "readable" {
		d.Filter = "none"
	}
	for _, m := range Metrics {
		mv := metricView{Title: m.Title(),
			CDF:  cdfSVG(m, res.CDF[m], res.Sites),
			Box:  boxSVG(m, res.CDF[m], res.Sites, res.Quantiles),
			Time: seriesSVG(m, res.Series, res.Sites)}
		for _, s := range res.Sites {
			sr := siteRow{Site: s}
			for _, c := range res.Quantiles {
				if c.SiteWide() && c.Site == s && c.Metric == m {
					sr.Cells = append(sr.Cells, c)
				}
			}
			if len(sr.Cells) > 0 {
				mv.Sites = append(mv.Sites, sr)
			}
		}
		d.Metrics = append(d.Metrics, mv)
	}
	for _, c := range res.Quantiles {
		if !c.OK {
			d.InsufficientN++
			if len(d.Insufficient) < maxHTMLRows {
				d.Insufficient = append(d.Insufficient, c)
			}
		}
	}
	d.PairsTotal = len(res.Pairs)
	d.Pairs = res.Pairs[:min(len(res.Pairs), maxHTMLRows)]
	// Regretful groups first: they are what the reader is looking for.
	for _, g := range res.GroupRegret {
		if g.Regret {
			d.RegretGroupsN++
			if len(d.RegretGroups) < maxHTMLRows {
				d.RegretGroups = append(d.RegretGroups, g)
			}
		}
	}
	return page.Execute(w, d)
}

// WriteHTMLFile writes the report page to path.
func WriteHTMLFile(path string, res *Results, meta ReportMeta) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	err = WriteHTML(bw, res, meta)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

const pageTemplate = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>ocdn measurement report</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}h3{font-size:15px}
table{border-collapse:collapse;font-size:12px;margin:8px 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}
.warn{background:#fff4e0;border-left:4px solid #e69500;padding:6px 10px;margin:8px 0}
.ok{color:#060}.bad{color:#b00;font-weight:bold}.muted{color:#777}
.plots{display:flex;flex-wrap:wrap;gap:16px}
.note{font-size:13px;color:#444}
</style></head><body>
<h1>ocdn measurement report</h1>
<p class="note">Data: <code>{{.Meta.DataDir}}</code> · filters: {{.Filter}} · {{.Res.Rows}} pulses from {{.Meta.Load.Files}} files
({{.Meta.Load.FilesSkipped}} skipped by time range) · received {{time .Res.First}} – {{time .Res.Last}} ·
sites: {{range $i, $s := .Res.Sites}}{{if $i}}, {{end}}{{$s}}{{end}} · generated {{time .Meta.Generated}}.
Every interval is at {{pct .Res.Config.Level}} confidence. CSV files next to this page hold every row.</p>

<h2>Per-site distributions</h2>
{{range .Metrics}}
<h3>{{.Title}}</h3>
{{if .Sites}}
<div class="plots">{{.CDF}}{{.Box}}</div>
<p class="note">Left: empirical CDF per site (log x axis, clipped to the sites' 0.5th–99th percentiles). Right: box p25–p75, whiskers p10–p90, black line p50,
filled bar the p50 confidence interval, dot p99.</p>
<table><tr><th class="l">site</th><th>n</th>{{range (index .Sites 0).Cells}}<th>{{q .Q}}</th><th>{{q .Q}} CI</th>{{end}}</tr>
{{range .Sites}}<tr><td class="l">{{.Site}}</td><td>{{(index .Cells 0).N}}</td>
{{range .Cells}}{{if .OK}}<td>{{scaled .Metric .Est}}</td><td>[{{scaled .Metric .Lo}}, {{scaled .Metric .Hi}}]</td>{{else}}<td colspan="2" class="bad" title="needs {{.MinN}} samples">insufficient samples (n={{.N}} &lt; {{.MinN}})</td>{{end}}{{end}}</tr>
{{end}}</table>
<h3>{{.Title}}: hourly p50</h3>
{{.Time}}
{{else}}<p class="muted">No values of this metric.</p>{{end}}
{{end}}

<h2>Quantile cells (site × ASN × prefix group × hour)</h2>
<p class="note">quantiles.csv lists p50, p90 and p99 of each metric per cell with distribution-free intervals from order statistics
(stats.QuantileCI: exact binomial coverage, assumes only independent, identically distributed values within the cell).
A cell with fewer values than stats.MinSamples(q, level) (6 for p50, 29 for p90, 299 for p99 at 95%) has no value, only a note.
Pulses of one client are correlated, so a cell holding many pulses from few clients gets an interval narrower than it should be; the paired
comparisons below use one value per client and do not have this problem.</p>
{{if .InsufficientN}}<div class="warn">{{.InsufficientN}} quantile values are <b>insufficient samples</b> and are reported without a number{{if gt .InsufficientN .MaxRows}} (first {{.MaxRows}} shown){{end}}:
<table><tr><th class="l">site</th><th>ASN</th><th class="l">prefix group</th><th class="l">hour</th><th class="l">metric</th><th>q</th><th>n</th><th>needs</th></tr>
{{range .Insufficient}}<tr><td class="l">{{.Site}}</td><td>{{asn .ASN}}</td><td class="l">{{.PrefixGroup}}</td><td class="l">{{hour .Hour}}</td><td class="l">{{.Metric}}</td><td>{{q .Q}}</td><td>{{.N}}</td><td>{{.MinN}}</td></tr>
{{end}}</table></div>{{else}}<p class="ok">Every cell has enough samples for every reported quantile.</p>{{end}}

<h2>Paired comparisons: steered site vs alternatives</h2>
<p class="note">Within each prefix group, a client (its address) that probed the steered site and an alternative in the same runs contributes
one pair: its median at the steered site and its median at the alternative. diff is the median of per-client (steered − alternative), with
the exact order-statistic interval (stats.PairedMedianDiffCI); rel is the median per-client relative improvement of the alternative
(1 − alt/steered for latencies, alt/steered − 1 for throughput; positive = alternative better). Sign-test and Wilcoxon p-values are
two-sided; they assume independent clients (Wilcoxon also symmetric differences). The steered site is the report context
<code>steered_site</code>, else the site of <code>steered_appliance</code>; {{.Res.UnsteeredRows}} pulses came from reports recording neither and are
left out of this section.</p>
{{if .Pairs}}<table><tr><th class="l">prefix group</th><th class="l">steered</th><th class="l">alt</th><th class="l">metric</th><th>clients</th>
<th>steered med</th><th>alt med</th><th>diff</th><th>diff CI</th><th>rel</th><th>rel CI</th><th>sign p</th><th>Wilcoxon p</th></tr>
{{range .Pairs}}<tr><td class="l">{{.PrefixGroup}}</td><td class="l">{{.SteeredSite}}</td><td class="l">{{.AltSite}}</td><td class="l">{{.Metric}}</td><td>{{.Clients}}</td>
<td>{{num .SteeredMedian}}</td><td>{{num .AltMedian}}</td><td>{{num .Diff}}</td>{{if .DiffOK}}<td>[{{num .DiffLo}}, {{num .DiffHi}}]</td>{{else}}<td class="bad">insufficient samples</td>{{end}}
<td>{{pct .Rel}}</td>{{if .RelOK}}<td>[{{pct .RelLo}}, {{pct .RelHi}}]</td>{{else}}<td class="bad">insufficient samples</td>{{end}}<td>{{pval .SignP}}</td><td>{{pval .WilcoxonP}}</td></tr>
{{end}}</table>{{if gt .PairsTotal .MaxRows}}<p class="muted">First {{.MaxRows}} of {{.PairsTotal}} rows; see paired.csv.</p>{{end}}
{{else}}<p class="muted">No client probed both its steered site and an alternative (no paired data).</p>{{end}}

<h2>Steering regret</h2>
<p class="note">A prefix group has regret on a metric when some alternative site's interval for the median per-client relative improvement
lies entirely above the margin of {{pct .Res.Config.Margin}} (better with confidence, not just on average). Shares are of the groups that had
enough clients for an interval (evaluated); the traffic shares weight each group by its pulses and by its bytes.</p>
<table><tr><th class="l">metric</th><th>groups</th><th>evaluated</th><th>with regret</th><th>share of groups</th><th>share of pulses</th><th>share of bytes</th></tr>
{{range .Res.RegretSummary}}<tr><td class="l">{{.Metric}}</td><td>{{.Groups}}</td><td>{{.Evaluated}}</td><td>{{.Regretful}}</td><td>{{pct .ShareGroups}}</td><td>{{pct .SharePulses}}</td><td>{{pct .ShareBytes}}</td></tr>
{{end}}</table>
{{if .RegretGroups}}<div class="warn">{{.RegretGroupsN}} group × metric verdicts with regret{{if gt .RegretGroupsN .MaxRows}} (first {{.MaxRows}}){{end}}:
<table><tr><th class="l">metric</th><th class="l">prefix group</th><th>ASN</th><th class="l">steered</th><th class="l">better alt</th><th>rel improvement</th><th>CI</th><th>clients</th><th>pulses</th></tr>
{{range .RegretGroups}}<tr><td class="l">{{.Metric}}</td><td class="l">{{.PrefixGroup}}</td><td>{{asn .ASN}}</td><td class="l">{{.SteeredSite}}</td><td class="l">{{.BestAlt}}</td><td>{{pct .Rel}}</td><td>[{{pct .RelLo}}, {{pct .RelHi}}]</td><td>{{.Clients}}</td><td>{{.Pulses}}</td></tr>
{{end}}</table></div>{{end}}

<h2>Change points in hourly p50</h2>
<p class="note">stats.DetectChanges (two-sided CUSUM) on each site's hourly p50 of each metric, using hours with at least {{.MinSeriesSamples}} values.
Assumptions: points are consecutive equally spaced hours (missing hours are skipped, not modelled) that are roughly independent with a stable
level between changes; values are log-transformed and standardized by the median and MAD-screened spread of a trailing baseline of up to 96
hours, so thresholds are in units of the series' own noise. Defaults are calibrated for hourly medians with ~5% hour-to-hour variation
(≥95% detection of a 20% shift within 3 hours, &lt;1 false alarm per 1,000 hours). A strong daily cycle blunts detection. No alarm can be
raised before {{.MinChangeHours}} usable hours, nor for {{.MinChangeHours}} hours after a previous alarm.</p>
{{if .Res.Changes}}<table><tr><th class="l">site</th><th class="l">metric</th><th class="l">shift at</th><th class="l">detected</th><th>before</th><th>after</th><th>shift</th></tr>
{{range .Res.Changes}}<tr><td class="l">{{.Site}}</td><td class="l">{{.Metric}}</td><td class="l">{{hour .At}}</td><td class="l">{{hour .DetectedAt}}</td><td>{{num .Before}}</td><td>{{num .After}}</td><td>{{pct .RelShift}} {{.Direction}}</td></tr>
{{end}}</table>{{else}}<p class="muted">No change detected. Series shorter than {{.MinChangeHours}} usable hours cannot show one.</p>{{end}}

<h2>Miss bytes</h2>
{{if .Res.HaveMisses}}<table><tr><th class="l">site</th><th class="l">class</th><th>bytes</th></tr>
{{range .Res.Misses}}<tr><td class="l">{{.Site}}</td><td class="l">{{.Class}}</td><td>{{bytes .Bytes}}</td></tr>{{end}}</table>
{{else}}<div class="warn">No miss data: the data directory has no <code>misses/</code> table, so misses.csv has only its header.</div>{{end}}

<h2>Resolvers and DNS time</h2>
{{with .Res.Resolvers}}{{if .DNSPulses}}<p class="note">From dns pulses: each resolves a name no resolver has cached (p-&lt;nonce&gt;.ipv4-…), so the
control plane's authoritative server logs which resolver asked; the report is joined with that log by nonce. {{.Joined}} of {{.DNSPulses}}
successful dns pulses were joined. A client counts once, in the distance class of most of its joined pulses. Distance is network distance from
the control plane's own tables, not geography: <b>same_prefix</b> the resolver is in the client's routed prefix (when unrouted, its ISP's prefix, else its /24 or /48),
<b>same_as</b> another prefix of the client's AS, <b>other_as</b> a prefix of another known AS, <b>unknown</b> no prefix the control plane
routes (typically a public resolver). <b>Distant</b> = other_as or unknown. Shares have Clopper–Pearson intervals (stats.ProportionCI).</p>
<table><tr><th class="l">ISP</th><th>clients</th><th>same_prefix</th><th>same_as</th><th>other_as</th><th>unknown</th><th>distant</th><th>CI</th><th>resolvers</th><th>with ECS</th><th>CI</th></tr>
{{range .ISPs}}<tr><td class="l">{{isp .ISP}}</td><td>{{.Clients}}</td><td>{{index .Distance "same_prefix"}}</td><td>{{index .Distance "same_as"}}</td><td>{{index .Distance "other_as"}}</td><td>{{index .Distance "unknown"}}</td>
<td>{{pct .Distant.Est}}</td><td>[{{pct .Distant.Lo}}, {{pct .Distant.Hi}}]</td><td>{{.Resolvers}}</td><td>{{pct .ECS.Est}}</td><td>[{{pct .ECS.Lo}}, {{pct .ECS.Hi}}]</td></tr>
{{end}}</table>
<p class="note">Resolution time (dns_ms) through the client's resolver, all pulses (*) and per family and per resolver distance; distribution-free intervals.</p>
<table><tr><th class="l">family</th><th class="l">distance</th><th>q</th><th>n</th><th>dns ms</th><th>CI</th></tr>
{{range .Times}}<tr><td class="l">{{.Family}}</td><td class="l">{{.Distance}}</td><td>{{q .Q}}</td><td>{{.N}}</td>{{if .OK}}<td>{{num .Est}}</td><td>[{{num .Lo}}, {{num .Hi}}]</td>{{else}}<td colspan="2" class="bad">insufficient samples (needs {{.MinN}})</td>{{end}}</tr>
{{end}}</table>{{else}}<p class="muted">No dns pulses (recipe type <code>dns</code> needs the control plane's dns section).</p>{{end}}{{end}}

<h2>IPv6 minus IPv4</h2>
{{if .Res.Families}}<p class="note">Per ISP (of the uploading client) and metric, IPv6 minus IPv4: positive means IPv6 is slower for connect and TTFB,
faster for throughput. <b>Paired</b>: a client that measured the same appliance over both families contributes the difference of its medians;
exact order-statistic interval of the median difference (stats.PairedMedianDiffCI), sign and Wilcoxon p-values. <b>Unpaired</b>: every pulse;
each family's median has an interval at level 1−(1−level)/2 and the difference's interval [lo6−hi4, hi6−lo4] covers with at least the
stated confidence (Bonferroni; conservative, and it treats pulses as independent).</p>
<table><tr><th class="l">ISP</th><th class="l">metric</th><th>n v6</th><th>n v4</th><th>med v6</th><th>med v4</th><th>diff</th><th>CI</th><th>pairs</th><th>paired diff</th><th>CI</th><th>sign p</th><th>Wilcoxon p</th></tr>
{{range .Res.Families}}<tr><td class="l">{{isp .ISP}}</td><td class="l">{{.Metric}}</td><td>{{.N6}}</td><td>{{.N4}}</td><td>{{num .Median6}}</td><td>{{num .Median4}}</td><td>{{num .Diff}}</td>
{{if .DiffOK}}<td>[{{num .DiffLo}}, {{num .DiffHi}}]</td>{{else}}<td class="bad">insufficient samples</td>{{end}}<td>{{.Pairs}}</td><td>{{num .PairedDiff}}</td>
{{if .PairedOK}}<td>[{{num .PairedLo}}, {{num .PairedHi}}]</td>{{else}}<td class="muted">{{if .Pairs}}insufficient pairs{{else}}no pairs{{end}}</td>{{end}}<td>{{pval .SignP}}</td><td>{{pval .WilcoxonP}}</td></tr>
{{end}}</table>{{else}}<p class="muted">No ISP has pulses of both families (recipes probe both with <code>measure.recipe.families: both</code>).</p>{{end}}

<h2>Steering experiments</h2>
{{if .Res.Experiments}}<p class="note">Reports carrying context <code>arm</code>, per experiment. Probe metrics count only the pulses to the site
each report was steered to (every recipe also probes the other sites; pooling them would give both arms the same sites); playback metrics
come from the qoe table. p50 with its order-statistic interval; the difference from the control arm has a cluster bootstrap interval
({{.Res.Config.BootstrapReps}} Poisson replicates, each client's values sharing one weight). Reports whose arm is not the one the control
plane assigned their client are counted as mismatched and left out. The sample-ratio check is a chi-square test of the client /24s per
arm against the shares; p &lt; 0.001 flags a broken assignment, and then no difference can be trusted.</p>
{{range $e := .Res.Experiments}}<h3>{{if .Meta.Name}}{{.Meta.Name}}{{else}}(unnamed){{end}}{{if not .Meta.Start.IsZero}}, started {{hour .Meta.Start}}{{end}}</h3>
<p>Units (client /24s) per arm: {{range $a := .ArmNames}}{{$a}} {{index $e.Units $a}} {{end}}
— sample ratio χ²={{num .SRM.ChiSquare}}, p={{num .SRM.P}}: {{if .SRM.Mismatch}}<span class="bad">MISMATCH</span>{{else}}ok{{end}} {{.SRM.Note}};
{{.Mismatched}} mismatched reports.</p>
<table><tr><th class="l">arm</th><th class="l">metric</th><th>reports</th><th>clients</th><th>n</th><th>p50</th><th>CI</th><th>− {{.Meta.Control}}</th><th>CI</th></tr>
{{range .Results}}<tr><td class="l">{{.Arm}}</td><td class="l">{{.Metric}}</td><td>{{.Reports}}</td><td>{{.Clients}}</td><td>{{.N}}</td><td>{{num .P50}}</td>
{{if .OK}}<td>[{{num .Lo}}, {{num .Hi}}]</td>{{else}}<td class="bad">insufficient samples</td>{{end}}
{{if eq .Arm .Control}}<td class="muted">control</td><td></td>{{else}}<td>{{num .Diff}}</td>{{if .DiffOK}}<td>[{{num .DiffLo}}, {{num .DiffHi}}]{{if .Significant}} *{{end}}</td>{{else}}<td class="bad">{{.Note}}</td>{{end}}{{end}}</tr>
{{end}}</table>{{end}}{{else}}<p class="muted">No report carries an experiment arm.</p>{{end}}

<h2>Transport (the servers' TCP view)</h2>
{{with .Res.Transport}}<p class="note">{{.Samples}} TCP_INFO samples of {{.Connections}} appliance connections (the <code>transport</code> table).
Min RTT is the median over connections of the server's min RTT; connect time the median of the group's pulses to that site (a TCP connect
takes one round trip, so the two should agree; the difference is the stacks' overhead or an asymmetric path). Retransmission rate is
retransmitted over data segments of a connection; RTT inflation is smoothed − min RTT of a sample (queueing). Intervals are
{{pct $.Res.Config.Level}} order-statistic intervals for quantiles and connection bootstraps for pooled rates.</p>
<h3>Per site and prefix group</h3>
<table><tr><th class="l">site</th><th class="l">prefix group</th><th>connections</th><th>min RTT ms</th><th>CI</th><th>connect ms</th><th>CI</th><th>connect − min RTT</th><th>retrans p50</th><th>p90</th><th>p99</th></tr>
{{range .Sites}}<tr><td class="l">{{.Site}}</td><td class="l">{{.PrefixGroup}}</td><td>{{.Connections}}</td>
{{if .MinRTTOK}}<td>{{num .MinRTTMs}}</td><td>[{{num .MinRTTLo}}, {{num .MinRTTHi}}]</td>{{else}}<td colspan="2" class="bad">insufficient samples</td>{{end}}
{{if .ConnectOK}}<td>{{num .ConnectMs}}</td><td>[{{num .ConnectLo}}, {{num .ConnectHi}}]</td>{{else}}<td colspan="2" class="muted">no pulses ({{.ConnectN}})</td>{{end}}
<td>{{num .DiffMs}}</td>{{range .Retrans}}{{if .OK}}<td title="[{{pct2 .Lo}}, {{pct2 .Hi}}]">{{pct2 .Est}}</td>{{else}}<td class="muted">n/a</td>{{end}}{{end}}</tr>
{{end}}</table>
<h3>Prefixes that stand out</h3>
<p class="note">Ranked: prefixes whose interval lies above their site's value first (loss, then RTT inflation), by how far.</p>
<table><tr><th class="l">site</th><th class="l">prefix</th><th>connections</th><th>retrans</th><th>CI</th><th>site</th><th>inflation ms</th><th>CI</th><th>site</th></tr>
{{range $i, $p := .Prefixes}}{{if lt $i 50}}<tr><td class="l">{{.Site}}</td><td class="l">{{.Prefix}}</td><td>{{.Connections}}</td>
<td{{if .LossStandsOut}} class="bad"{{end}}>{{pct2 .RetransRate}}</td><td>[{{pct2 .RetransLo}}, {{pct2 .RetransHi}}]</td><td>{{pct2 .SiteRetransRate}}</td>
<td{{if .InflationStandsOut}} class="bad"{{end}}>{{num .InflationMs}}</td><td>{{if .InflationOK}}[{{num .InflationLo}}, {{num .InflationHi}}]{{else}}n/a{{end}}</td><td>{{num .SiteInflationMs}}</td></tr>{{end}}
{{end}}</table>
<h3>Congestion control by experiment arm</h3>
{{range $e := .Arms}}<p><b>{{if .Experiment}}{{.Experiment}}{{else}}(unnamed){{end}}</b>{{if .Site}} at {{.Site}}{{else}}, every site{{end}}, control {{.Control}}:
{{range $a := .ArmNames}}{{$a}} runs {{index $e.CongestionControl $a}}, pooled retransmission rate {{with index $e.Retrans $a}}{{pct2 .Rate}} [{{pct2 .Lo}}, {{pct2 .Hi}}] over {{.Connections}} connections{{end}}; {{end}}</p>
<table><tr><th class="l">arm</th><th class="l">metric</th><th>n</th><th>clusters</th><th>p50</th><th>CI</th><th>− {{.Control}}</th><th>CI</th></tr>
{{range .Results}}<tr><td class="l">{{.Arm}}</td><td class="l">{{.Metric}}</td><td>{{.N}}</td><td>{{.Clients}}</td><td>{{num .P50}}</td>
{{if .OK}}<td>[{{num .Lo}}, {{num .Hi}}]</td>{{else}}<td class="bad">insufficient samples</td>{{end}}
{{if eq .Arm .Control}}<td class="muted">control</td><td></td>{{else}}<td>{{num .Diff}}</td>{{if .DiffOK}}<td>[{{num .DiffLo}}, {{num .DiffHi}}]{{if .Significant}} *{{end}}</td>{{else}}<td class="bad">{{.Note}}</td>{{end}}{{end}}</tr>
{{end}}</table>{{end}}
{{else}}<p class="muted">No transport data: the data directory has no <code>transport/</code> table.</p>{{end}}
</body></html>
`
