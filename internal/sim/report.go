package sim

import (
	"fmt"
	"html"
	"math"
	"sort"
	"strings"
	"time"
)

// The report is one HTML file with inline SVG plots: no scripts, no
// external assets, readable offline.

var plotColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"}

type series struct {
	name string
	x, y []float64
}

// linePlot draws series over a shared x axis (hours or km).
func linePlot(title, xlabel, ylabel string, ss []series, logX bool) string {
	const w, h, l, r, t, b = 640.0, 300.0, 64.0, 150.0, 28.0, 40.0
	var xmin, xmax, ymin, ymax = math.Inf(1), math.Inf(-1), 0.0, math.Inf(-1)
	tx := func(v float64) float64 {
		if logX {
			return math.Log10(math.Max(v, 1))
		}
		return v
	}
	for _, s := range ss {
		for i := range s.x {
			xmin, xmax = math.Min(xmin, tx(s.x[i])), math.Max(xmax, tx(s.x[i]))
			ymax = math.Max(ymax, s.y[i])
		}
	}
	if math.IsInf(xmin, 0) || xmax <= xmin {
		xmin, xmax = 0, 1
	}
	if !(ymax > 0) {
		ymax = 1
	}
	ymax *= 1.05
	px := func(v float64) float64 { return l + (tx(v)-xmin)/(xmax-xmin)*(w-l-r) }
	py := func(v float64) float64 { return t + (1-(v-ymin)/(ymax-ymin))*(h-t-b) }
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`, w, h)
	fmt.Fprintf(&sb, `<text x="%.0f" y="16" font-size="13" font-weight="bold">%s</text>`, l, html.EscapeString(title))
	fmt.Fprintf(&sb, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#000"/>`, l, h-b, w-r, h-b)
	fmt.Fprintf(&sb, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#000"/>`, l, t, l, h-b)
	for i := 0; i <= 4; i++ {
		v := ymin + (ymax-ymin)*float64(i)/4
		fmt.Fprintf(&sb, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/><text x="%.0f" y="%.1f" text-anchor="end">%s</text>`,
			l, py(v), w-r, py(v), l-4, py(v)+4, tick(v))
	}
	for i := 0; i <= 6; i++ {
		v := xmin + (xmax-xmin)*float64(i)/6
		label := v
		if logX {
			label = math.Pow(10, v)
		}
		x := l + (v-xmin)/(xmax-xmin)*(w-l-r)
		fmt.Fprintf(&sb, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`, x, h-b+14, tick(label))
	}
	fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" text-anchor="middle">%s</text>`, (l+w-r)/2, h-6, html.EscapeString(xlabel))
	fmt.Fprintf(&sb, `<text x="14" y="%.0f" transform="rotate(-90 14 %.0f)" text-anchor="middle">%s</text>`, (t+h-b)/2, (t+h-b)/2, html.EscapeString(ylabel))
	for i, s := range ss {
		c := plotColors[i%len(plotColors)]
		var pts strings.Builder
		for j := range s.x {
			fmt.Fprintf(&pts, "%.1f,%.1f ", px(s.x[j]), py(s.y[j]))
		}
		fmt.Fprintf(&sb, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, c, pts.String())
		fmt.Fprintf(&sb, `<rect x="%.0f" y="%.0f" width="10" height="10" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`,
			w-r+10, t+float64(i)*16, c, w-r+24, t+float64(i)*16+9, html.EscapeString(s.name))
	}
	sb.WriteString(`</svg>`)
	return sb.String()
}

func tick(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 1e9:
		return fmt.Sprintf("%.3gG", v/1e9)
	case math.Abs(v) >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case math.Abs(v) >= 1e4:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.3g", v)
}

func (r *results) html(sm *Sim, s *Summary) string {
	var hours []float64
	t0 := sm.sc.Start
	stepSec := sm.sc.Step.Seconds()
	var off, cdn, origin, mContent, mHealth, mOther []float64
	for _, row := range r.intervals {
		hours = append(hours, time.UnixMicro(row.Time).Sub(t0).Hours())
		all := float64(row.BytesEmbedded + row.BytesPrivate + row.BytesIXP + row.BytesFallback + row.BytesOrigin)
		o, c := 0.0, 0.0
		if all > 0 {
			o, c = row.Offload, 1-float64(row.BytesOrigin)/all
		}
		off, cdn = append(off, o), append(cdn, c)
		origin = append(origin, float64(row.OriginEgress)*8/stepSec/1e9)
		mContent = append(mContent, float64(row.MissContent)*8/stepSec/1e9)
		mHealth = append(mHealth, float64(row.MissHealth)*8/stepSec/1e9)
		mOther = append(mOther, float64(row.MissOther)*8/stepSec/1e9)
	}
	var km, cdf []float64
	var total, acc float64
	for _, v := range r.dist {
		total += float64(v)
	}
	for b, v := range r.dist {
		acc += float64(v)
		if total > 0 && (v > 0 || (acc > 0 && acc < total)) {
			km, cdf = append(km, histValue(b)), append(cdf, acc/total)
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "<!doctype html><html><head><meta charset=\"utf-8\"><title>ocdn sim: %s</title><style>body{font-family:sans-serif;max-width:980px;margin:2em auto}table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}td:first-child,th:first-child{text-align:left}</style></head><body>", html.EscapeString(s.Scenario))
	fmt.Fprintf(&sb, "<h1>ocdn sim: %s</h1><p>World %s: %d prefixes, %d sites, %d appliances. Seed %d, %s from %s in steps of %s.</p>",
		html.EscapeString(s.Scenario), html.EscapeString(s.World), s.Prefixes, s.Sites, s.Appliances, s.Seed, s.Duration, s.Start, sm.sc.Step)
	sb.WriteString("<table>")
	row := func(k, v string) { fmt.Fprintf(&sb, "<tr><td>%s</td><td>%s</td></tr>", k, v) }
	row("sessions", fmt.Sprintf("%d (%d steering decisions, %d failovers)", s.Sessions, s.Decisions, s.Failovers))
	row("offload (embedded share of client bytes)", fmt.Sprintf("%.2f%%", 100*s.Offload))
	row("served by appliances", fmt.Sprintf("%.2f%%", 100*s.CDNShare))
	row("origin egress", fmt.Sprintf("%.1f TB (client %.1f TB, fill %.1f TB)", float64(s.OriginEgressBytes)/1e12, float64(s.ClientBytes["origin"])/1e12, float64(s.FillBytes["origin"])/1e12))
	row("misses", fmt.Sprintf("content %.2f%%, health %.2f%% of client bytes", 100*s.ContentMissShare, 100*s.HealthMissShare))
	row("fill", fmt.Sprintf("peer %.1f TB, tier %.1f TB, origin %.1f TB; origin bytes per unique byte %.2f", float64(s.FillBytes["peer"])/1e12, float64(s.FillBytes["tier"])/1e12, float64(s.FillBytes["origin"])/1e12, s.OriginPerUnique))
	row("client to site distance", fmt.Sprintf("mean %.0f km, p50 %.0f km, p90 %.0f km", s.DistanceKm.Mean, s.DistanceKm.P50, s.DistanceKm.P90))
	row("estimated round trip", fmt.Sprintf("mean %.1f ms, p50 %.1f ms, p90 %.1f ms", s.RTTMs.Mean, s.RTTMs.P50, s.RTTMs.P90))
	row("appliance utilisation", fmt.Sprintf("p50 %.0f%%, p99 %.0f%%", 100*s.Utilization.P50, 100*s.Utilization.P99))
	row("failures", fmt.Sprintf("%d appliance, %d site; %d route changes from %d replayed updates", s.ApplianceFailures, s.SiteFailures, s.RouteChanges, s.ChurnUpdates))
	sb.WriteString("</table>")
	sb.WriteString(linePlot("Offload over the run", "hours", "share of client bytes", []series{{"embedded", hours, off}, {"all appliances", hours, cdn}}, false))
	sb.WriteString(linePlot("Origin egress (client and fill)", "hours", "Gb/s", []series{{"origin", hours, origin}}, false))
	sb.WriteString(linePlot("Misses by class", "hours", "Gb/s", []series{{"content", hours, mContent}, {"health", hours, mHealth}, {"other", hours, mOther}}, false))
	sb.WriteString(linePlot("Client to site distance (bytes-weighted CDF)", "km", "share of bytes", []series{{"distance", km, cdf}}, true))
	// Countries by bytes.
	type cc struct {
		code  string
		bytes int64
		emb   int64
	}
	agg := map[string]*cc{}
	for _, c := range r.countries {
		x := agg[c.Country]
		if x == nil {
			x = &cc{code: c.Country}
			agg[c.Country] = x
		}
		x.bytes += c.BytesEmbedded + c.BytesPrivate + c.BytesIXP + c.BytesFallback + c.BytesOrigin
		x.emb += c.BytesEmbedded
	}
	list := make([]*cc, 0, len(agg))
	for _, v := range agg {
		list = append(list, v)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].bytes != list[j].bytes {
			return list[i].bytes > list[j].bytes
		}
		return list[i].code < list[j].code
	})
	sb.WriteString("<h2>Countries by client bytes</h2><table><tr><th>country</th><th>client TB</th><th>offload</th></tr>")
	for _, c := range list[:min(len(list), 20)] {
		fmt.Fprintf(&sb, "<tr><td>%s</td><td>%.1f</td><td>%.1f%%</td></tr>", c.code, float64(c.bytes)/1e12, 100*float64(c.emb)/math.Max(float64(c.bytes), 1))
	}
	sb.WriteString("</table><p>Tables: intervals, countries, sites, isps, appliances (Parquet, hive-partitioned by date) beside this file; docs/sim.md describes them.</p></body></html>\n")
	return sb.String()
}
