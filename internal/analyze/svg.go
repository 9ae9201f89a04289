package analyze

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
	"time"
)

// The plots are drawn as inline SVG so the report is one file with no
// scripts or external assets.

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"}

func siteColor(sites []string, s string) string {
	for i, x := range sites {
		if x == s {
			return palette[i%len(palette)]
		}
	}
	return "#000"
}

// plotScale converts metric values to plot units (Mbit/s for throughput).
func plotScale(m Metric) float64 {
	if m == Throughput {
		return 1e-6
	}
	return 1
}

// niceTicks returns about n round tick values covering [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	if !(hi > lo) {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, f := range []float64{1, 2, 2.5, 5, 10} {
		if f*mag >= raw {
			step = f * mag
			break
		}
	}
	var t []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		t = append(t, v)
	}
	return t
}

func tickLabel(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
	}
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}

// logTicks returns 1-2-5 × 10^k values inside [lo, hi] (lo > 0), thinned
// to powers of ten when the range spans many decades.
func logTicks(lo, hi float64) []float64 {
	var t []float64
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v >= lo*0.999 && v <= hi*1.001 {
				t = append(t, v)
			}
		}
	}
	if len(t) > 9 {
		var d []float64
		for _, v := range t {
			if l := math.Log10(v); l == math.Round(l) {
				d = append(d, v)
			}
		}
		t = d
	}
	return t
}

// logRange returns the x range of a log-scaled distribution plot: from the
// smallest site 0.5th percentile to the largest site 99th percentile, both
// positive, so that one site's tail does not squeeze every other site.
func logRange(data map[string][]float64, shown []string, sc float64) (lo, hi float64) {
	lo, hi = math.Inf(1), 0
	for _, s := range shown {
		v := data[s]
		l := quantile7(v, 0.005) * sc
		if !(l > 0) {
			for _, x := range v {
				if x > 0 {
					l = x * sc
					break
				}
			}
		}
		if l > 0 {
			lo = math.Min(lo, l)
		}
		hi = math.Max(hi, quantile7(v, 0.99)*sc)
	}
	if math.IsInf(lo, 1) || !(hi > 0) {
		return 0.1, 1
	}
	if hi <= lo {
		hi = lo * 2
	}
	return lo / 1.1, hi * 1.1
}

type frame struct {
	logx                  bool
	w, h                  float64
	left, right, top, bot float64
	xlo, xhi, ylo, yhi    float64
}

func (f *frame) x(v float64) float64 {
	if f.logx {
		v = math.Min(math.Max(v, f.xlo), f.xhi)
		return f.left + (math.Log(v)-math.Log(f.xlo))/(math.Log(f.xhi)-math.Log(f.xlo))*(f.w-f.left-f.right)
	}
	return f.left + (v-f.xlo)/(f.xhi-f.xlo)*(f.w-f.left-f.right)
}
func (f *frame) y(v float64) float64 {
	return f.h - f.bot - (v-f.ylo)/(f.yhi-f.ylo)*(f.h-f.top-f.bot)
}

func (f *frame) axes(b *strings.Builder, xlabel, ylabel string, xt, yt []float64, xfmt func(float64) string) {
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#888"/>`,
		f.left, f.top, f.w-f.left-f.right, f.h-f.top-f.bot)
	for _, v := range xt {
		x := f.x(v)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`, x, f.top, x, f.h-f.bot)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle">%s</text>`, x, f.h-f.bot+14, html.EscapeString(xfmt(v)))
	}
	for _, v := range yt {
		y := f.y(v)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`, f.left, y, f.w-f.right, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="end">%s</text>`, f.left-4, y+4, tickLabel(v))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="12" text-anchor="middle">%s</text>`, (f.left+f.w-f.right)/2, f.h-4, html.EscapeString(xlabel))
	fmt.Fprintf(b, `<text x="12" y="%.1f" font-size="12" text-anchor="middle" transform="rotate(-90 12 %.1f)">%s</text>`,
		(f.top+f.h-f.bot)/2, (f.top+f.h-f.bot)/2, html.EscapeString(ylabel))
}

func legend(b *strings.Builder, f *frame, sites []string, shown []string) {
	for i, s := range shown {
		// In the right margin, so it never covers data.
		y := f.top + 14 + float64(i)*15
		x := f.w - f.right + 8
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="12" height="3" fill="%s"/>`, x, y-4, siteColor(sites, s))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="11">%s</text>`, x+16, y, html.EscapeString(s))
	}
}

// cdfSVG draws the empirical CDF of m per site, x clipped at the largest
// site p99 so one tail does not flatten every curve.
func cdfSVG(m Metric, data map[string][]float64, sites []string) template.HTML {
	sc := plotScale(m)
	var shown []string
	for _, s := range sites {
		if len(data[s]) > 0 {
			shown = append(shown, s)
		}
	}
	if len(shown) == 0 {
		return ""
	}
	xlo, xhi := logRange(data, shown, sc)
	f := &frame{logx: true, w: 650, h: 300, left: 50, right: 100, top: 10, bot: 36, xlo: xlo, xhi: xhi, ylo: 0, yhi: 1}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" role="img"><title>CDF of %s per site</title>`,
		f.w, f.h, html.EscapeString(m.Title()))
	f.axes(&b, m.Title()+", log scale", "fraction ≤ x", logTicks(f.xlo, f.xhi), []float64{0, 0.25, 0.5, 0.75, 1}, tickLabel)
	for _, s := range shown {
		v := data[s]
		n := len(v)
		step := max(1, n/300)
		var pts []string
		for i := 0; i < n; i += step {
			x := v[i] * sc
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", f.x(x), f.y(float64(i+1)/float64(n))))
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", f.x(v[n-1]*sc), f.y(1)))
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, siteColor(sites, s), strings.Join(pts, " "))
	}
	legend(&b, f, sites, shown)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// boxSVG draws, per site, a box from p25 to p75, whiskers to p10 and p90,
// the median with its confidence interval (thick bar), and p99 (dot).
func boxSVG(m Metric, data map[string][]float64, sites []string, cells []QuantileCell) template.HTML {
	sc := plotScale(m)
	var shown []string
	for _, s := range sites {
		if v := data[s]; len(v) > 0 {
			shown = append(shown, s)
		}
	}
	if len(shown) == 0 {
		return ""
	}
	rowH := 34.0
	xlo, xhi := logRange(data, shown, sc)
	f := &frame{logx: true, w: 560, h: 46 + rowH*float64(len(shown)), left: 110, right: 14, top: 10, bot: 36, xlo: xlo, xhi: xhi}
	f.ylo, f.yhi = 0, float64(len(shown))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" role="img"><title>Quantiles of %s per site</title>`,
		f.w, f.h, html.EscapeString(m.Title()))
	f.axes(&b, m.Title()+", log scale", "", logTicks(f.xlo, f.xhi), nil, tickLabel)
	for i, s := range shown {
		v := data[s]
		q := func(p float64) float64 { return quantile7(v, p) * sc }
		yc := f.y(float64(len(shown)-i) - 0.5)
		col := siteColor(sites, s)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="end">%s</text>`, f.left-6, yc+4, html.EscapeString(s))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, f.x(q(0.1)), yc, f.x(q(0.9)), yc, col)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="14" fill="%s" fill-opacity="0.25" stroke="%s"/>`,
			f.x(q(0.25)), yc-7, math.Max(1, f.x(q(0.75))-f.x(q(0.25))), col, col)
		for _, c := range cells {
			if c.SiteWide() && c.Site == s && c.Metric == m && c.Q == 0.5 && c.OK {
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="6" fill="%s"><title>p50 %s, 95%% CI [%s, %s]</title></rect>`,
					f.x(c.Lo*sc), yc-3, math.Max(2, f.x(c.Hi*sc)-f.x(c.Lo*sc)), col,
					num(c.Est*sc), num(c.Lo*sc), num(c.Hi*sc))
			}
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000" stroke-width="2"/>`, f.x(q(0.5)), yc-9, f.x(q(0.5)), yc+9)
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>p99</title></circle>`, f.x(q(0.99)), yc, col)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// seriesSVG draws the hourly p50 of m per site, with detected changes as
// dashed vertical lines.
func seriesSVG(m Metric, series []Series, sites []string) template.HTML {
	sc := plotScale(m)
	var ss []Series
	var t0, t1 time.Time
	yhi := 0.0
	for _, s := range series {
		if s.Metric != m || len(s.Points) == 0 {
			continue
		}
		ss = append(ss, s)
		for _, p := range s.Points {
			if t0.IsZero() || p.Hour.Before(t0) {
				t0 = p.Hour
			}
			if p.Hour.After(t1) {
				t1 = p.Hour
			}
			yhi = math.Max(yhi, p.P50*sc)
		}
	}
	if len(ss) == 0 {
		return ""
	}
	if !t1.After(t0) {
		t1 = t0.Add(time.Hour)
	}
	f := &frame{w: 860, h: 280, left: 50, right: 100, top: 10, bot: 36,
		xlo: 0, xhi: t1.Sub(t0).Hours(), ylo: 0, yhi: yhi * 1.15}
	if !(f.yhi > 0) {
		f.yhi = 1
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" role="img"><title>Hourly p50 of %s</title>`,
		f.w, f.h, html.EscapeString(m.Title()))
	xfmt := func(h float64) string { return t0.Add(time.Duration(h * float64(time.Hour))).Format("01-02 15h") }
	var xt []float64 // whole hours only
	for _, v := range niceTicks(0, f.xhi, 6) {
		if v == math.Trunc(v) {
			xt = append(xt, v)
		}
	}
	f.axes(&b, "hour (UTC)", "p50 "+m.Title(), xt, niceTicks(0, f.yhi, 5), xfmt)
	var shown []string
	for _, s := range ss {
		col := siteColor(sites, s.Site)
		shown = append(shown, s.Site)
		var pts []string
		for _, p := range s.Points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", f.x(p.Hour.Sub(t0).Hours()), f.y(p.P50*sc)))
		}
		if len(pts) == 1 {
			fmt.Fprintf(&b, `<circle cx="%s" r="3" fill="%s"/>`, strings.Replace(pts[0], ",", `" cy="`, 1), col)
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, col, strings.Join(pts, " "))
		for _, c := range s.Changes {
			x := f.x(c.At.Sub(t0).Hours())
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="4 3"><title>%s %s %+.0f%% at %s</title></line>`,
				x, f.top, x, f.h-f.bot, col, html.EscapeString(s.Site), c.Direction, c.RelShift*100, hourStr(c.At))
		}
	}
	legend(&b, f, sites, shown)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
